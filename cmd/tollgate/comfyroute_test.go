package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/comfytest"
)

// comfyGateway serves emulated ComfyUI s through the route /comfy/
// (capacity 1, per_gpu_second priced, Shell* nodes denied) and returns
// the gateway. Users get the comfy scope; plan pro has priority 10, plan
// tiny a budget below one prompt's reservation.
func comfyGateway(t *testing.T, s *comfytest.Server) *testGateway {
	t.Helper()
	return setupWith(t, `roles:
  user: {scopes: [comfy]}
plans:
  pro: {priority: 10}
  tiny: {budget: {amount: "0.01", period: month}}
routes:
  - name: comfy
    path: /comfy/
    type: comfyui
    upstreams: [`+s.URL+`]
    capacity: 1
    scopes: [comfy]
    timeout: 60s
    price: {per_gpu_second: "0.001"}
    nodes: {deny: ["Shell*"]}
`, false)
}

// comfyDo makes a request on the gateway with a key; a body is sent as
// text/plain, as the SDK sends /prompt.
func comfyDo(t *testing.T, g *testGateway, key, method, path string, body any, header ...string) (*http.Response, []byte) {
	t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, g.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return send(t, req)
}

// comfyPrompt queues a DDColor prompt from the UI's path and returns its
// prompt_id.
func comfyPrompt(t *testing.T, g *testGateway, key, clientID, image, prefix string) string {
	t.Helper()
	resp, body := comfyDo(t, g, key, "POST", "/comfy/api/prompt", map[string]any{
		"prompt": comfytest.DDColorPrompt(image, prefix, 512), "client_id": clientID,
		"extra_data": map[string]any{"extra_pnginfo": map[string]any{"workflow": map[string]any{"id": "wf-1"}}}})
	var got struct {
		PromptID   string         `json:"prompt_id"`
		NodeErrors map[string]any `json:"node_errors"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil || got.PromptID == "" || got.NodeErrors == nil {
		t.Fatalf("POST /comfy/api/prompt: %d %s", resp.StatusCode, body)
	}
	return got.PromptID
}

// comfyUpload uploads a PNG into the caller's subfolder and returns the
// name a LoadImage takes.
func comfyUpload(t *testing.T, g *testGateway, key string) string {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("image", "old.png")
	_, _ = fw.Write(comfytest.PNG(40, 30))
	_ = mw.WriteField("subfolder", "../../elsewhere")
	_ = mw.Close()
	resp, body := comfyDo(t, g, key, "POST", "/comfy/api/upload/image", buf.Bytes(), "Content-Type", mw.FormDataContentType())
	var got struct{ Name, Subfolder string }
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	return got.Subfolder + "/" + got.Name
}

// comfyWS opens the route's websocket as the UI does and returns it
// after its greeting.
func comfyWS(t *testing.T, g *testGateway, key, clientID string) (*comfytest.WSClient, comfytest.Frame) {
	t.Helper()
	ws := comfytest.Dial(t, g.URL+"/comfy/ws?clientId="+clientID, http.Header{"Authorization": {"Bearer " + key}})
	ws.Send(map[string]any{"type": "feature_flags", "data": map[string]any{"supports_preview_metadata": false}})
	return ws, ws.Next()
}

// mentions reports whether a frame names any of ids.
func mentions(f comfytest.Frame, ids ...string) bool {
	b, _ := json.Marshal(f.Data)
	for _, id := range ids {
		if strings.Contains(string(b), id) {
			return true
		}
	}
	return false
}

func TestComfyRouteKeepsUsersApart(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{Duration: func(p comfytest.Prompt) time.Duration {
		if n, _ := p.Graph["3"].(map[string]any); n != nil && strings.Contains(n["inputs"].(map[string]any)["filename_prefix"].(string), "slow") {
			return time.Minute // ended by an interrupt
		}
		return 0
	}})
	g := comfyGateway(t, s)
	alice, bob := g.userKey("alice", ""), g.userKey("bob", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	aws, greet := comfyWS(t, g, alice, "shared-client")
	if greet.Type != "status" || greet.Data["sid"] != "shared-client" {
		t.Fatalf("greeting %+v, want status with sid shared-client", greet)
	}
	if f := aws.Next(); f.Type != "feature_flags" {
		t.Fatalf("after feature_flags the socket got %+v, want ComfyUI's feature_flags as text", f)
	}
	bws, _ := comfyWS(t, g, bob, "shared-client") // the same clientId as alice's
	image := comfyUpload(t, g, alice)
	if !strings.HasPrefix(image, "tollgate/u") || strings.Contains(image, "..") || strings.Contains(image, "elsewhere/") && !strings.HasPrefix(image, "tollgate/u") {
		t.Fatalf("upload named %q, want a file under the user's subfolder", image)
	}

	id := comfyPrompt(t, g, alice, "shared-client", image, "../colorized")
	frames := aws.Until(comfytest.Done(id))
	kinds := comfytest.Kinds(frames)
	for _, want := range []string{"execution_start", "executing", "progress", "preview", "executed", "execution_success"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("alice's socket got %v, want %s", kinds, want)
		}
	}
	var output map[string]any
	for _, f := range frames {
		if f.Type == "executed" {
			imgs, _ := f.Data["output"].(map[string]any)["images"].([]any)
			output, _ = imgs[0].(map[string]any)
		}
	}
	if sub, _ := output["subfolder"].(string); !strings.HasPrefix(sub, "tollgate/u") {
		t.Fatalf("output %v, want it under alice's subfolder", output)
	}
	view := "/comfy/api/view?" + url.Values{"filename": {output["filename"].(string)}, "subfolder": {output["subfolder"].(string)}, "type": {"output"}}.Encode()

	t.Run("the owner sees the prompt, its history and its file", func(t *testing.T) {
		resp, body := comfyDo(t, g, alice, "GET", "/comfy/api/history/"+id, nil)
		var h map[string]struct {
			Outputs map[string]any
			Status  struct{ Completed bool }
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &h) != nil || !h[id].Status.Completed || h[id].Outputs["3"] == nil {
			t.Errorf("history: %d %s", resp.StatusCode, body)
		}
		resp, body = comfyDo(t, g, alice, "GET", view, nil)
		if resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte("\x89PNG")) {
			t.Errorf("view: %d %.40q", resp.StatusCode, body)
		}
		resp, body = comfyDo(t, g, alice, "GET", "/comfy/api/jobs?limit=5", nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), id) || !strings.Contains(string(body), `"completed"`) {
			t.Errorf("jobs: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("another user sees, downloads and lists nothing of it", func(t *testing.T) {
		for _, path := range []string{"/comfy/api/history/" + id, "/comfy/history/" + id, "/comfy/api/history", "/comfy/history?max_items=64", "/comfy/api/queue", "/comfy/queue", "/comfy/api/jobs"} {
			resp, body := comfyDo(t, g, bob, "GET", path, nil)
			if resp.StatusCode != 200 || strings.Contains(string(body), id) {
				t.Errorf("bob GET %s: %d %s", path, resp.StatusCode, body)
			}
		}
		if resp, _ := comfyDo(t, g, bob, "GET", "/comfy/api/jobs/"+id, nil); resp.StatusCode != 404 {
			t.Errorf("bob GET /api/jobs/{id}: %d, want 404", resp.StatusCode)
		}
		for _, q := range []string{strings.TrimPrefix(view, "/comfy/api/view?"), url.Values{"filename": {output["filename"].(string) + " [output]"}, "subfolder": {output["subfolder"].(string)}}.Encode(),
			url.Values{"filename": {output["subfolder"].(string) + "/" + output["filename"].(string)}, "type": {"output"}}.Encode(),
			url.Values{"filename": {"old.png"}, "subfolder": {strings.TrimSuffix(image, "/old.png")}, "type": {"input"}}.Encode()} {
			if resp, body := comfyDo(t, g, bob, "GET", "/comfy/view?"+q, nil); resp.StatusCode != 404 || bytes.HasPrefix(body, []byte("\x89PNG")) {
				t.Errorf("bob GET /view?%s: %d, want 404", q, resp.StatusCode)
			}
		}
		// A mask painted on alice's upload is refused.
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("image", "mask.png")
		_, _ = fw.Write(comfytest.PNG(40, 30))
		ref, _ := json.Marshal(map[string]string{"filename": "old.png", "subfolder": strings.TrimSuffix(image, "/old.png"), "type": "input"})
		_ = mw.WriteField("original_ref", string(ref))
		_ = mw.Close()
		if resp, body := comfyDo(t, g, bob, "POST", "/comfy/api/upload/mask", buf.Bytes(), "Content-Type", mw.FormDataContentType()); resp.StatusCode != 404 {
			t.Errorf("bob's mask on alice's upload: %d %s, want 404", resp.StatusCode, body)
		}
		// Bob's prompt naming alice's upload loads nothing of hers.
		resp, body := comfyDo(t, g, bob, "POST", "/comfy/prompt", map[string]any{"prompt": comfytest.DDColorPrompt(image, "steal", 512), "client_id": "shared-client"})
		var got struct {
			PromptID string `json:"prompt_id"`
		}
		_ = json.Unmarshal(body, &got)
		if resp.StatusCode != 200 {
			t.Fatalf("bob's prompt: %d %s", resp.StatusCode, body)
		}
		var entry string
		eventually(10*time.Second, func() bool {
			_, b := comfyDo(t, g, bob, "GET", "/comfy/api/history/"+got.PromptID, nil)
			entry = string(b)
			return strings.Contains(entry, got.PromptID)
		})
		if !strings.Contains(entry, `"status_str":"error"`) || !strings.Contains(entry, "Invalid image file") {
			t.Errorf("bob's prompt naming alice's upload: history %s, want it failed on its missing image", entry)
		}
		for _, e := range s.Executions() {
			if e.PromptID == got.PromptID {
				t.Errorf("bob's prompt naming alice's upload ran")
			}
		}
	})
	t.Run("another user cannot delete or interrupt it", func(t *testing.T) {
		slow := comfyPrompt(t, g, alice, "shared-client", image, "slow/a")
		if err := s.WaitHeld(ctx, slow); err != nil {
			t.Fatal(err)
		}
		waiting := comfyPrompt(t, g, alice, "shared-client", image, "slow/b")
		before := len(s.Requests())
		comfyDo(t, g, bob, "POST", "/comfy/api/queue", map[string]any{"delete": []string{waiting, slow}})
		comfyDo(t, g, bob, "POST", "/comfy/api/queue", map[string]any{"clear": true})
		comfyDo(t, g, bob, "POST", "/comfy/api/interrupt", map[string]any{"prompt_id": slow})
		comfyDo(t, g, bob, "POST", "/comfy/interrupt", nil)
		comfyDo(t, g, bob, "POST", "/comfy/api/history", map[string]any{"clear": true})
		for _, r := range s.Requests()[before:] {
			if r.Path == "/interrupt" || r.Path == "/queue" && r.Method == "POST" {
				t.Errorf("bob's calls reached ComfyUI: %+v", r)
			}
		}
		_, body := comfyDo(t, g, alice, "GET", "/comfy/api/queue", nil)
		var q struct{ QueueRunning, QueuePending [][]any }
		_ = json.Unmarshal([]byte(strings.ReplaceAll(string(body), "queue_", "Queue")), &q)
		if !strings.Contains(string(body), slow) || !strings.Contains(string(body), waiting) {
			t.Errorf("alice's queue after bob's calls: %s", body)
		}
		if _, body := comfyDo(t, g, alice, "GET", "/comfy/api/history/"+id, nil); !strings.Contains(string(body), id) {
			t.Errorf("bob's clear removed alice's history: %s", body)
		}
		// Alice can.
		comfyDo(t, g, alice, "POST", "/comfy/api/queue", map[string]any{"delete": []string{waiting}})
		if _, body := comfyDo(t, g, alice, "GET", "/comfy/api/queue", nil); strings.Contains(string(body), waiting) {
			t.Errorf("alice's delete left %s queued: %s", waiting, body)
		}
		comfyDo(t, g, alice, "POST", "/comfy/api/interrupt", map[string]any{"prompt_id": slow})
		stop := aws.Until(func(f comfytest.Frame) bool { return f.Type == "execution_interrupted" })
		if last := stop[len(stop)-1]; last.Data["prompt_id"] != slow {
			t.Errorf("interrupted %v, want %s", last.Data, slow)
		}
	})
	t.Run("another user's socket gets none of the messages", func(t *testing.T) {
		own := comfyPrompt(t, g, bob, "shared-client", image, "bob")
		got := bws.Until(comfytest.Done(own))
		started := false
		for _, f := range got {
			if f.Type == "execution_start" && f.Data["prompt_id"] == own {
				started = true
			}
			if mentions(f, id) || f.Binary != nil && !started {
				t.Errorf("bob's socket got alice's %s %v", f.Type, f.Data)
			}
		}
	})
	t.Run("admin routes and other node classes are refused", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{{"POST", "/comfy/api/free"}, {"GET", "/comfy/internal/logs"}, {"POST", "/comfy/manager/queue/start"}, {"GET", "/comfy/api/customnode/getlist"}} {
			var body any
			if c.method == "POST" {
				body = map[string]any{}
			}
			if resp, _ := comfyDo(t, g, bob, c.method, c.path, body); resp.StatusCode != 403 {
				t.Errorf("bob %s %s: %d, want 403", c.method, c.path, resp.StatusCode)
			}
		}
		admin := g.login("admin", adminPassword).AccessToken
		if resp, _ := comfyDo(t, g, admin, "GET", "/comfy/internal/logs", nil); resp.StatusCode != 200 {
			t.Errorf("admin GET /internal/logs: %d", resp.StatusCode)
		}
		before := len(s.Requests())
		graph := comfytest.DDColorPrompt(image, "x", 512)
		graph["9"] = map[string]any{"class_type": "ShellCommand", "inputs": map[string]any{"command": "id"}}
		resp, body := comfyDo(t, g, alice, "POST", "/comfy/api/prompt", map[string]any{"prompt": graph})
		if resp.StatusCode != 403 || !strings.Contains(string(body), "ShellCommand") || !strings.Contains(string(body), `"node_errors":{"9"`) {
			t.Errorf("a denied node: %d %s", resp.StatusCode, body)
		}
		for _, r := range s.Requests()[before:] {
			if r.Path == "/prompt" {
				t.Errorf("the denied workflow reached ComfyUI")
			}
		}
	})
	t.Run("Comfy-User is the caller, whatever the client sends", func(t *testing.T) {
		before := len(s.Requests())
		comfyDo(t, g, bob, "GET", "/comfy/api/object_info/LoadImage", nil, "Comfy-User", "alice-s-id")
		reqs := s.Requests()[before:]
		if len(reqs) != 1 || reqs[0].ComfyUser == "alice-s-id" || !strings.HasPrefix(reqs[0].ComfyUser, "u") {
			t.Errorf("ComfyUI saw %+v", reqs)
		}
	})
}

// TestComfyRouteFairness queues, with capacity 1, five prompts of alice
// from the UI's /api/prompt, then one of bob and one of a pro user: the
// fair queue has ComfyUI run the pro prompt before alice's remaining ones
// and bob's before alice's third.
func TestComfyRouteFairness(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{Hold: true, NoCache: true})
	g := comfyGateway(t, s)
	alice, bob, pro := g.userKey("alice", ""), g.userKey("bob", ""), g.userKey("carol", "pro")
	image := comfyUpload(t, g, alice)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var a []string
	for i := range 5 {
		a = append(a, comfyPrompt(t, g, alice, "a", image, "a"+string(rune('0'+i))))
		if i == 0 {
			if err := s.WaitHeld(ctx, a[0]); err != nil { // the GPU is busy: the rest wait in tollgate's queue
				t.Fatal(err)
			}
		}
	}
	b := comfyPrompt(t, g, bob, "b", comfyUpload(t, g, bob), "b")
	p := comfyPrompt(t, g, pro, "p", comfyUpload(t, g, pro), "p")
	_, body := comfyDo(t, g, bob, "GET", "/comfy/api/queue", nil)
	var q struct {
		Pending [][]any `json:"queue_pending"`
		Ahead   int     `json:"queue_ahead"`
	}
	if json.Unmarshal(body, &q) != nil || len(q.Pending) != 1 || q.Pending[0][1] != b || q.Ahead != 1 {
		t.Errorf("bob's queue: %s, want his prompt pending behind one other (the pro prompt)", body)
	}
	if pending := s.Pending(); len(pending) != 0 {
		t.Errorf("ComfyUI holds %d prompts waiting; tollgate should keep them", len(pending))
	}
	for n := 1; n <= 7; n++ {
		order := s.Order()
		if len(order) != n {
			t.Fatalf("ComfyUI ran %v, want %d prompts", order, n)
		}
		cur := order[n-1]
		if err := s.WaitHeld(ctx, cur); err != nil {
			t.Fatal(err)
		}
		s.Release(cur)
		if _, err := s.WaitDone(ctx, cur); err != nil {
			t.Fatal(err)
		}
		if n < 7 && !eventually(10*time.Second, func() bool { return len(s.Order()) > n }) {
			t.Fatalf("no prompt started after %s", cur)
		}
	}
	order := s.Order()
	at := func(id string) int { return slices.Index(order, id) }
	if at(p) > at(a[1]) {
		t.Errorf("order %v: the pro prompt ran after alice's second", order)
	}
	if at(b) > at(a[2]) {
		t.Errorf("order %v: bob's prompt ran after alice's third", order)
	}
}

// TestComfyRouteMetering checks that a UI prompt is charged ComfyUI's own
// execution time (execution_start to execution_success), and that a
// prompt whose reservation the budget cannot hold is refused before
// ComfyUI sees it.
func TestComfyRouteMetering(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{NoCache: true, Duration: func(comfytest.Prompt) time.Duration { return 300 * time.Millisecond }})
	g := comfyGateway(t, s)
	alice, tiny := g.userKey("alice", ""), g.userKey("tim", "tiny")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	before := len(s.Requests())
	resp, body := comfyDo(t, g, tiny, "POST", "/comfy/prompt", map[string]any{"prompt": comfytest.DDColorPrompt("x.png", "t", 512)})
	if resp.StatusCode != 429 || !strings.Contains(string(body), "insufficient_quota") {
		t.Errorf("a prompt over the budget: %d %s, want 429 insufficient_quota", resp.StatusCode, body)
	}
	for _, r := range s.Requests()[before:] {
		if r.Path == "/prompt" || r.Path == "/api/prompt" {
			t.Errorf("the refused prompt reached ComfyUI")
		}
	}
	if _, body := comfyDo(t, g, tiny, "GET", "/comfy/api/queue", nil); strings.Contains(string(body), "x.png") {
		t.Errorf("the refused prompt is queued: %s", body)
	}

	id := comfyPrompt(t, g, alice, "a", comfyUpload(t, g, alice), "metered")
	e, err := s.WaitDone(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := e.End.Sub(e.Start).Milliseconds()
	rows := routeUsage(t, g)
	row := rows["comfy"]
	if row == nil || row["requests"] != float64(1) {
		t.Fatalf("usage %v, want one record of route comfy", rows)
	}
	if got := row["gpu_seconds"].(float64); int64(got*1000+0.5) != want {
		t.Errorf("ledger gpu_seconds %v, want ComfyUI's %d ms", got, want)
	}
	// per_gpu_second 0.001: one micro-unit per millisecond.
	if got, wantCost := row["cost"], fmt.Sprintf("0.%06d", want); got != wantCost {
		t.Errorf("cost %v, want %s", got, wantCost)
	}
}

// TestComfyRouteBudgetHoldsReservations gives a user a budget of one
// prompt's reservation (60 s × 0.001) and a little more: a second prompt
// is refused while the first runs, and admitted once the first settled
// at its real cost.
func TestComfyRouteBudgetHoldsReservations(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{Hold: true, NoCache: true})
	g := setupWith(t, `roles:
  user: {scopes: [comfy]}
plans:
  exact: {budget: {amount: "0.0605", period: month}}
routes:
  - name: comfy
    path: /comfy/
    type: comfyui
    upstreams: [`+s.URL+`]
    scopes: [comfy]
    timeout: 60s
    price: {per_gpu_second: "0.001"}
`, false)
	key := g.userKey("erin", "exact")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	image := comfyUpload(t, g, key)
	first := comfyPrompt(t, g, key, "c", image, "one")
	if err := s.WaitHeld(ctx, first); err != nil {
		t.Fatal(err)
	}
	resp, body := comfyDo(t, g, key, "POST", "/comfy/api/prompt", map[string]any{"prompt": comfytest.DDColorPrompt(image, "two", 512)})
	if resp.StatusCode != 429 || !strings.Contains(string(body), "insufficient_quota") {
		t.Errorf("a second prompt while the first holds the budget: %d %s", resp.StatusCode, body)
	}
	s.Release(first)
	if _, err := s.WaitDone(ctx, first); err != nil {
		t.Fatal(err)
	}
	ok := eventually(10*time.Second, func() bool {
		resp, _ := comfyDo(t, g, key, "GET", "/comfy/api/history/"+first, nil)
		return resp.StatusCode == 200 && routeUsage(t, g)["comfy"]["in_flight"] == float64(0)
	})
	if !ok {
		t.Fatal("the first prompt's usage did not settle")
	}
	second := comfyPrompt(t, g, key, "c", image, "two")
	if err := s.WaitHeld(ctx, second); err != nil {
		t.Fatalf("the prompt after the first settled: %v", err)
	}
	s.Release(second)
	if len(s.Order()) != 2 {
		t.Errorf("ComfyUI ran %v, want the two admitted prompts only", s.Order())
	}
}
