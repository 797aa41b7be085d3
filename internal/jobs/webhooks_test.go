package jobs_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hook is a webhook receiver that answers 503 to its first request, so
// every test sees a retry, and records the rest.
type hook struct {
	mu    sync.Mutex
	first bool
	got   chan *http.Request
	body  chan []byte
}

func newHook() *hook { return &hook{got: make(chan *http.Request, 100), body: make(chan []byte, 100)} }

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	failed := !h.first
	h.first = true
	h.mu.Unlock()
	if failed {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	h.got <- r
	h.body <- b
}

// next returns the next delivery's headers and prediction.
func (h *hook) next(t *testing.T) (http.Header, []byte, pred) {
	t.Helper()
	r, b := <-h.got, <-h.body
	var p pred
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("webhook body %s: %v", b, err)
	}
	return r.Header, b, p
}

// verifySignature checks a delivery per Standard Webhooks.
func verifySignature(t *testing.T, secret string, h http.Header, body []byte) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q is not whsec_<base64>", secret)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", h.Get("webhook-id"), h.Get("webhook-timestamp"), body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if h.Get("webhook-signature") != want || h.Get("webhook-id") == "" {
		t.Errorf("webhook-signature %q, want %q", h.Get("webhook-signature"), want)
	}
	ts, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if d := time.Since(time.Unix(ts, 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("webhook-timestamp %d is not now", ts)
	}
}

func TestWebhooks(t *testing.T) {
	var e *env
	e = setup(t, "webhook_allow_private: true\n"+models, echo(func() *clock { return e.clock }))
	h := newHook()
	receiver := httptest.NewServer(h)
	t.Cleanup(receiver.Close)
	var secret struct{ Key string }
	_, _, b := e.call(t, "alice", "GET", "/v1/webhooks/default/secret", nil)
	json.Unmarshal(b, &secret)
	var bobs struct{ Key string }
	_, _, b = e.call(t, "bob", "GET", "/v1/webhooks/default/secret", nil)
	json.Unmarshal(b, &bobs)
	if bobs.Key == secret.Key || bobs.Key == "" {
		t.Errorf("alice and bob have the secrets %q and %q, want each their own", secret.Key, bobs.Key)
	}

	status, _, b := e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "hook"},
		"webhook": receiver.URL + "/hook", "webhook_events_filter": []string{"completed"}})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, b)
	}
	var only pred
	json.Unmarshal(b, &only)
	hd, body, p := h.next(t) // the first attempt failed: this is the retry
	if p.ID != only.ID || p.Status != "succeeded" {
		t.Errorf("completed webhook carries %s %s, want %s succeeded", p.ID, p.Status, only.ID)
	}
	verifySignature(t, secret.Key, hd, body)

	var all pred
	_, _, b = e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "all"},
		"webhook": receiver.URL + "/hook"})
	json.Unmarshal(b, &all)
	var statuses []string
	for {
		hd, body, p := h.next(t)
		verifySignature(t, secret.Key, hd, body)
		if p.ID == only.ID {
			t.Errorf("a %s event of a job that asked only for completed", p.Status)
			continue
		}
		statuses = append(statuses, p.Status)
		if p.Status == "succeeded" {
			break
		}
	}
	if !slices.Equal(statuses, []string{"processing", "succeeded"}) {
		t.Errorf("events of a job with every event: %v, want start (processing) then completed", statuses)
	}
}
