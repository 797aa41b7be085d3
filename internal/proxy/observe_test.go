package proxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/proxy"
)

func TestAccessLogAndMetrics(t *testing.T) {
	up := newUpstream(t, "up", nil)
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: api, path: /api/, upstreams: [%s]}
  - {name: down, path: /down/, upstreams: ["http://127.0.0.1:1"]}
`, up.URL), proxy.Options{})

	res := do(t, "POST", g.URL+"/api/run?x=1", "tok-alice", strings.NewReader(`{"secret_prompt":"hunter2"}`))
	wantStatus(t, res, 200)
	readAll(t, res.Body)
	wantStatus(t, do(t, "GET", g.URL+"/api/run", "", nil), 401)
	wantStatus(t, do(t, "GET", g.URL+"/elsewhere/1", "tok-alice", nil), 404)
	wantStatus(t, do(t, "GET", g.URL+"/elsewhere/2", "tok-alice", nil), 404)
	wantStatus(t, do(t, "GET", g.URL+"/down/x", "tok-alice", nil), 502)

	g.Close() // every request has ended and logged
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(g.logs.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if m["msg"] == "access" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 5 {
		t.Fatalf("%d access lines, want one per request:\n%s", len(lines), g.logs)
	}
	first := lines[0]
	for k, want := range map[string]any{
		"route": "api", "sub": "alice", "tenant": "acme", "iss": "http://gw", "jti": "j-alice",
		"status": float64(200), "bytes_in": float64(len(`{"secret_prompt":"hunter2"}`)), "bytes_out": float64(len("hello from up")),
		"client_ip": "127.0.0.1",
	} {
		if first[k] != want {
			t.Errorf("access line %s = %v, want %v", k, first[k], want)
		}
	}
	for _, k := range []string{"request_id", "upstream_ms", "total_ms"} {
		if _, ok := first[k]; !ok {
			t.Errorf("access line lacks %s", k)
		}
	}
	if first["request_id"] != res.Header.Get("X-Request-Id") {
		t.Errorf("logged request id %v, response %q", first["request_id"], res.Header.Get("X-Request-Id"))
	}
	for _, secret := range []string{"tok-alice", "hunter2", "Bearer"} {
		if strings.Contains(g.logs.String(), secret) {
			t.Errorf("the log contains %q", secret)
		}
	}

	if got := counterValue(t, g, "tollgate_proxy_requests_total", map[string]string{"route": "api", "code": "2xx"}); got != 1 {
		t.Errorf("api 2xx = %v", got)
	}
	if got := counterValue(t, g, "tollgate_proxy_requests_total", map[string]string{"route": "api", "code": "4xx"}); got != 1 {
		t.Errorf("api 4xx = %v", got)
	}
	if got := counterValue(t, g, "tollgate_proxy_requests_total", map[string]string{"route": "(unmatched)", "code": "4xx"}); got != 2 {
		t.Errorf("unmatched 4xx = %v, want both unknown paths under one label", got)
	}
	if got := counterValue(t, g, "tollgate_proxy_upstream_errors_total", map[string]string{"route": "down"}); got != 1 {
		t.Errorf("upstream errors of route down = %v, want 1", got)
	}
	mfs, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() == "tollgate_proxy_requests_total" {
			for _, m := range mf.GetMetric() {
				if m.GetCounter().GetValue() > 0 {
					n++
				}
			}
		}
	}
	if n != 4 {
		t.Errorf("%d request series, want 3: labels must not carry raw paths", n)
	}
}

// counterValue reads a counter of the gateway's registry by its labels.
func counterValue(t *testing.T, g *gateway, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
