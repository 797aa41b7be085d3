package storetest

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// testJobRequeue: a processing job moved back to the queue frees its
// slot, keeps its attempts and its place in its owner's queue, and is
// picked again; a stale attempt count, a job not processing and an
// unknown job are refused and change nothing; a job whose owner asked to
// cancel it ends canceled, never started.
func testJobRequeue(t *testing.T, s tollgate.JobStore) {
	ctx := t.Context()
	a0 := MustEnqueue(t, s, NewJob(ownerA, "m/x", "a0"))
	MustEnqueue(t, s, NewJob(ownerA, "m/x", "a1"))
	if got := pick(t, s, "m/x", 1); got == nil || got.ID != a0.ID || got.Attempts != 0 {
		t.Fatalf("Pick = %+v, want a0 at 0 attempts", got)
	}
	wantCode(t, "Dispatch of a job not processing", s.Dispatch(ctx, "a1", at(time.Minute)), tollgate.ENotFound)
	if err := s.Dispatch(ctx, "a0", at(time.Minute+time.Second)); err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	sent, err := s.JobByID(ctx, "a0")
	if err != nil || sent.Attempts != 1 {
		t.Fatalf("JobByID after Dispatch = %+v, %v; want 1 attempt", sent, err)
	}
	wantTime(t, "DispatchedAt", sent.DispatchedAt, at(time.Minute+time.Second))
	if j := pick(t, s, "m/x", 1); j != nil {
		t.Fatalf("Pick with the only slot taken = %s", j.ID)
	}

	_, err = s.Requeue(ctx, "a0", 0, at(2*time.Minute))
	wantCode(t, "Requeue at a stale attempt", err, tollgate.EConflict)
	_, err = s.Requeue(ctx, "a1", 0, at(2*time.Minute))
	wantCode(t, "Requeue of a queued job", err, tollgate.EConflict)
	_, err = s.Requeue(ctx, "nope", 0, at(2*time.Minute))
	wantCode(t, "Requeue of no job", err, tollgate.ENotFound)

	back, err := s.Requeue(ctx, "a0", 1, at(2*time.Minute))
	if err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	for _, j := range []*tollgate.Job{back, mustJob(t, s, "a0")} {
		if j.Status != tollgate.JobStarting || j.Upstream != "" || !j.StartedAt.IsZero() || !j.DispatchedAt.IsZero() || j.Attempts != 1 || j.Seq != a0.Seq {
			t.Errorf("requeued job = %+v, want starting, no upstream, start or dispatch, 1 attempt, its seq", j)
		}
	}
	_, err = s.Requeue(ctx, "a0", 1, at(2*time.Minute))
	wantCode(t, "Requeue twice", err, tollgate.EConflict)
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Queued["m/x"] != 2 || st.Running["http://gpu-1"] != 0 {
		t.Errorf("Stats after Requeue = %+v, want 2 queued, none running", st)
	}
	if pos, err := s.QueuePosition(ctx, back); err != nil || pos != 0 {
		t.Errorf("QueuePosition of the requeued job = %d, %v; want 0 (its place kept)", pos, err)
	}
	again := pick(t, s, "m/x", 1)
	if again == nil || again.ID != "a0" || again.Attempts != 1 {
		t.Fatalf("Pick after Requeue = %+v, want a0 again, before a1", again)
	}

	if _, err := s.Cancel(ctx, ownerA, "a0", at(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	ended, err := s.Requeue(ctx, "a0", 1, at(3*time.Minute))
	if err != nil || ended.Status != tollgate.JobCanceled || !ended.StartedAt.IsZero() {
		t.Fatalf("Requeue of a job asked to cancel = %+v, %v; want canceled, never started", ended, err)
	}
	wantTime(t, "CompletedAt", ended.CompletedAt, at(3*time.Minute))
	if j := pick(t, s, "m/x", 1); j == nil || j.ID != "a1" {
		t.Fatalf("Pick after the cancel = %+v, want a1 on the freed slot", j)
	}

	// A requeued job no longer counts as running for its owner's
	// concurrency cap: with a cap of one, it is picked again.
	capped := NewJob(ownerB, "m/capped", "c0")
	capped.MaxRunning = 1
	MustEnqueue(t, s, capped)
	if j := pick(t, s, "m/capped", 2); j == nil || j.ID != "c0" {
		t.Fatalf("Pick of the capped job = %+v, want c0", j)
	}
	if err := s.Dispatch(ctx, "c0", at(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Requeue(ctx, "c0", 1, at(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if j := pick(t, s, "m/capped", 2); j == nil || j.ID != "c0" {
		t.Fatalf("Pick after requeueing a job of a user capped at one = %+v, want c0 (nothing of theirs runs)", j)
	}
}

func mustJob(t *testing.T, s tollgate.JobStore, id string) *tollgate.Job {
	t.Helper()
	j, err := s.JobByID(t.Context(), id)
	if err != nil {
		t.Fatalf("JobByID(%s): %v", id, err)
	}
	return j
}
