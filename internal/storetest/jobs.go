package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// RunJobs runs the job queue suite. open must return a new, migrated,
// empty job store for each call.
func RunJobs(t *testing.T, open func(t *testing.T) tollgate.JobStore) {
	t.Run("EnqueueAndGet", func(t *testing.T) { testJobEnqueue(t, open(t)) })
	t.Run("Idempotency", func(t *testing.T) { testJobIdempotency(t, open(t)) })
	t.Run("MaxQueued", func(t *testing.T) { testJobMaxQueued(t, open(t)) })
	t.Run("Capacity", func(t *testing.T) { testJobCapacity(t, open(t)) })
	t.Run("Fairness", func(t *testing.T) { testJobFairness(t, open(t)) })
	t.Run("UserConcurrency", func(t *testing.T) { testJobConcurrency(t, open(t)) })
	t.Run("Cancel", func(t *testing.T) { testJobCancel(t, open(t)) })
	t.Run("FinishOnce", func(t *testing.T) { testJobFinish(t, open(t)) })
	t.Run("CancelExpired", func(t *testing.T) { testJobExpired(t, open(t)) })
	t.Run("Pages", func(t *testing.T) { testJobPages(t, open(t)) })
	t.Run("ConcurrentPicks", func(t *testing.T) { testJobConcurrentPicks(t, open(t)) })
	t.Run("ExpiredResults", func(t *testing.T) { testJobResultsExpire(t, open(t)) })
	t.Run("Stats", func(t *testing.T) { testJobStats(t, open(t)) })
	t.Run("AllJobs", func(t *testing.T) { testAllJobs(t, open(t)) })
	t.Run("QueuePosition", func(t *testing.T) { testJobQueuePosition(t, open(t)) })
	t.Run("Uploads", func(t *testing.T) { testJobUploads(t, open(t)) })
	t.Run("Requeue", func(t *testing.T) { testJobRequeue(t, open(t)) })
}

// testJobQueuePosition: before every pick, each waiting job's position is
// the number of jobs that then start before it.
func testJobQueuePosition(t *testing.T, s tollgate.JobStore) {
	var waiting []*tollgate.Job
	for i := range 5 {
		waiting = append(waiting, MustEnqueue(t, s, NewJob(ownerA, "m/x", fmt.Sprint("a", i))))
	}
	MustEnqueue(t, s, NewJob(ownerA, "m/other", "other"))
	first := pick(t, s, "m/x", 1)
	waiting = waiting[1:]
	for i := range 2 {
		waiting = append(waiting, MustEnqueue(t, s, NewJob(ownerB, "m/x", fmt.Sprint("b", i))))
	}
	p := NewJob(ownerP, "m/x", "p0")
	p.Priority = 10
	waiting = append(waiting, MustEnqueue(t, s, p))
	finish(t, s, first.ID)
	positions := func() map[string]int {
		out := map[string]int{}
		for _, j := range waiting {
			n, err := s.QueuePosition(t.Context(), j)
			if err != nil {
				t.Fatalf("QueuePosition(%s): %v", j.ID, err)
			}
			out[j.ID] = n
		}
		return out
	}
	var order []string
	var before []map[string]int
	for len(waiting) > 0 {
		before = append(before, positions())
		// Each job starts at a time of its own, as on a real clock.
		j, err := s.Pick(t.Context(), tollgate.PickRequest{Model: "m/x", Upstreams: []string{"http://gpu-1"}, Capacity: 1,
			Now: at(time.Duration(len(order)+2) * time.Minute)})
		if err != nil || j == nil {
			t.Fatalf("Pick with %d waiting = %v, %v", len(waiting), j, err)
		}
		order = append(order, j.ID)
		waiting = slices.DeleteFunc(waiting, func(w *tollgate.Job) bool { return w.ID == j.ID })
		finish(t, s, j.ID)
	}
	for step, pos := range before {
		for id, n := range pos {
			if want := slices.Index(order[step:], id); n != want {
				t.Errorf("before pick %d (order %v) %s had position %d, want %d", step, order[step:], id, n, want)
			}
		}
	}
	if n, err := s.QueuePosition(t.Context(), first); err != nil || n != 0 {
		t.Errorf("a finished job's position = %d, %v; want 0", n, err)
	}
}

var (
	ownerA = tollgate.Owner{TenantID: "acme", UserID: "usr_a"}
	ownerB = tollgate.Owner{TenantID: "acme", UserID: "usr_b"}
	ownerP = tollgate.Owner{TenantID: "big", UserID: "usr_pro"}
)

// NewJob returns a valid job of model for o with a fresh id.
func NewJob(o tollgate.Owner, model, id string) *tollgate.Job {
	return &tollgate.Job{ID: id, Model: model, Owner: o, Plan: "free", Input: json.RawMessage(`{"prompt":"` + id + `"}`)}
}

// MustEnqueue enqueues j without limits and returns the stored job.
func MustEnqueue(tb testing.TB, s tollgate.JobStore, j *tollgate.Job) *tollgate.Job {
	tb.Helper()
	got, created, err := s.Enqueue(tb.Context(), j, tollgate.QueueLimits{})
	if err != nil || !created {
		tb.Fatalf("Enqueue(%s) = created %v, %v", j.ID, created, err)
	}
	return got
}

func pick(t *testing.T, s tollgate.JobStore, model string, capacity int, upstreams ...string) *tollgate.Job {
	t.Helper()
	if len(upstreams) == 0 {
		upstreams = []string{"http://gpu-1"}
	}
	j, err := s.Pick(t.Context(), tollgate.PickRequest{Model: model, Upstreams: upstreams, Capacity: capacity, Now: at(time.Minute)})
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	return j
}

func finish(t *testing.T, s tollgate.JobStore, id string) *tollgate.Job {
	t.Helper()
	j, err := s.Finish(t.Context(), id, tollgate.JobResult{Status: tollgate.JobSucceeded, Output: json.RawMessage(`"done"`),
		PredictMillis: 1500, OutputAudioMillis: 2800, CompletedAt: at(2 * time.Minute)})
	if err != nil {
		t.Fatalf("Finish(%s): %v", id, err)
	}
	return j
}

func testJobEnqueue(t *testing.T, s tollgate.JobStore) {
	j := NewJob(ownerA, "photo/colorize", "job1")
	j.CreatedAt, j.CancelAt = at(0), at(time.Hour)
	j.Webhook, j.WebhookEvents = "https://hooks.example/x", []string{"start", "completed"}
	got := MustEnqueue(t, s, j)
	if got.Seq <= 0 || got.Status != tollgate.JobStarting {
		t.Errorf("enqueued job seq %d status %q, want a seq and starting", got.Seq, got.Status)
	}
	read, err := s.Job(t.Context(), ownerA, "job1")
	if err != nil {
		t.Fatalf("Job: %v", err)
	}
	if read.Model != "photo/colorize" || string(read.Input) != `{"prompt":"job1"}` || read.Status != tollgate.JobStarting || read.Seq != got.Seq {
		t.Errorf("Job = %+v", read)
	}
	if read.Webhook != "https://hooks.example/x" || fmt.Sprint(read.WebhookEvents) != "[start completed]" {
		t.Errorf("webhook %q %v, want it stored", read.Webhook, read.WebhookEvents)
	}
	wantTime(t, "CreatedAt", read.CreatedAt, at(0))
	wantTime(t, "CancelAt", read.CancelAt, at(time.Hour))
	wantTime(t, "StartedAt", read.StartedAt, time.Time{})
	for _, o := range []tollgate.Owner{ownerB, {TenantID: "other", UserID: ownerA.UserID}} {
		_, err := s.Job(t.Context(), o, "job1")
		wantCode(t, "another owner's Job", err, tollgate.ENotFound)
	}
	_, err = s.Job(t.Context(), ownerA, "nope")
	wantCode(t, "unknown Job", err, tollgate.ENotFound)
	bad := NewJob(ownerA, "photo/colorize", "job2")
	bad.Input = json.RawMessage(`[1]`)
	_, _, err = s.Enqueue(t.Context(), bad, tollgate.QueueLimits{})
	wantCode(t, "Enqueue with a non-object input", err, tollgate.EInvalid)
	_, _, err = s.Enqueue(t.Context(), NewJob(ownerA, "photo/colorize", "job1"), tollgate.QueueLimits{})
	wantCode(t, "Enqueue of an existing id", err, tollgate.EConflict)
	if j, err := s.JobByID(t.Context(), "job1"); err != nil || j.UserID != ownerA.UserID {
		t.Errorf("JobByID = %+v, %v", j, err)
	}
}

func testJobIdempotency(t *testing.T, s tollgate.JobStore) {
	with := func(o tollgate.Owner, id, hash string) *tollgate.Job {
		j := NewJob(o, "m/x", id)
		j.IdempotencyKey, j.BodyHash = "key-1", hash
		return j
	}
	first := MustEnqueue(t, s, with(ownerA, "j1", "h1"))
	again, created, err := s.Enqueue(t.Context(), with(ownerA, "j2", "h1"), tollgate.QueueLimits{})
	if err != nil || created || again.ID != first.ID {
		t.Errorf("same key and body: job %v created %v err %v, want %s not created", again, created, err, first.ID)
	}
	_, _, err = s.Enqueue(t.Context(), with(ownerA, "j3", "h2"), tollgate.QueueLimits{})
	wantCode(t, "same key, another body", err, tollgate.EConflict)
	other := MustEnqueue(t, s, with(ownerB, "j4", "h2"))
	if other.ID != "j4" {
		t.Errorf("another user's key: got %s, want a job of its own", other.ID)
	}
	if _, err := s.Job(t.Context(), ownerA, "j2"); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Errorf("the repeated submit stored a second job: %v", err)
	}
	if j, err := s.JobByKey(t.Context(), ownerA, "key-1"); err != nil || j.ID != first.ID || j.BodyHash != "h1" {
		t.Errorf("JobByKey(A, key-1) = %+v, %v; want %s with its body hash", j, err, first.ID)
	}
	if j, err := s.JobByKey(t.Context(), ownerB, "key-1"); err != nil || j.ID != "j4" {
		t.Errorf("JobByKey(B, key-1) = %+v, %v; want B's own j4", j, err)
	}
	_, err = s.JobByKey(t.Context(), ownerA, "key-2")
	wantCode(t, "an unused key", err, tollgate.ENotFound)
	_, err = s.JobByKey(t.Context(), tollgate.Owner{TenantID: ownerA.TenantID, UserID: "someone-else"}, "key-1")
	wantCode(t, "another user's key", err, tollgate.ENotFound)
}

func testJobMaxQueued(t *testing.T, s tollgate.JobStore) {
	limits := tollgate.QueueLimits{MaxQueued: 2}
	for i := range 2 {
		if _, _, err := s.Enqueue(t.Context(), NewJob(ownerA, "m/x", fmt.Sprint("q", i)), limits); err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
	}
	_, _, err := s.Enqueue(t.Context(), NewJob(ownerA, "m/x", "q2"), limits)
	wantCode(t, "third queued job", err, tollgate.EQueueFull)
	if _, _, err := s.Enqueue(t.Context(), NewJob(ownerB, "m/x", "b0"), limits); err != nil {
		t.Errorf("another user's job refused: %v", err)
	}
	if j := pick(t, s, "m/x", 1); j == nil || j.UserID != ownerA.UserID {
		t.Fatalf("Pick = %+v, want one of A's", j)
	}
	if _, _, err := s.Enqueue(t.Context(), NewJob(ownerA, "m/x", "q3"), limits); err != nil {
		t.Errorf("a job started, so one more may wait: %v", err)
	}
	if _, err := s.Cancel(t.Context(), ownerA, "q1", at(0)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Enqueue(t.Context(), NewJob(ownerA, "m/x", "q4"), limits); err != nil {
		t.Errorf("a job was canceled, so one more may wait: %v", err)
	}
}

func testJobCapacity(t *testing.T, s tollgate.JobStore) {
	for i := range 4 {
		MustEnqueue(t, s, NewJob(ownerA, "m/x", fmt.Sprint("c", i)))
	}
	ups := []string{"http://gpu-1", "http://gpu-2"}
	a, b := pick(t, s, "m/x", 1, ups...), pick(t, s, "m/x", 1, ups...)
	if a == nil || b == nil || a.Upstream == b.Upstream {
		t.Fatalf("two picks on two upstreams of capacity 1: %+v, %+v", a, b)
	}
	if a.Status != tollgate.JobProcessing || a.ID != "c0" || b.ID != "c1" {
		t.Errorf("picked %s (%s) and %s, want c0 processing, then c1", a.ID, a.Status, b.ID)
	}
	wantTime(t, "StartedAt", a.StartedAt, at(time.Minute))
	if c := pick(t, s, "m/x", 1, ups...); c != nil {
		t.Fatalf("a third pick with every slot taken got %s", c.ID)
	}
	// Another model on the same upstream shares its slots.
	MustEnqueue(t, s, NewJob(ownerB, "m/y", "y0"))
	if c := pick(t, s, "m/y", 1, ups...); c != nil {
		t.Fatalf("another model picked %s on a full upstream", c.ID)
	}
	finish(t, s, a.ID)
	c := pick(t, s, "m/x", 1, ups...)
	if c == nil || c.Upstream != a.Upstream || c.ID != "c2" {
		t.Fatalf("after a finish, pick = %+v, want c2 on %s", c, a.Upstream)
	}
	if c := pick(t, s, "m/x", 2, ups...); c == nil {
		t.Error("with capacity 2 one more job starts")
	}
	_, err := s.Pick(t.Context(), tollgate.PickRequest{Model: "m/x", Capacity: 1})
	wantCode(t, "Pick without upstreams", err, tollgate.EInvalid)
}

// testJobFairness: A submits 6 and one starts, then B submits 1, then a
// user of a higher priority 1. The start order on a capacity-1 upstream is
// A, the priority job, B, then the rest of A's in order.
func testJobFairness(t *testing.T, s tollgate.JobStore) {
	for i := range 6 {
		MustEnqueue(t, s, NewJob(ownerA, "m/x", fmt.Sprint("a", i)))
	}
	first := pick(t, s, "m/x", 1)
	MustEnqueue(t, s, NewJob(ownerB, "m/x", "b0"))
	p := NewJob(ownerP, "m/x", "p0")
	p.Priority = 10
	MustEnqueue(t, s, p)
	order := []string{first.ID}
	for cur := first; cur != nil; {
		finish(t, s, cur.ID)
		if cur = pick(t, s, "m/x", 1); cur != nil {
			order = append(order, cur.ID)
		}
	}
	want := []string{"a0", "p0", "b0", "a1", "a2", "a3", "a4", "a5"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("start order %v, want %v", order, want)
	}
}

func testJobConcurrency(t *testing.T, s tollgate.JobStore) {
	for i := range 3 {
		j := NewJob(ownerA, "m/x", fmt.Sprint("a", i))
		j.MaxRunning = 1
		MustEnqueue(t, s, j)
	}
	first := pick(t, s, "m/x", 4)
	if next := pick(t, s, "m/x", 4); next != nil {
		t.Fatalf("a user at concurrency 1 got a second job %s", next.ID)
	}
	MustEnqueue(t, s, NewJob(ownerB, "m/x", "b0"))
	if next := pick(t, s, "m/x", 4); next == nil || next.ID != "b0" {
		t.Fatalf("pick = %+v, want B's job past A at its cap", next)
	}
	finish(t, s, first.ID)
	if next := pick(t, s, "m/x", 4); next == nil || next.ID != "a1" {
		t.Fatalf("pick = %+v, want a1 once a0 ended", next)
	}
}

func testJobCancel(t *testing.T, s tollgate.JobStore) {
	MustEnqueue(t, s, NewJob(ownerA, "m/x", "run"))
	MustEnqueue(t, s, NewJob(ownerA, "m/x", "wait"))
	running := pick(t, s, "m/x", 1)
	_, err := s.Cancel(t.Context(), ownerB, "wait", at(0))
	wantCode(t, "cancel of another user's job", err, tollgate.ENotFound)
	c, err := s.Cancel(t.Context(), ownerA, "wait", at(3*time.Minute))
	if err != nil || c.Status != tollgate.JobCanceled {
		t.Fatalf("Cancel(waiting) = %+v, %v; want canceled", c, err)
	}
	wantTime(t, "CompletedAt", c.CompletedAt, at(3*time.Minute))
	r, err := s.Cancel(t.Context(), ownerA, running.ID, at(0))
	if err != nil || r.Status != tollgate.JobProcessing || !r.CancelRequested {
		t.Fatalf("Cancel(running) = %+v, %v; want processing with cancel requested", r, err)
	}
	if got, _ := s.JobByID(t.Context(), running.ID); !got.CancelRequested {
		t.Error("cancel request of a running job not stored")
	}
	finish(t, s, running.ID)
	if j := pick(t, s, "m/x", 1); j != nil {
		t.Fatalf("a canceled job was picked: %s", j.ID)
	}
	again, err := s.Cancel(t.Context(), ownerA, "wait", at(time.Hour))
	if err != nil || again.Status != tollgate.JobCanceled {
		t.Errorf("cancel of an ended job = %+v, %v", again, err)
	}
	wantTime(t, "CompletedAt after a second cancel", again.CompletedAt, at(3*time.Minute))
	_, err = s.Finish(t.Context(), "wait", tollgate.JobResult{Status: tollgate.JobSucceeded})
	wantCode(t, "Finish of a canceled job", err, tollgate.EConflict)
}

func testJobFinish(t *testing.T, s tollgate.JobStore) {
	MustEnqueue(t, s, NewJob(ownerA, "m/x", "f0"))
	MustEnqueue(t, s, NewJob(ownerA, "m/x", "f1"))
	_, err := s.Finish(t.Context(), "f0", tollgate.JobResult{Status: tollgate.JobSucceeded})
	wantCode(t, "Finish of a waiting job", err, tollgate.ENotFound)
	j := pick(t, s, "m/x", 2)
	if err := s.SetHandle(t.Context(), j.ID, "prompt-7"); err != nil {
		t.Fatalf("SetHandle: %v", err)
	}
	wantCode(t, "SetHandle of a waiting job", s.SetHandle(t.Context(), "f1", "x"), tollgate.ENotFound)
	run, err := s.Running(t.Context())
	if err != nil || len(run) != 1 || run[0].ID != "f0" || run[0].Handle != "prompt-7" || run[0].Upstream != "http://gpu-1" {
		t.Fatalf("Running = %+v, %v", run, err)
	}
	done := finish(t, s, "f0")
	if done.Status != tollgate.JobSucceeded || string(done.Output) != `"done"` || done.PredictMillis != 1500 ||
		done.OutputAudioMillis != 2800 {
		t.Errorf("Finish = %+v", done)
	}
	wantTime(t, "CompletedAt", done.CompletedAt, at(2*time.Minute))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			_, err := s.Finish(t.Context(), "f0", tollgate.JobResult{Status: tollgate.JobFailed})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		wantCode(t, "a second Finish", err, tollgate.EConflict)
	}
	if got, _ := s.JobByID(t.Context(), "f0"); got.Status != tollgate.JobSucceeded || got.OutputAudioMillis != 2800 {
		t.Errorf("a second Finish changed the job to %s, %d ms of output audio", got.Status, got.OutputAudioMillis)
	}
	if run, _ := s.Running(t.Context()); len(run) != 0 {
		t.Errorf("Running after finish = %d jobs", len(run))
	}
	_, err = s.Finish(t.Context(), "f1", tollgate.JobResult{Status: tollgate.JobProcessing})
	wantCode(t, "Finish with a non-final status", err, tollgate.EInvalid)
}

func testJobExpired(t *testing.T, s tollgate.JobStore) {
	for i, d := range []time.Duration{time.Minute, time.Hour, 0} {
		j := NewJob(ownerA, "m/x", fmt.Sprint("e", i))
		if d > 0 {
			j.CancelAt = at(d)
		}
		MustEnqueue(t, s, j)
	}
	got, err := s.CancelExpired(t.Context(), at(10*time.Minute))
	if err != nil || len(got) != 1 || got[0].ID != "e0" || got[0].Status != tollgate.JobCanceled {
		t.Fatalf("CancelExpired = %+v, %v; want e0 canceled", got, err)
	}
	if j := pick(t, s, "m/x", 1); j == nil || j.ID != "e1" {
		t.Fatalf("pick after expiry = %+v, want e1", j)
	}
	if got, _ := s.CancelExpired(t.Context(), at(2*time.Hour)); len(got) != 0 {
		t.Errorf("a started job expired: %+v", got)
	}
}

func testJobPages(t *testing.T, s tollgate.JobStore) {
	for i := range 5 {
		MustEnqueue(t, s, NewJob(ownerA, "m/x", fmt.Sprint("p", i)))
		MustEnqueue(t, s, NewJob(ownerB, "m/x", fmt.Sprint("other", i)))
	}
	ids := func(js []*tollgate.Job) string {
		var out []string
		for _, j := range js {
			out = append(out, j.ID)
		}
		return fmt.Sprint(out)
	}
	page, err := s.Jobs(t.Context(), tollgate.JobQuery{Owner: ownerA, Limit: 2})
	if err != nil || ids(page) != "[p4 p3]" {
		t.Fatalf("first page %s, %v; want [p4 p3]", ids(page), err)
	}
	next, err := s.Jobs(t.Context(), tollgate.JobQuery{Owner: ownerA, Before: page[1].Seq, Limit: 2})
	if err != nil || ids(next) != "[p2 p1]" {
		t.Fatalf("next page %s, %v; want [p2 p1]", ids(next), err)
	}
	prev, err := s.Jobs(t.Context(), tollgate.JobQuery{Owner: ownerA, After: next[0].Seq, Limit: 2})
	if err != nil || ids(prev) != "[p4 p3]" {
		t.Fatalf("previous page %s, %v; want [p4 p3]", ids(prev), err)
	}
	last, _ := s.Jobs(t.Context(), tollgate.JobQuery{Owner: ownerA, Before: next[1].Seq, Limit: 2})
	if ids(last) != "[p0]" {
		t.Errorf("last page %s, want [p0]", ids(last))
	}
	none, _ := s.Jobs(t.Context(), tollgate.JobQuery{Owner: tollgate.Owner{TenantID: "x", UserID: ownerA.UserID}, Limit: 10})
	if len(none) != 0 {
		t.Errorf("another tenant's user of the same id listed %s", ids(none))
	}
	_, err = s.Jobs(t.Context(), tollgate.JobQuery{Owner: ownerA, Limit: 0})
	wantCode(t, "Jobs with limit 0", err, tollgate.EInvalid)
}

// testJobConcurrentPicks: many pickers at once never run more jobs on an
// upstream than its capacity, and each job is picked once.
func testJobConcurrentPicks(t *testing.T, s tollgate.JobStore) {
	for i := range 20 {
		MustEnqueue(t, s, NewJob(tollgate.Owner{TenantID: "t", UserID: fmt.Sprint("u", i%5)}, "m/x", fmt.Sprint("k", i)))
	}
	picked := map[string]int{}
	for round := 0; len(picked) < 20 && round < 40; round++ {
		var mu sync.Mutex
		var got []*tollgate.Job
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				j, err := s.Pick(t.Context(), tollgate.PickRequest{Model: "m/x", Upstreams: []string{"http://gpu-1"}, Capacity: 2, Now: at(0)})
				if err != nil {
					t.Errorf("Pick: %v", err)
				}
				if j != nil {
					mu.Lock()
					got = append(got, j)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(got) > 2 {
			t.Fatalf("round %d: %d jobs running on a capacity-2 upstream", round, len(got))
		}
		for _, j := range got {
			picked[j.ID]++
			finish(t, s, j.ID)
		}
	}
	for id, n := range picked {
		if n != 1 {
			t.Errorf("job %s picked %d times", id, n)
		}
	}
	if len(picked) != 20 {
		t.Errorf("%d of 20 jobs picked", len(picked))
	}
}

func testJobResultsExpire(t *testing.T, s tollgate.JobStore) {
	for i := range 3 {
		MustEnqueue(t, s, NewJob(ownerA, "m/x", fmt.Sprint("r", i)))
	}
	MustEnqueue(t, s, NewJob(ownerA, "m/y", "other-model"))
	for _, m := range []string{"m/x", "m/x", "m/y"} {
		j := pick(t, s, m, 5)
		if _, err := s.Finish(t.Context(), j.ID, tollgate.JobResult{Status: tollgate.JobSucceeded, CompletedAt: at(time.Duration(j.Seq) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ExpiredResults(t.Context(), "m/x", at(time.Hour), 10)
	if err != nil || len(got) != 2 || got[0].ID != "r0" || got[1].ID != "r1" {
		t.Fatalf("ExpiredResults = %v, %v; want r0, r1 (ended, oldest first; r2 still waits)", got, err)
	}
	if err := s.MarkResultsRemoved(t.Context(), "r0"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ExpiredResults(t.Context(), "m/x", at(time.Hour), 10)
	if len(got) != 1 || got[0].ID != "r1" {
		t.Errorf("after removal ExpiredResults = %v, want r1", got)
	}
	if j, _ := s.JobByID(t.Context(), "r0"); !j.ResultsRemoved {
		t.Error("ResultsRemoved not stored")
	}
	if got, _ := s.ExpiredResults(t.Context(), "m/x", at(time.Second), 10); len(got) != 0 {
		t.Errorf("results ending after the cutoff expired: %v", got)
	}
	wantCode(t, "MarkResultsRemoved of an unknown job", s.MarkResultsRemoved(t.Context(), "nope"), tollgate.ENotFound)
}

func testJobStats(t *testing.T, s tollgate.JobStore) {
	for i := range 3 {
		MustEnqueue(t, s, NewJob(ownerA, "m/x", fmt.Sprint("s", i)))
	}
	MustEnqueue(t, s, NewJob(ownerB, "m/x", "sb"))
	MustEnqueue(t, s, NewJob(ownerB, "m/y", "sy"))
	pick(t, s, "m/x", 2, "http://gpu-1")
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Queued["m/x"] != 3 || st.Queued["m/y"] != 1 || st.Running["http://gpu-1"] != 1 {
		t.Errorf("Stats = %+v, want m/x 3 and m/y 1 queued, 1 running on gpu-1", st)
	}
}

func testAllJobs(t *testing.T, s tollgate.JobStore) {
	MustEnqueue(t, s, NewJob(ownerA, "m/x", "x0"))
	MustEnqueue(t, s, NewJob(ownerB, "m/x", "x1"))
	MustEnqueue(t, s, NewJob(ownerP, "m/y", "y0"))
	pick(t, s, "m/x", 1)
	ids := func(f tollgate.JobFilter) string {
		t.Helper()
		js, err := s.AllJobs(t.Context(), f)
		if err != nil {
			t.Fatalf("AllJobs(%+v): %v", f, err)
		}
		var out []string
		for _, j := range js {
			out = append(out, j.ID)
		}
		return fmt.Sprint(out)
	}
	for _, c := range []struct {
		f    tollgate.JobFilter
		want string
	}{
		{tollgate.JobFilter{Limit: 10}, "[y0 x1 x0]"},
		{tollgate.JobFilter{Limit: 2}, "[y0 x1]"},
		{tollgate.JobFilter{Model: "m/x", Limit: 10}, "[x1 x0]"},
		{tollgate.JobFilter{Status: tollgate.JobProcessing, Limit: 10}, "[x0]"},
		{tollgate.JobFilter{TenantID: "acme", UserID: ownerB.UserID, Limit: 10}, "[x1]"},
		{tollgate.JobFilter{TenantID: "big", Limit: 10}, "[y0]"},
	} {
		if got := ids(c.f); got != c.want {
			t.Errorf("AllJobs(%+v) = %s, want %s", c.f, got, c.want)
		}
	}
	all, _ := s.AllJobs(t.Context(), tollgate.JobFilter{Limit: 10})
	if got := ids(tollgate.JobFilter{Before: all[1].Seq, Limit: 10}); got != "[x0]" {
		t.Errorf("AllJobs before x1 = %s, want [x0]", got)
	}
	_, err := s.AllJobs(t.Context(), tollgate.JobFilter{})
	wantCode(t, "AllJobs without a limit", err, tollgate.EInvalid)
}
