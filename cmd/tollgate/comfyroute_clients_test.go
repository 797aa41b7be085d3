package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/comfytest"
)

// TestComfyRouteWithSDK drives /comfy/ with the official
// @saintno/comfyui-sdk and an API key, as it drives ComfyUI itself
// (internal/comfytest's TestSDK): upload, a DDColor run with progress,
// previews and its download, a cached rerun, a queue delete, an
// interrupt and the history; and none of it is another user's to see.
func TestComfyRouteWithSDK(t *testing.T) {
	clients := clienttest.Node(t)
	s := comfytest.New(t, comfytest.Options{Duration: func(p comfytest.Prompt) time.Duration {
		if n, _ := p.Graph["3"].(map[string]any); n != nil && strings.Contains(n["inputs"].(map[string]any)["filename_prefix"].(string), "/slow/") {
			return time.Minute // ended by the SDK's interrupt
		}
		return 300 * time.Millisecond
	}})
	g := comfyGateway(t, s)
	alice, bob := g.userKey("alice", ""), g.userKey("bob", "")
	img := filepath.Join(t.TempDir(), "old.png")
	if err := os.WriteFile(img, comfytest.PNG(48, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	out := clients.Run(t, time.Minute, "comfyui-sdk.mjs", g.URL+"/comfy", img, alice)
	var got struct {
		SID      string
		Upload   struct{ Name, Subfolder, Type string }
		Started  string
		Progress []string
		Previews int
		Output   struct{ Filename, Subfolder, Type string }
		Download struct {
			Status        int
			PNG           bool
			Width, Height int
		}
		HistoryCompleted                                bool
		HistoryOutputs                                  []string
		CachedFilename                                  string
		QueueRunning, PendingListed, PendingAfterDelete bool
		Interrupted, SlowStatus                         string
		HistoryCount, HistoryAfterClear                 int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("SDK output %s: %v", out, err)
	}
	t.Logf("SDK output: %s", out)
	if got.SID != "sdk-check-client" {
		t.Errorf("status sid %q, want the SDK's clientId", got.SID)
	}
	if !strings.HasPrefix(got.Upload.Subfolder, "tollgate/u") || !strings.HasSuffix(got.Upload.Subfolder, "/alice") || got.Upload.Name != "old.png" {
		t.Errorf("upload %+v, want alice/old.png under the user's subfolder", got.Upload)
	}
	if got.Started == "" || !slices.Equal(got.Progress, []string{"2:1/4", "2:2/4", "2:3/4", "2:4/4"}) || got.Previews != 4 {
		t.Errorf("started %q, progress %v, %d previews", got.Started, got.Progress, got.Previews)
	}
	if got.Output.Filename != "colorized_00001_.png" || got.Output.Subfolder != got.Upload.Subfolder || got.Output.Type != "output" {
		t.Errorf("output %+v", got.Output)
	}
	if d := got.Download; d.Status != 200 || !d.PNG || d.Width != 48 || d.Height != 32 {
		t.Errorf("download %+v, want a 48×32 PNG", d)
	}
	if !got.HistoryCompleted || !slices.Equal(got.HistoryOutputs, []string{"3"}) {
		t.Errorf("history completed %v outputs %v", got.HistoryCompleted, got.HistoryOutputs)
	}
	if got.CachedFilename != "colorized_00001_.png" {
		t.Errorf("cached rerun gave %q, want the first run's file", got.CachedFilename)
	}
	if !got.QueueRunning || !got.PendingListed || got.PendingAfterDelete {
		t.Errorf("queue: slow prompt running %v, pending listed %v, still listed after delete %v", got.QueueRunning, got.PendingListed, got.PendingAfterDelete)
	}
	if got.Interrupted != "DDColor_Colorize" || got.SlowStatus != "error" {
		t.Errorf("interrupt: %q, history status %q; want DDColor_Colorize interrupted, error", got.Interrupted, got.SlowStatus)
	}
	if got.HistoryCount != 3 || got.HistoryAfterClear != 0 {
		t.Errorf("history: %d entries, %d after clear; want 3, 0", got.HistoryCount, got.HistoryAfterClear)
	}
	view := "/comfy/view?" + url.Values{"filename": {got.Output.Filename}, "subfolder": {got.Output.Subfolder}, "type": {"output"}}.Encode()
	if resp, _ := comfyDo(t, g, bob, "GET", view, nil); resp.StatusCode != 404 {
		t.Errorf("bob downloads alice's output: %d", resp.StatusCode)
	}
	if _, body := comfyDo(t, g, bob, "GET", "/comfy/api/jobs", nil); strings.Contains(string(body), got.Started) {
		t.Errorf("bob's jobs list alice's prompt: %s", body)
	}
}

// TestComfyRouteInBrowserSession uses the route as ComfyUI's page does:
// the session cookie for the page, its socket (with the page's Origin)
// and /api/prompt (with the CSRF token); a socket from another site's
// page is refused.
func TestComfyRouteInBrowserSession(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{})
	g := comfyGateway(t, s)
	g.userKey("alice", "")
	b := newBrowser(t, g.URL, nil)
	csrf := csrfOf(t, b.mustLogin("alice", "password-alice"))
	if resp, page := b.do("GET", "/comfy/", nil, nil); resp.StatusCode != 200 || !strings.Contains(page, "ComfyUI") {
		t.Fatalf("GET /comfy/: %d %s", resp.StatusCode, page)
	}
	session := b.cookie("tollgate_session")
	if session == nil {
		t.Fatal("no session cookie")
	}
	cookie := session.Name + "=" + session.Value
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(g.URL, "http") + "/comfy/ws?clientId=page"
	if c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {cookie}, "Origin": {"https://evil.example"}}}); err == nil {
		c.CloseNow()
		t.Errorf("a socket from another site's page was accepted")
	} else if resp == nil || resp.StatusCode != 403 {
		t.Errorf("a socket from another site's page: %v, want 403", err)
	}
	ws := comfytest.Dial(t, wsURL, http.Header{"Cookie": {cookie}, "Origin": {g.URL}})
	if greet := ws.Next(); greet.Type != "status" || greet.Data["sid"] != "page" {
		t.Fatalf("greeting %+v", greet)
	}
	graph, _ := json.Marshal(map[string]any{"prompt": comfytest.DDColorPrompt("missing.png", "page", 512), "client_id": "page"})
	req, _ := http.NewRequest("POST", g.URL+"/comfy/api/prompt", bytes.NewReader(graph))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Origin", g.URL)
	noToken := req.Clone(ctx)
	noToken.Body = io.NopCloser(bytes.NewReader(graph))
	if resp, _ := send(t, noToken); resp.StatusCode != 403 {
		t.Errorf("a cookie prompt without the CSRF token: %d, want 403", resp.StatusCode)
	}
	req.Header.Set("X-CSRF-Token", csrf)
	resp, body := send(t, req)
	var got struct {
		PromptID string `json:"prompt_id"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("POST /comfy/api/prompt from the page: %d %s", resp.StatusCode, body)
	}
	// The workflow names no upload of alice's: ComfyUI refuses it and the
	// page's socket is told why.
	frames := ws.Until(func(f comfytest.Frame) bool { return f.Type == "execution_error" })
	if last := frames[len(frames)-1]; last.Data["prompt_id"] != got.PromptID || !strings.Contains(fmt.Sprint(last.Data["exception_message"]), "Invalid image file") {
		t.Errorf("the page's socket got %+v", last)
	}
}

// TestComfyRouteSharesUpstreams runs a user's prompts on two ComfyUIs
// of one route at once (capacity 1 each): an upload reaches both, and
// each output is served from the ComfyUI that made it.
func TestComfyRouteSharesUpstreams(t *testing.T) {
	s1, s2 := comfytest.New(t, comfytest.Options{Hold: true}), comfytest.New(t, comfytest.Options{Hold: true})
	g := setupWith(t, `roles:
  user: {scopes: [comfy]}
routes:
  - name: comfy
    path: /comfy/
    type: comfyui
    upstreams: [`+s1.URL+`, `+s2.URL+`]
    scopes: [comfy]
`, false)
	alice := g.userKey("alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _ := comfyWS(t, g, alice, "c")
	image := comfyUpload(t, g, alice)
	ids := []string{comfyPrompt(t, g, alice, "c", image, "one"), comfyPrompt(t, g, alice, "c", image, "two")}
	on := map[string]*comfytest.Server{}
	if !eventually(10*time.Second, func() bool { return len(s1.Order())+len(s2.Order()) == 2 }) {
		t.Fatalf("ComfyUIs ran %v and %v, want one prompt each at once", s1.Order(), s2.Order())
	}
	for _, s := range []*comfytest.Server{s1, s2} {
		if len(s.Order()) != 1 {
			t.Fatalf("one ComfyUI ran %v: the second prompt should run on the other", s.Order())
		}
		on[s.Order()[0]] = s
	}
	for _, id := range ids {
		if err := on[id].WaitHeld(ctx, id); err != nil {
			t.Fatal(err)
		}
		on[id].Release(id)
		frames := ws.Until(comfytest.Done(id))
		var out map[string]any
		for _, f := range frames {
			if f.Type == "executed" && f.Data["prompt_id"] == id {
				out = f.Data["output"].(map[string]any)["images"].([]any)[0].(map[string]any)
			}
		}
		if out == nil {
			t.Fatalf("no executed message for %s: %v", id, comfytest.Kinds(frames))
		}
		q := url.Values{"filename": {out["filename"].(string)}, "subfolder": {out["subfolder"].(string)}, "type": {"output"}}
		if resp, body := comfyDo(t, g, alice, "GET", "/comfy/api/view?"+q.Encode(), nil); resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte("\x89PNG")) {
			t.Errorf("view of %s's output: %d", id, resp.StatusCode)
		}
	}
}

// TestComfyRouteMultiUser serves a ComfyUI run with --multi-user: each
// user gets a ComfyUI user of their own, whose settings no one else
// reads, and /users lists only the caller.
func TestComfyRouteMultiUser(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{MultiUser: true, Users: map[string]string{"someone_1": "someone"}})
	g := comfyGateway(t, s)
	alice, bob := g.userKey("alice", ""), g.userKey("bob", "")
	if resp, body := comfyDo(t, g, alice, "POST", "/comfy/api/settings/Comfy.Theme", "dark-alice"); resp.StatusCode != 200 {
		t.Fatalf("alice's setting: %d %s", resp.StatusCode, body)
	}
	if resp, body := comfyDo(t, g, alice, "GET", "/comfy/api/settings/Comfy.Theme", nil); resp.StatusCode != 200 || !strings.Contains(string(body), "dark-alice") {
		t.Errorf("alice reads her setting: %d %s", resp.StatusCode, body)
	}
	if resp, body := comfyDo(t, g, bob, "GET", "/comfy/api/settings", nil, "Comfy-User", "someone_1"); resp.StatusCode != 200 || strings.Contains(string(body), "dark-alice") {
		t.Errorf("bob's settings: %d %s", resp.StatusCode, body)
	}
	_, body := comfyDo(t, g, bob, "GET", "/comfy/api/users", nil)
	var users struct{ Users map[string]string }
	if json.Unmarshal(body, &users) != nil || len(users.Users) != 1 || strings.Contains(string(body), "someone") {
		t.Errorf("bob's /users: %s, want only himself", body)
	}
	if n := len(s.Users()); n != 3 {
		t.Errorf("ComfyUI has %d users %v, want someone, alice and bob", n, s.Users())
	}
}

// TestComfyRouteAfterRestart restarts the gateway while a UI prompt runs
// on ComfyUI and another waits in the gateway's queue: the running one is
// left running by the clean stop and re-attached after it, the waiting
// one runs after it, and the owner's socket hears both ends and the queue
// they leave.
func TestComfyRouteAfterRestart(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{Hold: true, NoCache: true})
	dir := t.TempDir()
	yaml := `roles:
  user: {scopes: [comfy]}
routes:
  - name: comfy
    path: /comfy/
    type: comfyui
    upstreams: [` + s.URL + `]
    scopes: [comfy]
`
	env := map[string]string{"TOLLGATE_ADMIN_PASSWORD": adminPassword}
	g := setupIn(t, dir, yaml, gatewayOptions{}, env)
	alice := g.userKey("alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	image := comfyUpload(t, g, alice)
	first := comfyPrompt(t, g, alice, "c", image, "first")
	if err := s.WaitHeld(ctx, first); err != nil {
		t.Fatal(err)
	}
	waiting := comfyPrompt(t, g, alice, "c", image, "waiting")
	g.stop() // the running prompt stays running on ComfyUI; the waiting one stays queued

	g = setupIn(t, dir, yaml, gatewayOptions{}, env)
	ws, greet := comfyWS(t, g, alice, "c")
	if q := greet.Data["status"].(map[string]any)["exec_info"].(map[string]any)["queue_remaining"]; q != float64(2) {
		t.Errorf("after the restart queue_remaining %v, want 2 (the re-attached prompt and the waiting one)", q)
	}
	s.Release(first)
	if err := s.WaitHeld(ctx, waiting); err != nil {
		t.Fatal(err)
	}
	s.Release(waiting)
	// Its end reaches the owner's socket, then the queue it leaves empty.
	frames := ws.Until(comfytest.Done(waiting))
	if !slices.ContainsFunc(frames, func(f comfytest.Frame) bool {
		return f.Type == "execution_success" && f.Data["prompt_id"] == waiting
	}) {
		t.Errorf("the socket got %v, want the waiting prompt's end", comfytest.Kinds(frames))
	}
	ws.Until(func(f comfytest.Frame) bool {
		return f.Type == "status" && f.Data["status"].(map[string]any)["exec_info"].(map[string]any)["queue_remaining"] == float64(0)
	})
	// The re-attached prompt ended as ComfyUI ran it: its owner's history
	// holds it as a success. (Its live messages reach the socket only when
	// the re-attached watch connected before ComfyUI sent them.)
	resp, body := comfyDo(t, g, alice, "GET", "/comfy/api/history/"+first, nil)
	var hist map[string]struct {
		Status struct {
			StatusStr string `json:"status_str"`
			Completed bool
		}
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &hist) != nil || hist[first].Status.StatusStr != "success" || !hist[first].Status.Completed {
		t.Errorf("history of the re-attached prompt: %d %s, want a completed success", resp.StatusCode, body)
	}
}

// TestComfyRoutePredictionsAndSockets: the route's prompts are also a
// model of the predictions API, with the same node rules and namespace;
// and one user's sockets on the route are bounded.
func TestComfyRoutePredictionsAndSockets(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{})
	g := setupWith(t, `roles:
  user: {scopes: [comfy, jobs]}
routes:
  - name: comfy
    path: /comfy/
    type: comfyui
    upstreams: [`+s.URL+`]
    scopes: [comfy]
    nodes: {deny: ["Shell*"]}
`, false)
	alice := g.userKey("alice", "")
	image := comfyUpload(t, g, alice)
	graph := comfytest.DDColorPrompt(image, "../api", 512)
	graph["9"] = map[string]any{"class_type": "ShellCommand", "inputs": map[string]any{}}
	body, _ := json.Marshal(map[string]any{"version": "comfy", "input": map[string]any{"prompt": graph}})
	if resp, out := g.do("POST", "/v1/predictions", alice, string(body)); resp.StatusCode != 403 || !strings.Contains(string(out), "ShellCommand") {
		t.Errorf("a denied node through the predictions API: %d %s", resp.StatusCode, out)
	}
	delete(graph, "9")
	body, _ = json.Marshal(map[string]any{"version": "comfy", "input": map[string]any{"prompt": graph}})
	resp, out := g.do("POST", "/v1/predictions", alice, string(body))
	var pred struct{ ID string }
	if resp.StatusCode != 201 || json.Unmarshal(out, &pred) != nil {
		t.Fatalf("a prediction of the route's model: %d %s", resp.StatusCode, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.WaitDone(ctx, pred.ID); err != nil {
		t.Fatalf("the prediction's prompt did not run under its id: %v", err)
	}
	if prefix := historyInput(t, s, pred.ID, "3", "filename_prefix").(string); !strings.HasPrefix(prefix, strings.Join(strings.Split(image, "/")[:2], "/")+"/") {
		t.Errorf("the prediction saved under %q, want the user's subfolder", prefix)
	}

	for i := range 32 {
		comfyWS(t, g, alice, fmt.Sprint("tab", i))
	}
	_, r, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.URL, "http")+"/comfy/ws?clientId=one-more", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + alice}}})
	if err == nil || r == nil || r.StatusCode != 429 {
		t.Errorf("the 33rd socket of one user: %v, want 429", err)
	}
}
