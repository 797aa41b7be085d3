package webhook_test

import (
	"net/http"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

func TestThrottle(t *testing.T) {
	t.Run("OutputAndLogsAtMostEvery500ms", func(t *testing.T) {
		r := newReceiver(t)
		db := openDB(t)
		synctest.Test(t, func(t *testing.T) {
			f := setup(t, db, webhook.Config{})
			mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookStart, 0))
			start := time.Now()
			// 30 updates, 100 ms apart, output and logs in turn.
			for i := 1; i <= 30; i++ {
				typ := tollgate.WebhookOutput
				if i%2 == 0 {
					typ = tollgate.WebhookLogs
				}
				mustSend(t, f.svc, event(r.URL, "p1", typ, i))
				time.Sleep(100 * time.Millisecond)
			}
			mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 31))
			timeline(r, 10*time.Second, 10*time.Millisecond)
			hits := r.Hits()
			if len(hits) < 3 || hits[0].Event != tollgate.WebhookStart || hits[len(hits)-1].Event != tollgate.WebhookCompleted {
				t.Fatalf("events %v, want start first and completed last", events(hits))
			}
			updates := hits[1 : len(hits)-1]
			if n := len(updates); n < 5 || n > 7 {
				t.Errorf("%d output/logs messages for 30 updates over 3s, want 5 to 7 (one per 500ms)", n)
			}
			for i := 1; i < len(updates); i++ {
				if updates[i].Seq <= updates[i-1].Seq {
					t.Errorf("update %d carries seq %d after seq %d; want newer updates only", i, updates[i].Seq, updates[i-1].Seq)
				}
			}
			if time.Since(start) < 3*time.Second {
				t.Fatal("clock did not move")
			}
		})
	})
	t.Run("SpacedOut", func(t *testing.T) {
		r := newReceiver(t)
		db := openDB(t)
		synctest.Test(t, func(t *testing.T) {
			f := setup(t, db, webhook.Config{})
			// Updates every 10 ms for 2 s while the test watches the clock.
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 1; i <= 200; i++ {
					mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookOutput, i))
					time.Sleep(10 * time.Millisecond)
				}
			}()
			at := timeline(r, 3*time.Second, 10*time.Millisecond)
			<-done
			if len(at) < 4 || len(at) > 5 {
				t.Errorf("%d output messages at %v for 2s of updates, want 4 or 5", len(at), at)
			}
			for i := 1; i < len(at); i++ {
				if g := at[i] - at[i-1]; g < 500*time.Millisecond {
					t.Errorf("output messages %v apart (at %v), want at least 500ms", g, at)
				}
			}
		})
	})
	t.Run("PerPrediction", func(t *testing.T) {
		r := newReceiver(t)
		db := openDB(t)
		synctest.Test(t, func(t *testing.T) {
			f := setup(t, db, webhook.Config{})
			mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookOutput, 1))
			mustSend(t, f.svc, event(r.URL, "p2", tollgate.WebhookOutput, 1))
			synctest.Wait()
			if n := len(r.Hits()); n != 2 {
				t.Errorf("%d messages at once for two predictions' first output, want 2", n)
			}
		})
	})
}

func TestCompletedLast(t *testing.T) {
	// Outputs fail (and wait for a retry); everything else is accepted.
	r := newReceiverFunc(t, func(_ int, h hit, w http.ResponseWriter) {
		if h.Event == tollgate.WebhookOutput {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	db := openDB(t)
	synctest.Test(t, func(t *testing.T) {
		f := setup(t, db, webhook.Config{InitialBackoff: 10 * time.Second})
		mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookStart, 0))
		mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookOutput, 1))
		synctest.Wait()
		time.Sleep(time.Second) // the output is waiting for its retry
		mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookOutput, 2))
		mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 3))
		mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookOutput, 4))
		mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookLogs, 5))
		timeline(r, time.Hour, time.Second)
		// The second output may be tried (and fail) before completed is
		// queued, or be replaced by it while it waits: both are right.
		// Wrong is anything after completed, completed twice, or an
		// output of a later sequence reaching the receiver.
		got := events(r.Hits())
		want, wantTried := []string{"start", "output", "completed"}, []string{"start", "output", "output", "completed"}
		if !slices.Equal(got, want) && !slices.Equal(got, wantTried) {
			t.Errorf("receiver got %v, want %v (or the second output tried once before completed): completed last, nothing after it", got, want)
		}
	})
}

func TestEventsFilter(t *testing.T) {
	all := []string{tollgate.WebhookStart, tollgate.WebhookOutput, tollgate.WebhookLogs, tollgate.WebhookCompleted}
	for _, tc := range []struct {
		filter []string
		want   []string
	}{
		{nil, all},
		{[]string{"completed"}, []string{"completed"}},
		{[]string{"start", "completed"}, []string{"start", "completed"}},
		{[]string{"logs"}, []string{"logs"}},
	} {
		r := newReceiver(t)
		db := openDB(t)
		synctest.Test(t, func(t *testing.T) {
			f := setup(t, db, webhook.Config{})
			for i, typ := range all {
				mustSend(t, f.svc, event(r.URL, "p1", typ, i, tc.filter...))
				time.Sleep(time.Second)
			}
			timeline(r, time.Minute, time.Second)
			if got := events(r.Hits()); !slices.Equal(got, tc.want) {
				t.Errorf("filter %v: receiver got %v, want %v", tc.filter, got, tc.want)
			}
		})
	}
	t.Run("UnknownEventRefused", func(t *testing.T) {
		f := setup(t, nil, webhook.Config{})
		err := f.svc.Send(t.Context(), event("http://127.0.0.1:9/", "p1", "completed", 0, "completed", "finished"))
		if tollgate.ErrorCode(err) != tollgate.EInvalid {
			t.Errorf("Send with filter [completed finished] = %v, want EInvalid", err)
		}
		if err := webhook.ValidateFilter([]string{"start", "bogus"}); tollgate.ErrorCode(err) != tollgate.EInvalid {
			t.Errorf("ValidateFilter([start bogus]) = %v, want EInvalid", err)
		}
	})
}

func events(hs []hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Event
	}
	return out
}
