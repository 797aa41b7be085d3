package comfyui_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tollgate/tollgate/internal/comfytest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestSubmitRefusedWhenUnreachable: a ComfyUI nobody listens for is
// refused (tollgate.ErrRefused: nothing ran, the job may be queued
// again); one that was reached and answered an error is not: it may
// have done something.
func TestSubmitRefusedWhenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	input, _ := json.Marshal(map[string]any{"image": "data:image/png;base64," + base64.StdEncoding.EncodeToString(comfytest.PNG(20, 10))})
	run := func(upstream string) *tollgate.JobRun {
		return &tollgate.JobRun{Job: &tollgate.Job{ID: "job1", Owner: tollgate.Owner{TenantID: "acme", UserID: "alice"}, Input: input},
			Upstream: upstream, Report: func(tollgate.JobEvent) {}, Results: &memResults{files: map[string][]byte{}}}
	}
	if _, err := newBackend(t).Submit(t.Context(), run(closed)); !errors.Is(err, tollgate.ErrRefused) {
		t.Errorf("Submit to a closed port: %v, want ErrRefused", err)
	}
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	t.Cleanup(busy.Close)
	if _, err := newBackend(t).Submit(t.Context(), run(busy.URL)); err == nil || errors.Is(err, tollgate.ErrRefused) {
		t.Errorf("Submit to a ComfyUI that answered: %v, want an error that is not ErrRefused", err)
	}
}
