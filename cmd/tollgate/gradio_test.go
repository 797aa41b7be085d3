package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/gradiotest"
)

// gradioGateway serves two emulated CosyVoice3 apps through routes of type
// gradio: /tts/ runs every call at once (for 200 ms), /held/ holds each
// call until the test ends it. Users get the tts scope.
func gradioGateway(t *testing.T) (g *testGateway, open, held *gradiotest.Server) {
	t.Helper()
	open = gradiotest.New(t, gradiotest.Options{RootPath: "/tts", RunTime: 200 * time.Millisecond})
	held = gradiotest.New(t, gradiotest.Options{RootPath: "/held", Hold: true})
	g = setupWith(t, `roles:
  user: {scopes: [tts]}
plans:
  tiny: {budget: {amount: "0.015", period: month}}
routes:
  - name: tts
    path: /tts/
    type: gradio
    upstreams: [`+open.URL+`]
    scopes: [tts]
    price: {per_request: "0.01", per_gpu_second: "0.001"}
  - name: held
    path: /held/
    type: gradio
    upstreams: [`+held.URL+`]
    scopes: [tts]
    timeout: 30s
    price: {per_request: "0.01"}
`, false)
	return g, open, held
}

// gradioDo makes a request on the gateway with an API key.
func gradioDo(t *testing.T, g *testGateway, key, method, path, contentType string, body []byte, extra ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, g.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	return send(t, req)
}

// gradioUpload uploads a WAV through the route and returns its path on
// the app.
func gradioUpload(t *testing.T, g *testGateway, key, route string) string {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("files", "prompt.wav")
	fw.Write(gradiotest.SineWAV(16000, 4000, 220))
	mw.Close()
	resp, body := gradioDo(t, g, key, "POST", route+"gradio_api/upload", mw.FormDataContentType(), buf.Bytes())
	var paths []string
	if resp.StatusCode != 200 || json.Unmarshal(body, &paths) != nil || len(paths) != 1 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	return paths[0]
}

// gradioJoin queues a /generate_audio call and returns its event id.
func gradioJoin(t *testing.T, g *testGateway, key, route, session, text, file string, extra ...string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"fn_index": 0, "session_hash": session, "event_data": nil, "trigger_id": 5,
		"data": []any{text, map[string]any{"path": file, "meta": map[string]any{"_type": "gradio.FileData"}}, "zero-shot", 1}})
	resp, b := gradioDo(t, g, key, "POST", route+"gradio_api/queue/join", "application/json", body, extra...)
	var v struct {
		EventID string `json:"event_id"`
	}
	_ = json.Unmarshal(b, &v)
	return resp.StatusCode, v.EventID
}

// gradioStream opens a session's queue/data stream; next returns each
// message until the stream's end.
func gradioStream(t *testing.T, g *testGateway, key, route, session string) (status int, next func() map[string]any) {
	t.Helper()
	return gradioOpen(t, g, key, route+"gradio_api/queue/data?session_hash="+session)
}

// gradioOpen opens an event stream of the route; it is closed when the
// test ends.
func gradioOpen(t *testing.T, g *testGateway, key, path string) (status int, next func() map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", g.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return resp.StatusCode, func() map[string]any {
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				_ = json.Unmarshal([]byte(data), &m)
				return m
			}
		}
		return nil
	}
}

func userIDOfKey(t *testing.T, g *testGateway, key string) string {
	t.Helper()
	_, body := g.do("GET", "/v1/me", key, "")
	var me struct {
		UserID string `json:"user_id"`
	}
	if json.Unmarshal(body, &me) != nil || me.UserID == "" {
		t.Fatalf("/v1/me: %s", body)
	}
	return me.UserID
}

// routeUsage waits until the ledger has settled every record and returns
// the usage of each route.
func routeUsage(t *testing.T, g *testGateway) map[string]map[string]any {
	t.Helper()
	admin := g.login("admin", adminPassword).AccessToken
	rows := map[string]map[string]any{}
	eventually(5*time.Second, func() bool {
		_, body := g.do("GET", "/admin/v1/usage?group_by=route", admin, "")
		var rep struct {
			Rows []map[string]any `json:"rows"`
		}
		_ = json.Unmarshal(body, &rep)
		clear(rows)
		open := false
		for _, r := range rep.Rows {
			if name, ok := r["route"].(string); ok {
				rows[name] = r
				open = open || r["in_flight"] != float64(0)
			}
		}
		return !open && len(rows) > 0
	})
	return rows
}

func TestGradioRoute(t *testing.T) {
	g, open, held := gradioGateway(t)
	alice, bob := g.userKey("alice", ""), g.userKey("bob", "")
	aliceID := userIDOfKey(t, g, alice)

	t.Run("@gradio/client predicts through the route with an API key and gets the audio", func(t *testing.T) {
		clients := clienttest.Node(t)
		wav := filepath.Join(t.TempDir(), "prompt.wav")
		if err := os.WriteFile(wav, gradiotest.SineWAV(16000, 8000, 220), 0o600); err != nil {
			t.Fatal(err)
		}
		raw := clients.Run(t, time.Minute, "gradio-route.mjs", g.URL+"/tts/", alice, wav)
		var out struct {
			Root     string
			Session  string
			Events   []string
			File     map[string]any
			Download struct {
				Status  int
				Seconds float64
			}
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("gradio-route.mjs printed %s: %v", raw, err)
		}
		if out.Root != g.URL+"/tts" {
			t.Errorf("the client resolved root %q, want %q", out.Root, g.URL+"/tts")
		}
		if out.Download.Status != 200 || out.Download.Seconds < 2.59 || out.Download.Seconds > 2.61 {
			t.Errorf("download of %v: %+v, want 200 and 2.6 s of audio (printed %s)", out.File["url"], out.Download, raw)
		}
		execs := open.Executions()
		if len(execs) != 1 {
			t.Fatalf("the app ran %d calls, want 1", len(execs))
		}
		if x := execs[0]; x.Header.Get("X-User-ID") != aliceID || !strings.HasSuffix(x.SessionHash, "-"+out.Session) || x.SessionHash == out.Session {
			t.Errorf("the app saw user %q and session %q; want %q and the client's session %q under a prefix",
				x.Header.Get("X-User-ID"), x.SessionHash, aliceID, out.Session)
		}
	})

	t.Run("another user cannot read, cancel, fetch or reuse the first user's session, events and files", func(t *testing.T) {
		prompt := gradioUpload(t, g, alice, "/held/")
		if resp, _ := gradioDo(t, g, bob, "GET", "/held/gradio_api/file="+prompt, "", nil); resp.StatusCode != 404 {
			t.Errorf("bob fetched alice's upload: %d, want 404", resp.StatusCode)
		}
		if resp, _ := gradioDo(t, g, alice, "GET", "/held/gradio_api/file="+prompt, "", nil); resp.StatusCode != 200 {
			t.Errorf("alice fetched her upload: %d, want 200", resp.StatusCode)
		}
		if status, _ := gradioJoin(t, g, bob, "/held/", "bobs", "bob's text", prompt); status != 403 {
			t.Errorf("bob queued a call on alice's upload: %d, want 403", status)
		}
		status, event := gradioJoin(t, g, alice, "/held/", "shared", "alice's words", prompt, "X-User-ID", "usr_admin")
		if status != 200 || event == "" {
			t.Fatalf("alice join: %d", status)
		}
		run := held.NextStarted(t)
		if x := held.Executions()[0]; x.Header.Get("X-User-ID") != aliceID {
			t.Errorf("the app saw X-User-ID %q, want alice's %q, never the one she sent", x.Header.Get("X-User-ID"), aliceID)
		}
		if st, _ := gradioStream(t, g, bob, "/held/", "shared"); st != 404 {
			t.Errorf("bob opened alice's session stream: %d, want 404", st)
		}
		cancel, _ := json.Marshal(map[string]any{"session_hash": "shared", "fn_index": 0, "event_id": event})
		if resp, _ := gradioDo(t, g, bob, "POST", "/held/gradio_api/cancel", "application/json", cancel); resp.StatusCode != 404 {
			t.Errorf("bob canceled alice's call: %d, want 404", resp.StatusCode)
		}
		for _, path := range []string{"/held/gradio_api/stream/" + event + "/playlist.m3u8", "/held/gradio_api/call/generate_audio/" + event} {
			if resp, _ := gradioDo(t, g, bob, "GET", path, "", nil); resp.StatusCode != 404 {
				t.Errorf("bob GET %s: %d, want 404", path, resp.StatusCode)
			}
		}
		for _, path := range []string{"/held/gradio_api/mcp/sse", "/held/gradio_api/proxy=https://example.com/x"} {
			if resp, _ := gradioDo(t, g, alice, "GET", path, "", nil); resp.StatusCode != 404 {
				t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
			}
		}
		for _, r := range held.Requests() {
			if strings.Contains(r.Path, "/mcp") || strings.Contains(r.Path, "proxy=") || strings.Contains(r.Path, "/stream/") {
				t.Errorf("the app got %s %s, which the gateway must not forward", r.Method, r.Path)
			}
		}
		if st, _ := gradioOpen(t, g, bob, "/held/gradio_api/heartbeat/shared"); st != 200 {
			t.Errorf("bob's own heartbeat: %d, want 200", st)
		}

		// Bob uses the same session_hash for a call of his own: it is his
		// session on the app, not alice's. (His text differs: the app
		// stores equal content at one path, so equal outputs would be
		// his own too.)
		bobPrompt := gradioUpload(t, g, bob, "/held/")
		st, bobEvent := gradioJoin(t, g, bob, "/held/", "shared", "bob's text", bobPrompt)
		if st != 200 {
			t.Fatalf("bob join: %d", st)
		}
		st, bobNext := gradioStream(t, g, bob, "/held/", "shared")
		if st != 200 {
			t.Fatalf("bob's stream: %d", st)
		}
		st, aliceNext := gradioStream(t, g, alice, "/held/", "shared")
		if st != 200 {
			t.Fatalf("alice's stream: %d", st)
		}
		run.Finish()
		var output string
		for m := aliceNext(); m != nil; m = aliceNext() {
			if m["msg"] == "process_completed" {
				out, _ := m["output"].(map[string]any)
				data, _ := out["data"].([]any)
				if len(data) == 1 {
					output, _ = data[0].(map[string]any)["path"].(string)
				}
				break
			}
		}
		if output == "" {
			t.Fatal("alice's stream ended without her output")
		}
		held.NextStarted(t).Finish()
		var seen []string
		for m := bobNext(); m != nil; m = bobNext() {
			if id, ok := m["event_id"].(string); ok {
				seen = append(seen, fmt.Sprint(m["msg"])+":"+id)
			}
			if m["msg"] == "close_stream" {
				break
			}
		}
		for _, s := range seen {
			if !strings.HasSuffix(s, ":"+bobEvent) {
				t.Errorf("bob's stream carried %s; want only his event %s (alice's is %s)", s, bobEvent, event)
			}
		}
		if len(seen) == 0 {
			t.Error("bob's stream carried none of his own events")
		}
		if resp, _ := gradioDo(t, g, bob, "GET", "/held/gradio_api/file="+output, "", nil); resp.StatusCode != 404 {
			t.Errorf("bob fetched alice's output: %d, want 404", resp.StatusCode)
		}
		if resp, body := gradioDo(t, g, alice, "GET", "/held/gradio_api/file="+output, "", nil); resp.StatusCode != 200 {
			t.Errorf("alice fetched her output: %d %s, want 200", resp.StatusCode, body)
		}
	})

	t.Run("a call is checked against the budget at queue/join and holds its reservation until it ends", func(t *testing.T) {
		carol := g.userKey("carol", "tiny")
		prompt := gradioUpload(t, g, carol, "/held/")
		if st, _ := gradioJoin(t, g, carol, "/held/", "c1", "carol one", prompt); st != 200 {
			t.Fatalf("carol's first call: %d, want 200", st)
		}
		run := held.NextStarted(t)
		if st, _ := gradioJoin(t, g, carol, "/held/", "c1", "carol two", prompt); st != 429 {
			t.Errorf("carol's second call while the first holds 0.01 of her 0.015: %d, want 429", st)
		}
		_, next := gradioStream(t, g, carol, "/held/", "c1")
		run.Finish()
		for m := next(); m != nil && m["msg"] != "process_completed"; m = next() {
		}
		if !eventually(5*time.Second, func() bool {
			st, _ := gradioJoin(t, g, carol, "/held/", "c2", "carol three", prompt)
			return st == 429
		}) {
			t.Error("carol's call after spending 0.01 of 0.015 was not refused")
		}
		if n := len(held.Executions()); n != 3 {
			t.Errorf("the app ran %d calls, want 3 (alice's, bob's, carol's first)", n)
		}
	})

	t.Run("the ledger has one record per call, with the app's time as GPU time", func(t *testing.T) {
		rows := routeUsage(t, g)
		if n := rows["tts"]["requests"]; n != float64(1) {
			t.Errorf("tts route: %v records, want 1 (the client's one predict)", n)
		}
		if n := rows["held"]["requests"]; n != float64(3) {
			t.Errorf("held route: %v records, want 3 (alice's, bob's and carol's calls)", n)
		}
		if c := rows["held"]["cost"]; c != "0.03" && c != "0.030000" {
			t.Errorf("held route cost %v, want 0.03 (three calls at 0.01)", c)
		}
		x := open.Executions()[0]
		gpu := rows["tts"]["gpu_seconds"].(float64)
		if gpu < 0.2 || gpu > x.Ended.Sub(x.Started).Seconds()+0.001 {
			t.Errorf("tts GPU seconds %v, want the app's processing time (0.2 s to %v)", gpu, x.Ended.Sub(x.Started).Seconds())
		}
	})
}

// TestReplicateRunsGradioJob runs a CosyVoice3-like job model of backend
// gradio with the official replicate client.
func TestReplicateRunsGradioJob(t *testing.T) {
	clients := clienttest.Node(t)
	app := gradiotest.New(t, gradiotest.Options{RunTime: 100 * time.Millisecond})
	g := setupWith(t, `roles:
  user: {scopes: [jobs]}
jobs:
  - name: voice/cosyvoice3
    backend: gradio
    upstreams: [`+app.URL+`]
    api_name: /generate_audio
    inputs:
      text: {type: string, position: 0, required: true}
      prompt: {type: audio, position: 1, required: true}
      mode: {type: string, position: 2, default: cross-lingual}
      speed: {type: number, position: 3, default: 2.0}
    price: {per_request: "0.01", per_gpu_second: "0.001"}
`, false)
	alice := g.userKey("alice", "")
	wav := filepath.Join(t.TempDir(), "prompt.wav")
	if err := os.WriteFile(wav, gradiotest.SineWAV(16000, 8000, 220), 0o600); err != nil {
		t.Fatal(err)
	}
	input, _ := json.Marshal(map[string]any{"text": "twenty characters...", "prompt": wav})
	got := replicateAs(t, clients, g, alice, "run-audio", "voice/cosyvoice3", string(input))
	if got["status"] != float64(200) || got["seconds"] != 1.0 || !strings.HasPrefix(fmt.Sprint(got["output"]), g.URL+"/v1/results/") {
		t.Errorf("run-audio printed %v; want a result link that downloads 1 s of WAV (20 characters at speed 2)", got)
	}
	if x := app.Executions(); len(x) != 1 || x[0].Data[2] != "cross-lingual" || x[0].AudioSecs != 1.0 ||
		!strings.HasSuffix(fmt.Sprint(x[0].Data[1].(map[string]any)["path"]), ".wav") {
		t.Errorf("the app ran %+v, want one call with the defaults filled in and the prompt uploaded as a .wav", x)
	}
}
