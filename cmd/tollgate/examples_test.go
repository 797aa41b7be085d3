package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// exampleConfigs returns the tollgate.yaml of every directory in
// examples/, by the name of its directory.
func exampleConfigs(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob("../../examples/*/tollgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no examples/*/tollgate.yaml found")
	}
	out := map[string]string{}
	for _, p := range paths {
		out[filepath.Base(filepath.Dir(p))] = p
	}
	return out
}

// TestExampleConfigsCheck runs `tollgate config check` on every example's
// config, as its README tells a new user to, and checks that the example
// has a README that names its config.
func TestExampleConfigsCheck(t *testing.T) {
	for name, path := range exampleConfigs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(nil, "", "config", "check", "--config", path)
			if r.err != nil || !strings.Contains(r.stderr, "is valid") || !strings.Contains(r.stdout, "routes:") {
				t.Fatalf("tollgate config check --config %s: %v\n%s", path, r.err, r.shown())
			}
			readme, err := os.ReadFile(filepath.Join(filepath.Dir(path), "README.md"))
			if err != nil {
				t.Fatalf("example %s has no README: %v", name, err)
			}
			if !bytes.Contains(readme, []byte("tollgate.yaml")) {
				t.Errorf("examples/%s/README.md does not name tollgate.yaml", name)
			}
		})
	}
}

// exampleYAML returns an example's config with each upstream URL of
// replace swapped for a test upstream's; a URL the file does not contain
// fails the test, so an edited example cannot silently skip its test.
func exampleYAML(t *testing.T, name string, replace map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../examples", name, "tollgate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, repl := range replace {
		if !strings.Contains(s, old) {
			t.Fatalf("examples/%s/tollgate.yaml has no %s", name, old)
		}
		s = strings.ReplaceAll(s, old, repl)
	}
	for _, key := range []string{"listen:", "data_dir:", "protection:"} {
		if strings.Contains(s, "\n"+key) || strings.HasPrefix(s, key) {
			t.Fatalf("examples/%s/tollgate.yaml sets %s, which the test gateway sets itself", name, key)
		}
	}
	return s
}

// recorder keeps the headers of every request an upstream received.
type recorder struct {
	mu   sync.Mutex
	seen []http.Header
	path []string
}

func (rc *recorder) add(r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.seen = append(rc.seen, r.Header.Clone())
	rc.path = append(rc.path, r.Method+" "+r.URL.Path)
}

// requests returns the method and path of every request but health checks.
func (rc *recorder) requests() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, p := range rc.path {
		if p != "GET /health" {
			out = append(out, p)
		}
	}
	return out
}

func (rc *recorder) headers() []http.Header {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]http.Header(nil), rc.seen...)
}

// usageRows reads /admin/v1/usage grouped by group once want records are
// settled, and returns its rows by key.
func usageRows(t *testing.T, g *testGateway, admin, group string, want int64) map[string]usageRow {
	t.Helper()
	var rep struct {
		Rows  []usageRow `json:"rows"`
		Total usageRow   `json:"total"`
	}
	if !eventually(5*time.Second, func() bool {
		_, body := g.do("GET", "/admin/v1/usage?group_by="+group, admin, "")
		rep.Rows, rep.Total = nil, usageRow{}
		_ = json.Unmarshal(body, &rep)
		return rep.Total.Requests >= want && rep.Total.InFlight == 0
	}) {
		t.Fatalf("usage by %s: %+v, want %d settled records", group, rep, want)
	}
	out := map[string]usageRow{}
	for _, r := range rep.Rows {
		out[r.Route+r.Model+r.UserID+r.TenantID] = r
	}
	return out
}

type usageRow struct {
	Route        string `json:"route"`
	Model        string `json:"model"`
	UserID       string `json:"user_id"`
	TenantID     string `json:"tenant_id"`
	Requests     int64  `json:"requests"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	Images       int64  `json:"images"`
	Cost         string `json:"cost"`
	InFlight     int64  `json:"in_flight"`

	GPUSeconds         float64 `json:"gpu_seconds"`
	OutputAudioSeconds float64 `json:"output_audio_seconds"`
}

// userID returns the id `tollgate user add` printed.
func userID(t *testing.T, out string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "(id ")
	id, _, ok2 := strings.Cut(rest, ",")
	if !ok || !ok2 {
		t.Fatalf("no user id in %q", out)
	}
	return id
}

// fakeFastAPIOCR is an upstream that answers as the example's FastAPI app
// does: /health, /docs, /openapi.json, and POST /ocr with a multipart
// field "file".
func fakeFastAPIOCR(t *testing.T, rec *recorder) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /docs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!DOCTYPE html><title>OCR - Swagger UI</title><div id="swagger-ui"></div>`)
	})
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"openapi":"3.1.0","info":{"title":"OCR","version":"0.1.0"},"paths":{"/ocr":{}}}`)
	})
	mux.HandleFunc("POST /ocr", func(w http.ResponseWriter, r *http.Request) {
		f, hdr, err := r.FormFile("file")
		if err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"detail":[{"loc":["body","file"],"msg":"Field required"}]}`)
			return
		}
		defer f.Close()
		cfg, _, err := image.DecodeConfig(f)
		if err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"detail":"the upload is not an image"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user": r.Header.Get("X-User-ID"), "filename": hdr.Filename,
			"text": "HELLO", "width": cfg.Width})
	})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	return up
}

// TestExampleOCR runs examples/ocr/tollgate.yaml against an upstream that
// answers as its FastAPI app: the API docs are public, only a plan with
// ocr_api_access may upload, and each upload is one usage record priced
// per image.
func TestExampleOCR(t *testing.T) {
	rec := &recorder{}
	up := fakeFastAPIOCR(t, rec)
	g := setup(t, exampleYAML(t, "ocr", map[string]string{"http://127.0.0.1:8000": up.URL}))
	aliceID := userID(t, g.mustCLI("user", "add", "alice", "--password", "alice-password", "--plan", "ocr"))
	g.mustCLI("user", "add", "bob", "--password", "bob-password")
	alice := g.login("alice", "alice-password").AccessToken
	bob := g.login("bob", "bob-password").AccessToken
	admin := g.login("admin", adminPassword).AccessToken

	var pic bytes.Buffer
	if err := png.Encode(&pic, image.NewGray(image.Rect(0, 0, 640, 480))); err != nil {
		t.Fatal(err)
	}
	// upload posts content as curl -F file=@scan.png does: multipart, and
	// with Expect: 100-continue when it is over 1 MiB.
	upload := func(t *testing.T, token string, content []byte) (*http.Response, []byte) {
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		part, _ := mw.CreateFormFile("file", "scan.png")
		_, _ = part.Write(content)
		_ = mw.Close()
		req, _ := http.NewRequest("POST", g.URL+"/ocr", &form)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if len(content) > 1<<20 {
			req.Header.Set("Expect", "100-continue")
		}
		return send(t, req)
	}

	t.Run("docs and health are public", func(t *testing.T) {
		for path, want := range map[string]string{"/health": `"ok"`, "/docs": "Swagger UI", "/openapi.json": `"openapi"`} {
			resp, body := g.do("GET", path, "", "")
			if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
				t.Errorf("GET %s without a token: %d %s", path, resp.StatusCode, body)
			}
		}
	})
	t.Run("no token, no scope", func(t *testing.T) {
		before := len(rec.requests())
		if resp, body := upload(t, "", pic.Bytes()); resp.StatusCode != 401 {
			t.Errorf("upload without a token: %d %s", resp.StatusCode, body)
		}
		resp, body := upload(t, bob, pic.Bytes())
		if resp.StatusCode != 403 || !strings.Contains(string(body), "lacks a scope") {
			t.Errorf("upload by a user without ocr_api_access: %d %s", resp.StatusCode, body)
		}
		if got := rec.requests()[before:]; len(got) != 0 {
			t.Errorf("refused uploads reached the app: %v", got)
		}
	})
	t.Run("with ocr_api_access", func(t *testing.T) {
		resp, body := upload(t, alice, pic.Bytes())
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"text":"HELLO"`) || !strings.Contains(string(body), `"width":640`) {
			t.Fatalf("upload by alice: %d %s", resp.StatusCode, body)
		}
		var got struct{ User string }
		_ = json.Unmarshal(body, &got)
		if got.User != aliceID {
			t.Errorf("the app saw X-User-ID %q, want alice's id %s", got.User, aliceID)
		}
		for _, h := range rec.headers() {
			if h.Get("Authorization") != "" {
				t.Errorf("the app received the caller's Authorization %q", h.Get("Authorization"))
			}
		}
		rows := usageRows(t, g, admin, "route", 4)
		if r := rows["ocr"]; r.Requests != 1 || r.Images != 1 || r.Cost != "0.002000" {
			t.Errorf("ledger of route ocr: %+v, want 1 record of 1 image costing 0.002000", r)
		}
		for _, name := range []string{"ocr-health", "ocr-docs", "ocr-openapi"} {
			if r := rows[name]; r.Requests != 1 || r.Cost != "0.000000" {
				t.Errorf("ledger of public route %s: %+v, want 1 record at no cost", name, r)
			}
		}
		var mine struct{ Total usageRow }
		_, b := g.do("GET", "/v1/me/usage", alice, "")
		if err := json.Unmarshal(b, &mine); err != nil || mine.Total.Requests != 1 || mine.Total.Cost != "0.002000" {
			t.Errorf("alice's own usage: %s", b)
		}
	})
	t.Run("max_body", func(t *testing.T) {
		before := len(rec.requests())
		big := append(append([]byte(nil), pic.Bytes()...), make([]byte, 21<<20)...)
		if resp, body := upload(t, alice, big); resp.StatusCode != 413 {
			t.Errorf("21 MiB upload: %d %s", resp.StatusCode, body)
		}
		if got := rec.requests()[before:]; len(got) != 0 {
			t.Errorf("an upload over max_body reached the app: %v", got)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		// The route allows a burst of 30 a minute per user; alice has
		// used one or two of them.
		for i := 0; i < 40; i++ {
			resp, body := upload(t, alice, pic.Bytes())
			if resp.StatusCode == 200 {
				continue
			}
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "30/m") {
				t.Fatalf("call %d: %d %s (Retry-After %q)", i, resp.StatusCode, body, resp.Header.Get("Retry-After"))
			}
			if i < 27 {
				t.Fatalf("refused after %d calls, want a burst of 30", i)
			}
			return
		}
		t.Fatal("40 calls in a row were all served; want the route's 30/m limit")
	})
}

// fakeVLLM is an upstream that answers as `vllm serve --api-key key`
// does: 401 without the key, /health open, and chat completions whose
// usage reports prompt and completion tokens.
func fakeVLLM(t *testing.T, rec *recorder, key string, prompt, completion int) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		if r.URL.Path == "/health" {
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+key {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"Unauthorized"}`)
			return
		}
		var req struct {
			Model         string `json:"model"`
			Stream        bool   `json:"stream"`
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		usage := map[string]int{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
		msg := "answer from " + r.Host
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "model": req.Model,
				"choices": []any{map[string]any{"index": 0, "message": map[string]string{"role": "assistant", "content": msg}, "finish_reason": "stop"}},
				"usage":   usage})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, part := range strings.Fields(msg) {
			b, _ := json.Marshal(map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": req.Model,
				"choices": []any{map[string]any{"index": 0, "delta": map[string]string{"content": part + " "}}}})
			_, _ = io.WriteString(w, "data: "+string(b)+"\n\n")
		}
		if req.StreamOptions.IncludeUsage {
			b, _ := json.Marshal(map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": req.Model,
				"choices": []any{}, "usage": usage})
			_, _ = io.WriteString(w, "data: "+string(b)+"\n\n")
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	return up
}

// TestExampleVLLM runs examples/vllm/tollgate.yaml against two upstreams
// that answer as vLLM started with --api-key: the key from the
// environment reaches them and the callers' tokens never do, the tenant
// acme reaches its own instance and everyone else the shared one, the
// ledger charges the tokens vLLM reported at each model's price, and the
// free plan's budget refuses a call that could exceed it.
func TestExampleVLLM(t *testing.T) {
	const key = "vllm-key-from-the-environment"
	t.Setenv("VLLM_API_KEY", key)
	shared, acme := &recorder{}, &recorder{}
	// The shared instance reports 50 prompt and 200 completion tokens a
	// call, acme's 60 and 300 (a call is charged at most what it reserved,
	// which counts a token per byte of its body, so these stay below).
	sharedUp := fakeVLLM(t, shared, key, 50, 200)
	acmeUp := fakeVLLM(t, acme, key, 60, 300)
	g := setup(t, exampleYAML(t, "vllm", map[string]string{
		"http://127.0.0.1:8000": sharedUp.URL, "http://127.0.0.1:8001": acmeUp.URL}))
	annID := userID(t, g.mustCLI("user", "add", "ann", "--password", "ann-password", "--tenant", "acme", "--plan", "team"))
	benID := userID(t, g.mustCLI("user", "add", "ben", "--password", "ben-password", "--tenant", "globex"))
	annKey := strings.TrimSpace(g.mustCLI("key", "create", "--user", "ann"))
	ben := g.login("ben", "ben-password").AccessToken
	admin := g.login("admin", adminPassword).AccessToken

	chat := func(t *testing.T, token, model string, extra string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("POST", g.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hello"}]`+extra+`}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		return send(t, req)
	}
	models := []string{"qwen2.5-7b-instruct", "qwen2.5-7b-sql"}

	t.Run("models", func(t *testing.T) {
		resp, body := g.do("GET", "/v1/models", ben, "")
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"qwen2.5-7b-instruct"`) || !strings.Contains(string(body), `"id":"qwen2.5-7b-sql"`) {
			t.Fatalf("GET /v1/models: %d %s", resp.StatusCode, body)
		}
		before := len(shared.requests()) + len(acme.requests())
		if resp, body := chat(t, ben, "gpt-4o", ""); resp.StatusCode != 404 || !strings.Contains(string(body), "model_not_found") {
			t.Errorf("unknown model: %d %s", resp.StatusCode, body)
		}
		if n := len(shared.requests()) + len(acme.requests()); n != before {
			t.Errorf("a call for an unknown model reached vLLM")
		}
	})
	t.Run("tenant routing", func(t *testing.T) {
		for _, m := range models {
			if resp, body := chat(t, annKey, m, ""); resp.StatusCode != 200 || !strings.Contains(string(body), strings.TrimPrefix(acmeUp.URL, "http://")) {
				t.Errorf("ann (acme), %s: %d %s; want acme's instance", m, resp.StatusCode, body)
			}
			if resp, body := chat(t, ben, m, `,"max_tokens":300`); resp.StatusCode != 200 || !strings.Contains(string(body), strings.TrimPrefix(sharedUp.URL, "http://")) {
				t.Errorf("ben (globex), %s: %d %s; want the shared instance", m, resp.StatusCode, body)
			}
		}
		if got, want := len(acme.requests()), 2; got != want {
			t.Errorf("acme's instance got %d calls %v, want ann's %d", got, acme.requests(), want)
		}
		if got, want := len(shared.requests()), 2; got != want {
			t.Errorf("the shared instance got %d calls %v, want ben's %d", got, shared.requests(), want)
		}
	})
	t.Run("streamed", func(t *testing.T) {
		resp, body := chat(t, ben, "qwen2.5-7b-sql", `,"stream":true`)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "data: [DONE]") || strings.Contains(string(body), `"usage"`) {
			t.Fatalf("streamed call: %d %s; want the stream without the usage chunk it did not ask for", resp.StatusCode, body)
		}
	})
	t.Run("upstream key", func(t *testing.T) {
		for name, rec := range map[string]*recorder{"shared": shared, "acme": acme} {
			rec.mu.Lock()
			seen, paths := append([]http.Header(nil), rec.seen...), append([]string(nil), rec.path...)
			rec.mu.Unlock()
			for i, h := range seen {
				if got := h.Get("Authorization"); paths[i] != "GET /health" && got != "Bearer "+key {
					t.Errorf("%s instance got Authorization %q on %s, want the VLLM_API_KEY", name, got, paths[i])
				}
				for k, vs := range h {
					for _, v := range vs {
						if strings.Contains(v, annKey) || strings.Contains(v, ben) {
							t.Errorf("%s instance got the caller's token in %s", name, k)
						}
					}
				}
			}
		}
	})
	t.Run("ledger", func(t *testing.T) {
		// ann: 2 calls on acme's instance (60 + 300 tokens each); ben: 3
		// on the shared one (50 + 200), the third one streamed. Prices in
		// micro-units per token: instruct 0.2 in, 0.6 out; sql 0.4, 1.2.
		byModel := usageRows(t, g, admin, "model", 5)
		want := map[string]usageRow{
			// 60+50 in, 300+200 out: 110 × 0.2 + 500 × 0.6 = 322
			"qwen2.5-7b-instruct": {Requests: 2, InputTokens: 110, OutputTokens: 500, Cost: "0.000322"},
			// 60+50+50 in, 300+200+200 out: 160 × 0.4 + 700 × 1.2 = 904
			"qwen2.5-7b-sql": {Requests: 3, InputTokens: 160, OutputTokens: 700, Cost: "0.000904"},
		}
		for m, w := range want {
			r := byModel[m]
			if r.Requests != w.Requests || r.InputTokens != w.InputTokens || r.OutputTokens != w.OutputTokens || r.Cost != w.Cost {
				t.Errorf("ledger of %s: %+v, want %+v", m, r, w)
			}
		}
		byUser := usageRows(t, g, admin, "user", 5)
		// ann: 60 × 0.2 + 300 × 0.6 + 60 × 0.4 + 300 × 1.2 = 576
		if r := byUser[annID]; r.Requests != 2 || r.Cost != "0.000576" {
			t.Errorf("ann's usage: %+v, want 2 calls costing 0.000576", r)
		}
		// ben: 50 × 0.2 + 200 × 0.6 + 2 × (50 × 0.4 + 200 × 1.2) = 650
		if r := byUser[benID]; r.Requests != 3 || r.Cost != "0.000650" {
			t.Errorf("ben's usage: %+v, want 3 calls costing 0.000650", r)
		}
		byTenant := usageRows(t, g, admin, "tenant", 5)
		if byTenant["acme"].Requests != 2 || byTenant["globex"].Requests != 3 {
			t.Errorf("usage by tenant: %+v", byTenant)
		}
	})
	t.Run("budgets per plan", func(t *testing.T) {
		before := len(shared.requests()) + len(acme.requests())
		// Up to 2,000,000 completion tokens of the LoRA model may cost
		// 2.40: more than the 1.00 of the free plan, within the 50.00 of
		// the team plan.
		resp, body := chat(t, ben, "qwen2.5-7b-sql", `,"max_tokens":2000000`)
		if resp.StatusCode != 429 || !strings.Contains(string(body), "insufficient_quota") {
			t.Errorf("ben (free) asking for 2,000,000 tokens: %d %s", resp.StatusCode, body)
		}
		if n := len(shared.requests()) + len(acme.requests()); n != before {
			t.Errorf("a call refused by the budget reached vLLM")
		}
		if resp, body := chat(t, annKey, "qwen2.5-7b-sql", `,"max_tokens":2000000`); resp.StatusCode != 200 {
			t.Errorf("ann (team) asking for 2,000,000 tokens: %d %s", resp.StatusCode, body)
		}
		_, me := g.do("GET", "/v1/me", ben, "")
		if !strings.Contains(string(me), `"budget"`) || !strings.Contains(string(me), "1.000000") {
			t.Errorf("ben's /v1/me does not show the free plan's budget of 1.00: %s", me)
		}
	})
}
