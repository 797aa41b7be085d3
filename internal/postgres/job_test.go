package postgres_test

import (
	"testing"

	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestJobStore(t *testing.T) {
	testURL(t)
	storetest.RunJobs(t, func(t *testing.T) tollgate.JobStore { return MustOpen(t).Jobs() })
}
