package main

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/comfytest"
)

// comfyUploadFile uploads a PNG named filename with the given form
// fields and returns the answer's status and body.
func comfyUploadFile(t *testing.T, g *testGateway, key, filename string, png []byte, fields ...string) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("image", filename)
	_, _ = fw.Write(png)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = mw.WriteField(fields[i], fields[i+1])
	}
	_ = mw.Close()
	resp, body := comfyDo(t, g, key, "POST", "/comfy/api/upload/image", buf.Bytes(), "Content-Type", mw.FormDataContentType())
	return resp.StatusCode, string(body)
}

// comfyOutcome queues graph as the user and returns the prompt's
// history entry once it ended, and whether ComfyUI ran it. A refused
// prompt returns its refusal.
func comfyOutcome(t *testing.T, g *testGateway, s *comfytest.Server, key string, graph map[string]any) (entry string, ran bool) {
	t.Helper()
	resp, body := comfyDo(t, g, key, "POST", "/comfy/prompt", map[string]any{"prompt": graph})
	if resp.StatusCode != 200 {
		return string(body), false
	}
	var got struct {
		PromptID string `json:"prompt_id"`
	}
	_ = json.Unmarshal(body, &got)
	if !eventually(10*time.Second, func() bool {
		_, b := comfyDo(t, g, key, "GET", "/comfy/api/history/"+got.PromptID, nil)
		entry = string(b)
		return strings.Contains(entry, got.PromptID)
	}) {
		t.Fatalf("prompt %s never ended", got.PromptID)
	}
	for _, e := range s.Executions() {
		ran = ran || e.PromptID == got.PromptID
	}
	return entry, ran
}

// TestComfyRouteLoaderAnnotation: ComfyUI reads a name ending in
// "[input]" (no space needed) as a file of the input folder, cutting
// one character more; a name that hides ".." behind a " [" is cleaned
// as ComfyUI will read it, so bob cannot walk from a folder of his own
// named "y [x" into alice's.
func TestComfyRouteLoaderAnnotation(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{})
	g := comfyGateway(t, s)
	alice, bob := g.userKey("alice", ""), g.userKey("bob", "")
	image := comfyUpload(t, g, alice) // tollgate/u<alice>/…/old.png
	aliceFolder := strings.Join(strings.Split(image, "/")[:2], "/")
	rest := strings.TrimPrefix(image, aliceFolder+"/")
	if status, body := comfyUploadFile(t, g, bob, "any.png", comfytest.PNG(8, 8), "subfolder", "y [x"); status != 200 {
		t.Fatalf("bob's upload: %d %s", status, body)
	}
	name := "y [x/../../" + strings.TrimPrefix(aliceFolder, "tollgate/") + "/" + rest + "g[input]"
	entry, ran := comfyOutcome(t, g, s, bob, comfytest.DDColorPrompt(name, "steal", 512))
	if ran || !strings.Contains(entry, "Invalid image file") {
		t.Errorf("bob loading %q: ran %v, history %s; want it refused for its missing image", name, ran, entry)
	}
}

// TestComfyRouteUploadName: ComfyUI writes an upload to its subfolder
// joined with the form's file name, checking only that it stays in
// input, so a name with a path is refused before ComfyUI sees it: bob
// cannot overwrite alice's upload from his own subfolder.
func TestComfyRouteUploadName(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{})
	g := comfyGateway(t, s)
	alice, bob := g.userKey("alice", ""), g.userKey("bob", "")
	image := comfyUpload(t, g, alice) // tollgate/u<alice>/elsewhere/old.png
	theirs := "../" + strings.TrimPrefix(image, "tollgate/")
	for _, name := range []string{theirs, strings.ReplaceAll(theirs, "/", `\`), "..", "C:old.png"} {
		if status, body := comfyUploadFile(t, g, bob, name, comfytest.PNG(8, 8), "overwrite", "true"); status != 400 {
			t.Errorf("bob's upload named %q: %d %s, want 400", name, status, body)
		}
	}
	dir, file := image[:strings.LastIndex(image, "/")], image[strings.LastIndex(image, "/")+1:]
	resp, body := comfyDo(t, g, alice, "GET", "/comfy/api/view?filename="+file+"&type=input&subfolder="+dir, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, comfytest.PNG(40, 30)) {
		t.Errorf("alice's upload after bob's: %d, %d bytes, want her own %d", resp.StatusCode, len(body), len(comfytest.PNG(40, 30)))
	}
}

// TestComfyRouteAdminPaths: the admin-only routes and the caller's own
// views hold whatever form the path takes: ComfyUI serves its /api/jobs
// also as /api/api/jobs (every route gets /api once more), and slashes,
// case and escapes must not reach a route the check did not see.
func TestComfyRouteAdminPaths(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{})
	g := comfyGateway(t, s)
	alice, bob := g.userKey("alice", ""), g.userKey("bob", "")
	id := comfyPrompt(t, g, alice, "a", comfyUpload(t, g, alice), "out")
	eventually(10*time.Second, func() bool {
		_, b := comfyDo(t, g, alice, "GET", "/comfy/api/history/"+id, nil)
		return strings.Contains(string(b), id)
	})
	for _, path := range []string{"/comfy/api/api/jobs", "/comfy/api/api/jobs/" + id, "/comfy/api/api/api/jobs"} {
		resp, body := comfyDo(t, g, bob, "GET", path, nil)
		if strings.Contains(string(body), id) {
			t.Errorf("bob GET %s: %d %s, want none of alice's", path, resp.StatusCode, body)
		}
	}
	before := len(s.Requests())
	for _, c := range []struct{ method, path string }{
		{"POST", "/comfy//free"}, {"POST", "/comfy/api//free"}, {"POST", "/comfy/%66ree"}, {"POST", "/comfy/api/api/free"},
		{"POST", "/comfy/x/..%2Ffree"}, {"GET", "/comfy/internal%2Flogs"}, {"GET", "/comfy/api/internal/logs"}, {"GET", "/comfy//internal/logs"},
		{"GET", "/comfy/api/api/internal/files/output"},
	} {
		resp, body := comfyDo(t, g, bob, c.method, c.path, []byte(`{"unload_models": true}`))
		if resp.StatusCode < 300 {
			t.Errorf("bob %s %s: %d %s", c.method, c.path, resp.StatusCode, body)
		}
	}
	for _, r := range s.Requests()[before:] {
		if strings.Contains(r.Path, "free") || strings.Contains(r.Path, "internal") {
			t.Errorf("bob's call reached ComfyUI: %+v", r)
		}
	}
}

// TestComfyRouteSavesWorkflows: the UI saves a workflow as
// /userdata/workflows%2Fname.json, one path segment to ComfyUI; the
// route strips its prefix and keeps the slash escaped.
func TestComfyRouteSavesWorkflows(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{MultiUser: true})
	g := comfyGateway(t, s)
	alice, bob := g.userKey("alice", ""), g.userKey("bob", "")
	if resp, body := comfyDo(t, g, alice, "POST", "/comfy/api/userdata/workflows%2Fmine.json", []byte(`{"nodes":[]}`)); resp.StatusCode != 200 {
		t.Fatalf("alice saves a workflow: %d %s", resp.StatusCode, body)
	}
	if resp, body := comfyDo(t, g, alice, "GET", "/comfy/api/userdata/workflows%2Fmine.json", nil); resp.StatusCode != 200 || string(body) != `{"nodes":[]}` {
		t.Errorf("alice reads it back: %d %s", resp.StatusCode, body)
	}
	if resp, body := comfyDo(t, g, bob, "GET", "/comfy/api/userdata/workflows%2Fmine.json", nil); resp.StatusCode == 200 {
		t.Errorf("bob reads alice's workflow: %d %s", resp.StatusCode, body)
	}
}

// TestComfyRouteSharedUserData: without --multi-user ComfyUI has one
// user data folder; a user's saved workflows would be every user's, so
// only admins reach it.
func TestComfyRouteSharedUserData(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{})
	g := comfyGateway(t, s)
	alice, bob := g.userKey("alice", ""), g.userKey("bob", "")
	admin := g.login("admin", adminPassword).AccessToken
	if resp, body := comfyDo(t, g, admin, "POST", "/comfy/api/userdata/workflows%2Fteam.json", []byte(`{"nodes":[]}`)); resp.StatusCode != 200 {
		t.Fatalf("the admin saves a workflow: %d %s", resp.StatusCode, body)
	}
	for _, key := range []string{alice, bob} {
		for _, c := range []struct{ method, path string }{{"GET", "/comfy/api/userdata/workflows%2Fteam.json"}, {"GET", "/comfy/userdata?dir=workflows"},
			{"GET", "/comfy/api/v2/userdata?path=workflows"}, {"POST", "/comfy/api/userdata/workflows%2Fmine.json"}} {
			var body any
			if c.method == "POST" {
				body = []byte(`{}`)
			}
			if resp, b := comfyDo(t, g, key, c.method, c.path, body); resp.StatusCode != 403 || !strings.Contains(string(b), "--multi-user") {
				t.Errorf("%s %s: %d %s, want 403 naming --multi-user", c.method, c.path, resp.StatusCode, b)
			}
		}
	}
}
