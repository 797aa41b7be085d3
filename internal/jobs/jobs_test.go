package jobs_test

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

const models = `
plans:
  free: {max_queued: 3}
  pro: {priority: 10}
  capped: {budget: {amount: "0.05", period: day}}
  tenjobs: {budget: {amount: "0.20", period: day}}
jobs:
  - name: demo/echo
    backend: http
    upstreams: [UPSTREAM]
    path: /run
    timeout: 10s
    retention: 1h
    link_ttl: 10m
    inputs:
      prompt: {type: string, required: true, max: 100}
      size: {type: integer, default: 512, min: 256, max: 1280}
      fast: {type: boolean}
      steps: {type: integer, default: 20, max: 100, plan_max: {free: 30}}
    rules:
      - expr: 'claims.plan == "pro" || input.size <= 680'
        message: "free plan: at most 680 px"
    price: {per_request: "0.01", per_gpu_second: "0.001"}
`

// echo is an upstream that takes 3 seconds of the test clock and answers
// with the input it got, a PNG file on itself and a foreign URL.
func echo(clk func() *clock) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /run", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		clk().Advance(3 * time.Second)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"got": in, "image": "http://" + r.Host + "/files/out.png",
			"user":      r.Header.Get("X-User-ID") + "@" + r.Header.Get("X-Tenant-ID"),
			"elsewhere": "https://example.com/x.png"})
	})
	mux.HandleFunc("GET /files/out.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write([]byte("\x89PNG\r\n\x1a\nfake image bytes"))
	})
	return mux
}

func TestPredictionSucceeds(t *testing.T) { onEngines(t, testPredictionSucceeds) }

func testPredictionSucceeds(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, models, echo(func() *clock { return e.clock }))
	p := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "hi"}, "Prefer", "wait")
	if p.Status != "succeeded" || p.Model != "demo/echo" || p.StartedAt == nil || p.CompletedAt == nil {
		t.Fatalf("prediction %+v, want succeeded with start and end", p)
	}
	if p.Input["size"] != float64(512) {
		t.Errorf("input %v, want the default size 512 filled in", p.Input)
	}
	if p.Metrics["predict_time"] != 3 {
		t.Errorf("metrics %v, want predict_time 3 (the upstream call)", p.Metrics)
	}
	out := p.Output.(map[string]any)
	if got := out["got"].(map[string]any); got["prompt"] != "hi" || got["size"] != float64(512) {
		t.Errorf("the upstream got %v, want the input with defaults", got)
	}
	if out["user"] != "usr_alice@acme" {
		t.Errorf("the upstream saw the owner %v, want usr_alice@acme in the identity headers", out["user"])
	}
	if out["elsewhere"] != "https://example.com/x.png" {
		t.Errorf("a foreign URL in the output became %v", out["elsewhere"])
	}
	link := out["image"].(string)
	if !strings.HasPrefix(link, e.URL+"/v1/results/"+p.ID+"/out.png?") {
		t.Fatalf("image output %s, want a signed result link", link)
	}
	t.Run("the link downloads without credentials", func(t *testing.T) {
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "\x89PNG\r\n\x1a\nfake image bytes" {
			t.Errorf("download %d %q", resp.StatusCode, body)
		}
		if resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers %v, want image/png and nosniff", resp.Header)
		}
	})
	t.Run("range", func(t *testing.T) {
		req, _ := http.NewRequest("GET", link, nil)
		req.Header.Set("Range", "bytes=8-11")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || string(body) != "fake" {
			t.Errorf("range answer %d %q, want 206 \"fake\"", resp.StatusCode, body)
		}
	})
	t.Run("tampered links are refused", func(t *testing.T) {
		u, _ := url.Parse(link)
		for name, change := range map[string]func(url.Values, *url.URL){
			"signature": func(q url.Values, _ *url.URL) { q.Set("sig", strings.Repeat("A", 43)) },
			"expiry":    func(q url.Values, _ *url.URL) { q.Set("exp", "99999999999") },
			"file":      func(_ url.Values, u *url.URL) { u.Path = strings.Replace(u.Path, "out.png", "other.png", 1) },
			"id":        func(_ url.Values, u *url.URL) { u.Path = strings.Replace(u.Path, p.ID, "zzzz", 1) },
		} {
			c := *u
			q := c.Query()
			change(q, &c)
			c.RawQuery = q.Encode()
			resp, err := http.Get(c.String())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("link with a changed %s: %d, want 403", name, resp.StatusCode)
			}
		}
	})
	t.Run("expired links are refused, results past retention are gone", func(t *testing.T) {
		e.clock.Advance(11 * time.Minute)
		resp, _ := http.Get(link)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("link past its link_ttl: %d, want 403", resp.StatusCode)
		}
		fresh := e.get(t, "alice", p.ID).Output.(map[string]any)["image"].(string)
		if resp, _ := http.Get(fresh); resp.StatusCode != 200 {
			t.Errorf("a fresh link of the same result: %d", resp.StatusCode)
		}
		e.clock.Advance(time.Hour)
		status, _, b := e.call(t, "alice", "GET", "/v1/predictions/"+p.ID, nil)
		var gone struct {
			Output      any  `json:"output"`
			DataRemoved bool `json:"data_removed"`
		}
		json.Unmarshal(b, &gone)
		if status != 200 || gone.Output != nil || !gone.DataRemoved {
			t.Errorf("prediction past retention: %d %s, want no output and data_removed", status, b)
		}
		if resp, _ := http.Get(fresh); resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
			t.Errorf("link past retention: %d", resp.StatusCode)
		}
		if n := resultFiles(t, e); n != 1 {
			t.Fatalf("%d result files before removal, want 1", n)
		}
		if err := e.svc.RemoveExpired(t.Context()); err != nil {
			t.Fatalf("RemoveExpired: %v", err)
		}
		if n := resultFiles(t, e); n != 0 {
			t.Errorf("%d result files left after retention", n)
		}
		if j, _ := e.jobs.JobByID(t.Context(), p.ID); !j.ResultsRemoved {
			t.Error("the job is not marked as removed")
		}
	})
	t.Run("charged once: per request plus GPU seconds", func(t *testing.T) {
		r := e.record(t, p.ID)
		if r.Route != "demo/echo" || r.Model != "demo/echo" || r.Outcome != tollgate.ResultOK || r.Units.GPUMillis != 3000 {
			t.Errorf("usage record %+v", r)
		}
		if want := tollgate.Money(10_000 + 3_000); r.Cost != want {
			t.Errorf("cost %s, want %s (0.01 + 3 s × 0.001)", r.Cost, want)
		}
		if want := tollgate.Money(10_000 + 10_000); r.Reserved != want {
			t.Errorf("reserved %s, want %s (0.01 + the 10 s timeout × 0.001)", r.Reserved, want)
		}
	})
}

func TestRefusedPredictions(t *testing.T) { onEngines(t, testRefusedPredictions) }

func testRefusedPredictions(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, models, echo(func() *clock { return e.clock }))
	tests := []struct {
		name, user, path string
		body             any
		status           int
		want             []string
	}{
		{"unknown model", "alice", "/v1/models/demo/nope/predictions", map[string]any{"input": map[string]any{}}, 404, []string{"model demo/nope does not exist"}},
		{"unknown version", "alice", "/v1/predictions", map[string]any{"version": "x/y", "input": map[string]any{}}, 404, []string{"x/y"}},
		{"each bad field named", "alice", "/v1/models/demo/echo/predictions",
			map[string]any{"input": map[string]any{"size": 99999, "fast": "yes", "color": 1}}, 422,
			[]string{"input.prompt: required", "input.size: want at most 1280", "input.fast: want true or false", "input.color: not an input"}},
		{"not an integer", "alice", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x", "size": 300.5}}, 422, []string{"input.size: want an integer"}},
		{"rule", "alice", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x", "size": 1000}}, 403, []string{"free plan: at most 680 px"}},
		{"no jobs scope", "noscope", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x"}}, 403, []string{"jobs"}},
		{"webhook to loopback", "alice", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x"}, "webhook": "http://127.0.0.1:9/hook"}, 422, []string{"webhook host 127.0.0.1 is not a public address"}},
		{"webhook to a private network", "alice", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x"}, "webhook": "https://10.1.2.3/hook"}, 422, []string{"webhook host 10.1.2.3 is not a public address"}},
		{"bad webhook event", "alice", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x"}, "webhook": "https://1.1.1.1/", "webhook_events_filter": []string{"finished"}}, 422, []string{`webhook_events_filter: unknown event "finished"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, b := e.call(t, tt.user, "POST", tt.path, tt.body)
			var body struct {
				Error struct{ Message, Code string }
			}
			json.Unmarshal(b, &body)
			if status != tt.status {
				t.Errorf("status %d (%s), want %d", status, b, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(body.Error.Message, w) {
					t.Errorf("error %q does not say %q", body.Error.Message, w)
				}
			}
		})
	}
	t.Run("the pro plan may ask for more", func(t *testing.T) {
		p := e.create(t, "pro", "demo/echo", map[string]any{"prompt": "x", "size": 1000, "steps": 50}, "Prefer", "wait=10")
		if p.Status != "succeeded" || p.Input["steps"] != float64(50) {
			t.Errorf("pro prediction %s with input %v, want steps 50 kept", p.Status, p.Input)
		}
	})
	t.Run("a plan bound lowers the value instead of refusing", func(t *testing.T) {
		p := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "x", "steps": 50}, "Prefer", "wait=10")
		got, _ := p.Output.(map[string]any)["got"].(map[string]any)
		if p.Input["steps"] != float64(30) || got["steps"] != float64(30) {
			t.Errorf("free user's steps: input %v, upstream got %v; want 30 in both", p.Input["steps"], got["steps"])
		}
	})
	if list := listIDs(t, e, "alice"); len(list) != 1 {
		t.Errorf("alice has %v, want only the accepted prediction (refused submits leave none)", list)
	}
}

func TestIdempotencyKey(t *testing.T) { onEngines(t, testIdempotencyKey) }

func testIdempotencyKey(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, models, echo(func() *clock { return e.clock }))
	first := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "x"}, "Idempotency-Key", "k1")
	again := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "x"}, "Idempotency-Key", "k1")
	if again.ID != first.ID {
		t.Errorf("same key and body: %s then %s, want one prediction", first.ID, again.ID)
	}
	status, _, b := e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions",
		map[string]any{"input": map[string]any{"prompt": "y"}}, "Idempotency-Key", "k1")
	if status != http.StatusConflict {
		t.Errorf("same key, another body: %d %s, want 409", status, b)
	}
	if other := e.create(t, "bob", "demo/echo", map[string]any{"prompt": "x"}, "Idempotency-Key", "k1"); other.ID == first.ID {
		t.Error("another user's key returned alice's prediction")
	}
	if ids := listIDs(t, e, "alice"); len(ids) != 1 {
		t.Errorf("alice has %v, want one prediction", ids)
	}
}

func listIDs(t *testing.T, e *env, user string) []string {
	t.Helper()
	var ids []string
	next := "/v1/predictions?limit=2"
	for next != "" {
		status, _, b := e.call(t, user, "GET", next, nil)
		if status != 200 {
			t.Fatalf("list: %d %s", status, b)
		}
		var page struct {
			Next    *string `json:"next"`
			Results []pred  `json:"results"`
		}
		json.Unmarshal(b, &page)
		for _, p := range page.Results {
			ids = append(ids, p.ID)
		}
		next = ""
		if page.Next != nil {
			next = *page.Next
		}
	}
	return ids
}

func TestOwnPredictionsOnly(t *testing.T) { onEngines(t, testOwnPredictionsOnly) }

func testOwnPredictionsOnly(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, models, echo(func() *clock { return e.clock }))
	var mine []string
	for i := range 5 {
		mine = append(mine, e.create(t, "alice", "demo/echo", map[string]any{"prompt": fmt.Sprint(i)}, "Prefer", "wait").ID)
	}
	bobs := e.create(t, "bob", "demo/echo", map[string]any{"prompt": "b"}, "Prefer", "wait")
	slices.Reverse(mine)
	if got := listIDs(t, e, "alice"); !slices.Equal(got, mine) {
		t.Errorf("alice's pages %v, want %v newest first", got, mine)
	}
	if got := listIDs(t, e, "bob"); !slices.Equal(got, []string{bobs.ID}) {
		t.Errorf("bob lists %v, want only his own", got)
	}
	for _, path := range []string{"/v1/predictions/" + mine[0], "/v1/predictions/" + mine[0] + "/stream"} {
		if status, _, _ := e.call(t, "bob", "GET", path, nil); status != 404 && status != 403 {
			t.Errorf("bob GET %s: %d", path, status)
		}
	}
	if status, _, _ := e.call(t, "bob", "GET", "/v1/predictions/"+mine[0], nil); status != 404 {
		t.Errorf("bob reading alice's prediction: %d, want 404", status)
	}
	if status, _, _ := e.call(t, "nobody", "GET", "/v1/predictions", nil); status != 401 {
		t.Errorf("no credentials: %d, want 401", status)
	}
}

// resultFiles counts the files under the result store.
func resultFiles(t *testing.T, e *env) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(e.dir+"/results", func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// onEngines runs test on SQLite and on PostgreSQL (when
// TOLLGATE_TEST_POSTGRES is set).
func onEngines(t *testing.T, test func(t *testing.T, engine string)) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) { test(t, engine) })
	}
}

// TestUpstreamOutcomes: an upstream error or a job past its timeout ends
// failed and costs nothing; a body that is not JSON becomes the output
// file.
func TestUpstreamOutcomes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "out of memory", http.StatusInternalServerError)
	})
	mux.HandleFunc("POST /hang", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // a server notices a client gone only once the body is read
		<-r.Context().Done()
	})
	mux.HandleFunc("POST /text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "a plain answer")
	})
	e := setup(t, `
jobs:
  - {name: t/fail, backend: http, upstreams: [UPSTREAM], path: /fail, price: {per_request: "0.01"}}
  - {name: t/hang, backend: http, upstreams: [UPSTREAM], path: /hang, timeout: 1s, price: {per_request: "0.01"}}
  - {name: t/text, backend: http, upstreams: [UPSTREAM], path: /text, price: {per_request: "0.01"}}
`, mux)
	failed := e.create(t, "alice", "t/fail", nil, "Prefer", "wait")
	if failed.Status != "failed" || failed.Error == nil || *failed.Error != "the upstream answered 500" {
		t.Errorf("upstream error: %s %v", failed.Status, failed.Error)
	}
	hung := e.create(t, "alice", "t/hang", nil)
	if _, p := e.streamUntilDone(t, "alice", hung); p.Status != "failed" || p.Error == nil || !strings.Contains(*p.Error, "timeout of 1s") {
		t.Errorf("a job past its timeout: %s %v", p.Status, p.Error)
	}
	text := e.create(t, "alice", "t/text", nil, "Prefer", "wait")
	link, _ := text.Output.(string)
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if text.Status != "succeeded" || string(body) != "a plain answer" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("text answer: %s, output %v gave %q (%s)", text.Status, text.Output, body, resp.Header.Get("Content-Type"))
	}
	for _, id := range []string{failed.ID, hung.ID} {
		if r := e.record(t, id); r.Outcome != tollgate.ResultUpstreamError || r.Cost != 0 {
			t.Errorf("failed job %s: outcome %s cost %s, want upstream_error costing nothing", id, r.Outcome, r.Cost)
		}
	}
	if r := e.record(t, text.ID); r.Cost != 10_000 {
		t.Errorf("succeeded job cost %s, want 0.01", r.Cost)
	}
}
