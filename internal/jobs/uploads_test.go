package jobs_test

import (
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

const uploadModel = `
jobs:
  - name: photo/restore
    backend: http
    upstreams: [UPSTREAM]
    inputs:
      photo: {type: image, required: true}
`

// TestExpiredUploadsRemoved: the retention sweep deletes an upload past
// its 24 hours from the result store (disk or S3) and keeps a younger
// one; a deleted upload is not swept again.
func TestExpiredUploadsRemoved(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			e := setupOn(t, engine, uploadModel, http.NotFoundHandler())
			testExpiredUploadsRemoved(t, e, func(id string) bool {
				found := false
				_ = filepath.WalkDir(filepath.Join(e.dir, "results"), func(path string, _ fs.DirEntry, _ error) error {
					found = found || strings.Contains(path, id)
					return nil
				})
				return found
			})
		})
	}
	t.Run("s3", func(t *testing.T) {
		e := setupWith(t, "sqlite", uploadModel, http.NotFoundHandler(), fakeS3Blobs(t))
		testExpiredUploadsRemoved(t, e, nil)
	})
}

func testExpiredUploadsRemoved(t *testing.T, e *env, onDisk func(id string) bool) {
	png := []byte("\x89PNG\r\n\x1a\nan image")
	old := upload(t, e, "alice", png)
	gone := upload(t, e, "alice", png)
	if status, _, _ := e.call(t, "alice", "DELETE", "/v1/files/"+gone.ID, nil); status != 204 {
		t.Fatalf("delete an upload: %d", status)
	}
	e.clock.Advance(23 * time.Hour)
	young := upload(t, e, "alice", png)
	e.clock.Advance(time.Hour)
	if err := e.svc.RemoveExpired(t.Context()); err != nil {
		t.Fatalf("RemoveExpired: %v", err)
	}
	stored := func(id string) bool {
		t.Helper()
		f, _, err := e.opts.Blobs.Open(t.Context(), tollgate.BlobKey{TenantID: "acme", UserID: "usr_alice", PredictionID: "file_" + id}, "content")
		if err == nil {
			f.Close()
			return true
		}
		if tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Fatalf("open upload %s: %v", id, err)
		}
		return false
	}
	if stored(old.ID) || (onDisk != nil && onDisk(old.ID)) {
		t.Errorf("the upload of 24 hours ago is still stored")
	}
	if !stored(young.ID) {
		t.Errorf("the upload of an hour ago was removed")
	}
	if status, _, _ := e.call(t, "alice", "GET", "/v1/files/"+young.ID, nil); status != 200 {
		t.Errorf("the upload of an hour ago: %d, want 200", status)
	}
	left, err := e.jobs.ExpiredUploads(t.Context(), e.clock.Now().Add(48*time.Hour), 10)
	if err != nil || len(left) != 1 || left[0].ID != young.ID {
		t.Errorf("uploads left to sweep: %+v, %v; want only the young one (the deleted one forgotten)", left, err)
	}
}
