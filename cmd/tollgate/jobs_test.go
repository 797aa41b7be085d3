package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
)

// slot is a capacity-1 job upstream that records the prompts in the order
// jobs reach it and holds each until the test releases it.
type slot struct {
	mu      sync.Mutex
	started []string
	arrived chan string
	release chan struct{}
}

func newSlot(t *testing.T) (*slot, string) {
	s := &slot{arrived: make(chan string, 100), release: make(chan struct{}, 100)}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(s.release) })
	return s, srv.URL
}

func (s *slot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in struct{ Prompt string }
	_ = json.NewDecoder(r.Body).Decode(&in)
	s.mu.Lock()
	s.started = append(s.started, in.Prompt)
	s.mu.Unlock()
	s.arrived <- in.Prompt
	select {
	case <-s.release:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"text": %q}`, "done "+in.Prompt)
}

func (s *slot) order() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.started)
}

// jobsConfig gives users the jobs scope, a pro plan of higher priority and
// a capacity-1 job model test/slot on upstream.
func jobsConfig(upstream string) string {
	return `
webhook_allow_private: true
roles:
  user: {scopes: [jobs]}
plans:
  pro: {priority: 10}
jobs:
  - name: test/slot
    backend: http
    upstreams: [` + upstream + `]
    capacity: 1
    inputs:
      prompt: {type: string, required: true}
    price: {per_request: "0.01", per_gpu_second: "0.001"}
`
}

// replicateAs runs one mode of checks/replicate.mjs as the owner of key
// and decodes what it printed.
func replicateAs(t *testing.T, c clienttest.Clients, g *testGateway, key string, args ...string) map[string]any {
	t.Helper()
	out := c.Run(t, time.Minute, "replicate.mjs", append([]string{args[0], g.URL + "/v1", key}, args[1:]...)...)
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("replicate.mjs %v printed %s: %v", args, out, err)
	}
	return v
}

// userKey creates a user and returns an API key of theirs.
func (g *testGateway) userKey(name, plan string) string {
	g.t.Helper()
	args := []string{"user", "add", name, "--password", "password-" + name, "--tenant", "acme", "--role", "user"}
	if plan != "" {
		args = append(args, "--plan", plan)
	}
	g.mustCLI(args...)
	return strings.TrimSpace(g.mustCLI("key", "create", "--user", name))
}

// TestReplicateClient drives the predictions API of serve --demo with the
// official npm replicate client.
func TestReplicateClient(t *testing.T) {
	clients := clienttest.Node(t)
	s, upstream := newSlot(t)
	photos := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Photo string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		meta, data, _ := strings.Cut(in.Photo, ",")
		raw, err := base64.StdEncoding.DecodeString(data)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"type": %q, "bytes": %d, "ok": %v}`, meta, len(raw), err == nil)
	}))
	t.Cleanup(photos.Close)
	g := setupWith(t, jobsConfig(upstream)+`
  - name: test/photo
    backend: http
    upstreams: [`+photos.URL+`]
    inputs:
      photo: {type: image, required: true, max_size: 1MiB}
`, true)
	alice, bob := g.userKey("alice", ""), g.userKey("bob", "")

	t.Run("a Buffer input is uploaded to /v1/files and reaches the upstream", func(t *testing.T) {
		got := replicateAs(t, clients, g, alice, "run-file", "test/photo")
		out, _ := got["output"].(map[string]any)
		if out["type"] != "data:image/png;base64" || out["bytes"] != got["sent"] || out["ok"] != true {
			t.Errorf("run-file printed %v, want the upstream to get the PNG as a data: URI", got)
		}
		uploads, _ := filepath.Glob(filepath.Join(filepath.Dir(g.Config), "data", "results", "*", "*", "*", "meta.json"))
		if len(uploads) != 1 {
			t.Errorf("%d uploads in the result store, want the client's one", len(uploads))
		}
	})

	t.Run("run returns output URLs that download without credentials", func(t *testing.T) {
		got := replicateAs(t, clients, g, alice, "run", "demo/sketch", "a lighthouse")
		urls, _ := got["output"].([]any)
		downloads, _ := got["downloads"].([]any)
		if len(urls) != 1 || !strings.HasPrefix(urls[0].(string), g.URL+"/v1/results/") || len(downloads) != 1 {
			t.Fatalf("run printed %v", got)
		}
		d := downloads[0].(map[string]any)
		if d["status"] != float64(200) || d["contentType"] != "image/png" || d["nosniff"] != "nosniff" || d["png"] != true {
			t.Errorf("download %v, want 200 image/png nosniff with PNG bytes", d)
		}
	})

	t.Run("create and wait show starting, processing, succeeded", func(t *testing.T) {
		got := replicateAs(t, clients, g, alice, "create-wait", "demo/sketch", "a boat")
		statuses := fmt.Sprint(got["statuses"])
		if statuses != "[starting processing succeeded]" {
			t.Errorf("statuses %s, want [starting processing succeeded]", statuses)
		}
		metrics, _ := got["metrics"].(map[string]any)
		if pt, _ := metrics["predict_time"].(float64); pt < 1 {
			t.Errorf("metrics %v, want predict_time of at least the demo's 1 s", metrics)
		}
	})

	var canceled string
	t.Run("a queued prediction canceled never reaches the backend", func(t *testing.T) {
		first := replicateAs(t, clients, g, alice, "create", "test/slot", "first")
		if p := <-s.arrived; p != "first" {
			t.Fatalf("the upstream got %q first", p)
		}
		queued := replicateAs(t, clients, g, alice, "create", "test/slot", "never")
		if queued["status"] != "starting" {
			t.Fatalf("second prediction %v, want starting", queued["status"])
		}
		canceled = queued["id"].(string)
		if c := replicateAs(t, clients, g, alice, "cancel", canceled); c["status"] != "canceled" || c["started_at"] != nil {
			t.Fatalf("cancel printed %v", c)
		}
		s.release <- struct{}{}
		waitStatus(t, g, alice, first["id"].(string), "succeeded")
		if got := s.order(); !slices.Equal(got, []string{"first"}) {
			t.Errorf("the upstream saw %v", got)
		}
	})

	t.Run("another user's prediction is 404 to get, cancel and list", func(t *testing.T) {
		if got := replicateAs(t, clients, g, bob, "get", canceled); got["error"] != float64(404) {
			t.Errorf("bob get: %v, want 404", got)
		}
		if got := replicateAs(t, clients, g, bob, "cancel", canceled); got["error"] != float64(404) {
			t.Errorf("bob cancel: %v, want 404", got)
		}
		if got := replicateAs(t, clients, g, bob, "list"); fmt.Sprint(got["ids"]) != "[]" {
			t.Errorf("bob lists %v, want none", got["ids"])
		}
		mine := replicateAs(t, clients, g, alice, "list")
		if ids, _ := mine["ids"].([]any); len(ids) != 5 || !slices.Contains(ids, any(canceled)) {
			t.Errorf("alice lists %v, want her 5 predictions", mine["ids"])
		}
	})

	t.Run("webhooks verify with standardwebhooks and the secret from the API", func(t *testing.T) {
		type delivery struct {
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		}
		got := make(chan delivery, 10)
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got <- delivery{Body: string(b), Headers: map[string]string{"webhook-id": r.Header.Get("webhook-id"),
				"webhook-timestamp": r.Header.Get("webhook-timestamp"), "webhook-signature": r.Header.Get("webhook-signature")}}
		}))
		defer receiver.Close()
		created := replicateAs(t, clients, g, alice, "create-hook", "demo/sketch", "a hook", receiver.URL+"/hook")
		d := <-got
		file := filepath.Join(t.TempDir(), "delivery.json")
		b, _ := json.Marshal(d)
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		v := replicateAs(t, clients, g, alice, "verify-hook", file)
		if v["secretPrefix"] != "whsec_" || v["id"] != created["id"] || v["status"] != "succeeded" || v["tampered"] != "WebhookVerificationError" {
			t.Errorf("verify printed %v, want the prediction verified and a tampered body refused", v)
		}
		if bad := replicateAs(t, clients, g, bob, "verify-hook", file); bad["refused"] != "WebhookVerificationError" {
			t.Errorf("bob's secret on alice's webhook: %v, want it refused", bad)
		}
	})

	t.Run("the canceled prediction costs nothing", func(t *testing.T) {
		g.cancel()
		<-g.stopped
		events := g.mustCLI("export")
		found := false
		for line := range strings.Lines(events) {
			var ev struct {
				ID   string
				Data struct{ Route, Outcome, Cost string }
			}
			if json.Unmarshal([]byte(line), &ev) != nil || ev.ID != canceled {
				continue
			}
			found = true
			if ev.Data.Route != "test/slot" || ev.Data.Cost != "0.000000" {
				t.Errorf("usage record of the canceled prediction %+v, want test/slot costing 0", ev.Data)
			}
		}
		if !found {
			t.Errorf("no usage record of the canceled prediction in\n%s", events)
		}
	})
}

// waitStatus waits on the prediction's event stream until it ended, then
// checks its status.
func waitStatus(t *testing.T, g *testGateway, key, id, want string) {
	t.Helper()
	if got := waitEnded(t, g, key, id); got != want {
		t.Errorf("prediction %s is %s, want %s", id, got, want)
	}
}

// waitEnded waits on the prediction's event stream until it ended and
// returns its status.
func waitEnded(t *testing.T, g *testGateway, key, id string) string {
	t.Helper()
	_, body := g.do("GET", "/v1/predictions/"+id, key, "")
	var p struct {
		Status string
		URLs   map[string]string `json:"urls"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if stream, err := url.Parse(p.URLs["stream"]); err == nil && stream.Path != "" {
		// On this replica, whatever the public URL names.
		resp, err := http.Get(g.URL + stream.RequestURI())
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() && sc.Text() != "event: done" {
		}
		resp.Body.Close()
		_, body = g.do("GET", "/v1/predictions/"+id, key, "")
		_ = json.Unmarshal(body, &p)
	}
	return p.Status
}

// TestReplicateFairness: on a capacity-1 upstream, user A submits 6, then
// B 1, then a pro user 1, all through the replicate client; the upstream
// starts the pro job before A's remaining ones and B's before A's third.
func TestReplicateFairness(t *testing.T) {
	clients := clienttest.Node(t)
	s, upstream := newSlot(t)
	g := setup(t, jobsConfig(upstream))
	a, b, pro := g.userKey("a", ""), g.userKey("b", ""), g.userKey("p", "pro")
	var last string
	for i := range 6 {
		last = replicateAs(t, clients, g, a, "create", "test/slot", fmt.Sprint("a", i))["id"].(string)
		if i == 0 {
			<-s.arrived
		}
	}
	replicateAs(t, clients, g, b, "create", "test/slot", "b0")
	replicateAs(t, clients, g, pro, "create", "test/slot", "p0")
	for range 7 {
		s.release <- struct{}{}
		<-s.arrived
	}
	s.release <- struct{}{}
	waitStatus(t, g, a, last, "succeeded")
	order := s.order()
	at := func(p string) int { return slices.Index(order, p) }
	if len(order) != 8 || at("p0") > at("a1") || at("b0") > at("a2") {
		t.Errorf("start order %v: want p0 before a1.. and b0 before a2", order)
	}
	t.Logf("start order %v", order)
}

// TestJobsAdminAndCLI: operators list every user's jobs (admin API and
// command line), and cancel them; a queued job canceled from the command
// line is settled by the server at no charge.
func TestJobsAdminAndCLI(t *testing.T) {
	s, upstream := newSlot(t)
	g := setup(t, jobsConfig(upstream))
	alice := g.userKey("alice", "")
	admin := g.login("admin", adminPassword).AccessToken
	create := func(prompt string) string {
		resp, body := g.do("POST", "/v1/models/test/slot/predictions", alice, `{"input":{"prompt":"`+prompt+`"}}`)
		var p struct{ ID string }
		if resp.StatusCode != 201 || json.Unmarshal(body, &p) != nil {
			t.Fatalf("create: %d %s", resp.StatusCode, body)
		}
		return p.ID
	}
	running := create("running")
	<-s.arrived
	queued := create("queued")

	resp, body := g.do("GET", "/admin/v1/jobs?model=test/slot", admin, "")
	var page struct {
		Results []struct {
			ID, Status string
			UserID     string `json:"user_id"`
		}
	}
	json.Unmarshal(body, &page)
	if resp.StatusCode != 200 || len(page.Results) != 2 || page.Results[0].ID != queued || page.Results[1].Status != "processing" ||
		!strings.HasPrefix(page.Results[0].UserID, "usr_") {
		t.Errorf("admin list: %d %s", resp.StatusCode, body)
	}
	if resp, _ := g.do("GET", "/admin/v1/jobs", alice, ""); resp.StatusCode != 403 {
		t.Errorf("a user on the admin job list: %d, want 403", resp.StatusCode)
	}
	if out := g.mustCLI("jobs", "list", "--user", "alice"); !strings.Contains(out, queued) || !strings.Contains(out, running) || !strings.Contains(out, "starting") {
		t.Errorf("jobs list:\n%s", out)
	}
	if out := g.mustCLI("jobs", "cancel", queued); !strings.Contains(out, "canceled") {
		t.Errorf("jobs cancel:\n%s", out)
	}
	if out := g.mustCLI("jobs", "show", queued); !strings.Contains(out, `"status":"canceled"`) {
		t.Errorf("jobs show:\n%s", out)
	}
	resp, body = g.do("POST", "/admin/v1/jobs/"+running+"/cancel", admin, "")
	if resp.StatusCode != 200 {
		t.Fatalf("admin cancel: %d %s", resp.StatusCode, body)
	}
	waitStatus(t, g, alice, running, "canceled")
	if got := s.order(); !slices.Equal(got, []string{"running"}) {
		t.Errorf("the upstream saw %v", got)
	}
	// The server settles the queued job canceled by the command line
	// within a minute, and at the latest when it stops; the export after
	// the stop shows it.
	g.cancel()
	<-g.stopped
	found := false
	for line := range strings.Lines(g.mustCLI("export")) {
		var ev struct {
			ID   string
			Data struct{ Outcome, Cost string }
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.ID == queued {
			found = true
			if ev.Data.Cost != "0.000000" {
				t.Errorf("the job canceled from the command line cost %s", ev.Data.Cost)
			}
		}
	}
	if !found {
		t.Error("the job canceled from the command line has no settled usage record")
	}
}
