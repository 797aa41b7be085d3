package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestClusterKilledReplicaReconciledByLease runs replica a as a real
// process and replica b in this one, on one PostgreSQL and Redis. A call
// is in flight on a when a is killed with SIGKILL: b's usage report shows
// it in flight, and once a's lease has expired by b's clock, b's next
// heartbeat settles it as unknown (not minutes later).
func TestClusterKilledReplicaReconciledByLease(t *testing.T) {
	if testing.Short() {
		t.Skip("testing.Short: skipping the SIGKILL test")
	}
	arrived := make(chan string, 1)
	hold := make(chan struct{})
	up := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.Header.Get("X-Request-ID")
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})
	defer close(hold)
	yaml := clusterYAML(t, `metering: {lease_ttl: 60s}
server: {access_log: false}
routes:
  - name: slow
    path: /slow
    upstreams: [`+up.URL+`]
    price: {per_request: "0.01"}
`)
	var ahead atomic.Int64 // how far b's meter clock runs ahead
	b := setupWithOptions(t, yaml, gatewayOptions{Heartbeat: 50 * time.Millisecond,
		MeterClock: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})

	a, addr := childGateway(t, yaml)
	child := startChild(t, a.Config, addr)
	tok := a.login("admin", adminPassword).AccessToken
	go func() {
		req, _ := http.NewRequest("POST", a.URL+"/slow", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	id := <-arrived

	type total struct {
		Requests int64
		InFlight int64 `json:"in_flight"`
		Reserved string
	}
	report := func() total {
		var rep struct{ Total total }
		_, body := b.do("GET", "/admin/v1/usage", tok, "")
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("usage report: %v: %s", err, body)
		}
		return rep.Total
	}
	if r := report(); r.InFlight != 1 || r.Reserved != "0.010000" || r.Requests != 0 {
		t.Fatalf("b's report while a serves the call: %+v; want it in flight, reserving 0.010000", r)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	if r := report(); r.InFlight != 1 {
		t.Fatalf("b's report right after the kill: %+v; want the call still in flight", r)
	}

	// a's lease lasts 60 s from its last renewal, before it died; b's
	// clock now runs past it. b heartbeats every 50 ms.
	if r := report(); r.InFlight != 1 {
		t.Fatalf("b reconciled a's call while a's lease held: %+v", r)
	}
	ahead.Store(int64(61 * time.Second))
	if !eventually(3*time.Second, func() bool { r := report(); return r.InFlight == 0 && r.Requests == 1 }) {
		t.Fatalf("b's report after a's lease expired: %+v; want the call settled", report())
	}
	if rec := b.exported(id); rec.Outcome != "unknown" || rec.Cost != "0.010000" {
		t.Fatalf("a's call reconciled as %s costing %s; want unknown, its reservation 0.010000", rec.Outcome, rec.Cost)
	}
}
