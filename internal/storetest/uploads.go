package storetest

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// testJobUploads: uploads come back once expired, the first to expire
// first and at most limit of them, and are gone once removed.
func testJobUploads(t *testing.T, s tollgate.JobStore) {
	ctx := t.Context()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, u := range []*tollgate.Upload{
		{ID: "late", Owner: ownerB, ExpiresAt: t0.Add(2 * time.Hour)},
		{ID: "second", Owner: ownerA, ExpiresAt: t0.Add(time.Minute)},
		{ID: "first", Owner: ownerA, ExpiresAt: t0},
	} {
		if err := s.AddUpload(ctx, u); err != nil {
			t.Fatalf("AddUpload %s: %v", u.ID, err)
		}
	}
	wantCode(t, "the same id twice", s.AddUpload(ctx, &tollgate.Upload{ID: "first", Owner: ownerB, ExpiresAt: t0}), tollgate.EConflict)
	wantCode(t, "no owner", s.AddUpload(ctx, &tollgate.Upload{ID: "x", ExpiresAt: t0}), tollgate.EInvalid)
	ids := func(before time.Time, limit int) []string {
		t.Helper()
		got, err := s.ExpiredUploads(ctx, before, limit)
		if err != nil {
			t.Fatalf("ExpiredUploads: %v", err)
		}
		var out []string
		for _, u := range got {
			out = append(out, u.ID)
		}
		return out
	}
	if got := ids(t0.Add(-time.Second), 10); len(got) != 0 {
		t.Errorf("before any expiry: %v, want none", got)
	}
	if got := ids(t0.Add(time.Hour), 10); len(got) != 2 || got[0] != "first" || got[1] != "second" {
		t.Errorf("an hour on: %v, want [first second]", got)
	}
	if got := ids(t0.Add(time.Hour), 1); len(got) != 1 || got[0] != "first" {
		t.Errorf("limit 1: %v, want [first]", got)
	}
	got, err := s.ExpiredUploads(ctx, t0, 10)
	if err != nil || len(got) != 1 || got[0].Owner != ownerA || !got[0].ExpiresAt.Equal(t0) {
		t.Errorf("at the first expiry: %+v, %v; want first of owner A, expiring at %v", got, err, t0)
	}
	if err := s.RemoveUpload(ctx, "first"); err != nil {
		t.Fatalf("RemoveUpload: %v", err)
	}
	if err := s.RemoveUpload(ctx, "first"); err != nil {
		t.Errorf("RemoveUpload of a removed upload: %v, want no error", err)
	}
	if got := ids(t0.Add(3*time.Hour), 10); len(got) != 2 || got[0] != "second" || got[1] != "late" {
		t.Errorf("after removing first: %v, want [second late]", got)
	}
}
