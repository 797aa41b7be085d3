package webhook_test

import (
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

// timeline advances the bubble's clock in steps for total and returns when
// (since the call, to within a step) each of the receiver's requests came.
// Every request is complete before the clock moves on, since the clock
// moves only while the bubble waits on timers.
func timeline(r *receiver, total, step time.Duration) []time.Duration {
	start := time.Now()
	var at []time.Duration
	for {
		synctest.Wait()
		for n := len(r.Hits()); len(at) < n; {
			at = append(at, time.Since(start))
		}
		if time.Since(start) >= total {
			return at
		}
		time.Sleep(step)
	}
}

func TestRetries(t *testing.T) {
	t.Run("ServerErrorsThenSuccess", func(t *testing.T) {
		r := newReceiver(t, status(500), status(502))
		db := openDB(t)
		synctest.Test(t, func(t *testing.T) {
			f := setup(t, db, webhook.Config{InitialBackoff: time.Second})
			t0 := time.Now()
			mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 1))
			at := timeline(r, 10*time.Second, 10*time.Millisecond)
			if n := len(timeline(r, time.Hour, time.Minute)); len(at) != 3 || n != 3 {
				t.Fatalf("receiver got %d requests in 10s and %d in an hour, want 3 (500, 502, then 200 and no more)", len(at), n)
			}
			// Back-off with jitter: the nth wait is in [d/2, d] for d = 1s·2^(n-1).
			if g := at[1] - at[0]; g < 500*time.Millisecond || g > time.Second+10*time.Millisecond {
				t.Errorf("first retry after %v, want 0.5s to 1s", g)
			}
			if g := at[2] - at[1]; g < time.Second || g > 2*time.Second+10*time.Millisecond {
				t.Errorf("second retry after %v, want 1s to 2s", g)
			}
			hits := r.Hits()
			for _, h := range hits {
				if id := h.Header.Get("webhook-id"); id != hits[0].Header.Get("webhook-id") || !strings.HasPrefix(id, "msg_") {
					t.Errorf("attempts carry webhook-id %q and %q, want one msg_ id", hits[0].Header.Get("webhook-id"), id)
				}
			}
			wantSigned(t, f.key(t), hits[2], t0.Add(at[2]))
		})
	})
	t.Run("GivesUpAfterMaxAttempts", func(t *testing.T) {
		r := newReceiver(t, status(503), status(503), status(503), status(503), status(503))
		db := openDB(t)
		synctest.Test(t, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			f := setup(t, db, webhook.Config{MaxAttempts: 4, Registerer: reg})
			mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 1))
			at := timeline(r, 2*time.Hour, 100*time.Millisecond)
			if len(at) != 4 {
				t.Errorf("receiver got %d requests, want 4 (MaxAttempts) and then none", len(at))
			}
			if n := metric(t, reg, "tollgate_webhook_messages_total", map[string]string{"event": "completed", "outcome": "given_up"}); n != 1 {
				t.Errorf("given-up messages counted %v, want 1", n)
			}
			if n := metric(t, reg, "tollgate_webhook_attempts_total", map[string]string{"result": "retryable"}); n != 4 {
				t.Errorf("failed attempts counted %v, want 4", n)
			}
			if l := f.logs.String(); !strings.Contains(l, "webhook given up") || !strings.Contains(l, "attempts=4") {
				t.Errorf("logs do not show the give-up after 4 attempts:\n%s", l)
			}
		})
	})
	t.Run("GivesUpWithinMaxElapsed", func(t *testing.T) {
		r := newReceiver(t, status(500), status(500), status(500), status(500), status(500), status(500))
		db := openDB(t)
		synctest.Test(t, func(t *testing.T) {
			f := setup(t, db, webhook.Config{MaxAttempts: 100, InitialBackoff: time.Minute, MaxBackoff: 10 * time.Minute, MaxElapsed: 5 * time.Minute})
			mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 1))
			at := timeline(r, 2*time.Hour, time.Second)
			if len(at) == 0 || at[len(at)-1] > 5*time.Minute {
				t.Errorf("requests at %v, want the last within MaxElapsed (5m)", at)
			}
			if !strings.Contains(f.logs.String(), "webhook given up") {
				t.Errorf("logs do not show the give-up:\n%s", f.logs.String())
			}
		})
	})
	t.Run("HonoursRetryAfter", func(t *testing.T) {
		r := newReceiver(t, retryAfter(429, "7"), retryAfter(503, "3"))
		db := openDB(t)
		synctest.Test(t, func(t *testing.T) {
			f := setup(t, db, webhook.Config{InitialBackoff: 100 * time.Millisecond})
			mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 1))
			at := timeline(r, time.Minute, 10*time.Millisecond)
			if len(at) != 3 {
				t.Fatalf("receiver got %d requests, want 3", len(at))
			}
			if g := at[1] - at[0]; g < 7*time.Second || g > 7*time.Second+10*time.Millisecond {
				t.Errorf("retry after a 429 with Retry-After: 7 came after %v, want 7s", g)
			}
			if g := at[2] - at[1]; g < 3*time.Second || g > 3*time.Second+10*time.Millisecond {
				t.Errorf("retry after a 503 with Retry-After: 3 came after %v, want 3s", g)
			}
		})
	})
	t.Run("ClientErrorsAndRedirectsAreFinal", func(t *testing.T) {
		target := newReceiver(t)
		for _, answer := range []func(http.ResponseWriter){status(400), status(410), func(w http.ResponseWriter) {
			w.Header().Set("Location", target.URL)
			w.WriteHeader(http.StatusTemporaryRedirect)
		}} {
			r := newReceiver(t, answer)
			db := openDB(t)
			synctest.Test(t, func(t *testing.T) {
				f := setup(t, db, webhook.Config{})
				mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 1))
				if at := timeline(r, time.Hour, time.Second); len(at) != 1 {
					t.Errorf("receiver got %d requests, want 1 and no retry", len(at))
				}
				if !strings.Contains(f.logs.String(), "webhook given up") {
					t.Errorf("logs do not show the give-up:\n%s", f.logs.String())
				}
			})
		}
		if n := len(target.Hits()); n != 0 {
			t.Errorf("the redirect's target got %d requests, want 0 (redirects are not followed)", n)
		}
	})
}
