package proxy_test

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/proxy"
)

func TestLeastOutstanding(t *testing.T) {
	hold := make(chan struct{})
	arrived := make(chan string, 10)
	handler := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			arrived <- name
			if r.URL.Path == "/slow" {
				<-hold
			}
			fmt.Fprint(w, name)
		}
	}
	a, b := newUpstream(t, "a", handler("a")), newUpstream(t, "b", handler("b"))
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: api, path: /, upstreams: [%s, %s], public: true}
`, a.URL, b.URL), proxy.Options{})

	// One slow request occupies one upstream ...
	var wg sync.WaitGroup
	wg.Go(func() { wantStatus(t, do(t, "GET", g.URL+"/slow", "", nil), 200) })
	busy := <-arrived
	// ... so every quick request goes to the other one.
	for range 6 {
		res := do(t, "GET", g.URL+"/quick", "", nil)
		if got := readAll(t, res.Body); got == busy {
			t.Errorf("request sent to %s, which has one outstanding; the other has none", got)
		}
		<-arrived
	}
	close(hold)
	wg.Wait()
	waitIdle(t, g)
	// With nothing outstanding, ties alternate.
	seen := map[string]int{}
	for range 4 {
		seen[readAll(t, do(t, "GET", g.URL+"/quick", "", nil).Body)]++
		<-arrived
		waitIdle(t, g)
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Errorf("idle pool spread %v, want round-robin", seen)
	}
}

func TestPassiveHealth(t *testing.T) {
	alive := newUpstream(t, "alive", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now } // frozen: the cool-down never ends
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: api, path: /, upstreams: [%s, %s], public: true}
`, dead, alive.URL), proxy.Options{Now: clock, FailureThreshold: 2})

	failures := 0
	for i := range 12 {
		res := do(t, "GET", g.URL+"/x", "", nil)
		switch res.StatusCode {
		case 200:
		case 502:
			failures++
			if i >= 6 {
				t.Errorf("request %d hit the dead upstream after it was marked down", i)
			}
		default:
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if failures != 2 {
		t.Errorf("%d requests failed, want exactly the threshold (2) before the dead upstream is skipped", failures)
	}
}

func TestActiveHealth(t *testing.T) {
	var served atomic.Int64
	checked := make(chan struct{}, 100)
	sick := newUpstream(t, "sick", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz-up" {
			w.WriteHeader(503)
			checked <- struct{}{}
			return
		}
		served.Add(1)
		fmt.Fprint(w, "sick")
	})
	well := newUpstream(t, "well", nil)
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: api, path: /, upstreams: [%s, %s], public: true, health_check: {path: /healthz-up, interval: 20ms}}
`, sick.URL, well.URL), proxy.Options{})
	if err := g.proxy.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-checked
	<-checked // the first round of checks has been recorded
	for range 6 {
		wantStatus(t, do(t, "GET", g.URL+"/x", "", nil), 200)
	}
	if n := served.Load(); n != 0 {
		t.Errorf("the upstream failing its health check served %d requests", n)
	}
	g.proxy.Stop()
}
