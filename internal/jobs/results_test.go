package jobs_test

import (
	"path/filepath"
	"testing"

	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestFileBlobs(t *testing.T) {
	storetest.RunBlobs(t, func(t *testing.T) tollgate.BlobStore {
		s, err := jobs.NewFileBlobs(filepath.Join(t.TempDir(), "results"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
