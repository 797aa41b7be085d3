package comfytest_test

import (
	"bytes"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/tollgate/tollgate/internal/comfytest"
)

// TestFiles checks uploads (renaming, duplicates), SaveImage's real PNG
// and /view's path checks.
func TestFiles(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	if got := upload(t, s, "old.png", "", comfytest.PNG(40, 24))["name"]; got != "old.png" {
		t.Errorf("same content uploaded as %v, want old.png", got)
	}
	if got := upload(t, s, "old.png", "", comfytest.PNG(30, 20))["name"]; got != "old (1).png" {
		t.Errorf("other content uploaded as %v, want old (1).png", got)
	}
	code, out := postJSON(t, s.URL+"/prompt", map[string]any{"prompt": ddcolor("old (1).png", "sub/dir/name", 512),
		"extra_data": map[string]any{"extra_pnginfo": map[string]any{"workflow": map[string]any{"id": "wf-1"}}, "api_key_comfy_org": "secret"}})
	id, _ := out["prompt_id"].(string)
	if code != 200 {
		t.Fatalf("POST /prompt: %d %v", code, out)
	}
	if _, err := s.WaitDone(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(filepath.Join(s.Dir("output"), "sub", "dir", "name_00001_.png"))
	if err != nil || !bytes.Contains(saved, []byte("tEXtprompt\x00{")) || !bytes.Contains(saved, []byte(`tEXtworkflow`+"\x00"+`{"id":"wf-1"}`)) {
		t.Errorf("saved PNG lacks the prompt and workflow text chunks (%v)", err)
	}
	var h map[string]map[string]any
	getJSON(t, s.URL+"/history/"+id, &h)
	if extra := h[id]["prompt"].([]any)[3].(map[string]any); extra["api_key_comfy_org"] != nil {
		t.Errorf("history shows the sensitive extra_data key: %v", extra)
	}
	resp, err := http.Get(s.URL + "/api/view?filename=name_00001_.png&subfolder=sub/dir&type=output")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || resp.Header.Get("Content-Type") != "image/png" || img.Bounds().Dx() != 30 || img.Bounds().Dy() != 20 {
		t.Fatalf("view: %v %s, want a 30×20 PNG", err, resp.Header.Get("Content-Type"))
	}
	if r, g, b, _ := img.At(29, 19).RGBA(); r == g && g == b {
		t.Errorf("output pixel is grey (%d,%d,%d), want it colorized", r, g, b)
	}
	if _, err := os.Stat(filepath.Join(s.Dir("output"), "sub", "dir", "name_00001_.png")); err != nil {
		t.Errorf("output file: %v", err)
	}
	for q, want := range map[string]int{
		"filename=../old.png&type=input":              400,
		"filename=old.png&type=input&subfolder=../..": 403,
		"filename=old.png&type=secret":                400,
		"filename=nope.png":                           404,
		"filename=old.png&type=input":                 200,
		"filename=old.png%20%5Binput%5D":              200,
	} {
		if code := getJSON(t, s.URL+"/view?"+q, nil); code != want {
			t.Errorf("/view?%s: %d, want %d", q, code, want)
		}
	}
}

// TestMultiUser checks Comfy-User under --multi-user: settings per user,
// unknown users refused, users created with POST /users.
func TestMultiUser(t *testing.T) {
	t.Parallel()
	s := comfytest.New(t, comfytest.Options{MultiUser: true, Users: map[string]string{"alice": "alice"}})
	do := func(method, path, user, body string) int {
		req, _ := http.NewRequest(method, s.URL+path, bytes.NewBufferString(body))
		if user != "" {
			req.Header.Set("Comfy-User", user)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do("POST", "/settings/Comfy.Theme", "alice", `"dark"`); code != 200 {
		t.Fatalf("alice's setting: %d", code)
	}
	if code := do("GET", "/settings", "mallory", ""); code != 401 {
		t.Errorf("unknown user's settings: %d, want 401", code)
	}
	if code := do("GET", "/settings", "", ""); code != 401 {
		t.Errorf("no user under --multi-user: %d, want 401", code)
	}
	if code, _ := postJSON(t, s.URL+"/users", map[string]any{"username": "bob"}); code != 200 {
		t.Fatalf("POST /users: %d", code)
	}
	var bobID string
	for id, name := range s.Users() {
		if name == "bob" {
			bobID = id
		}
	}
	if bobID == "" {
		t.Fatalf("users %v", s.Users())
	}
	req, _ := http.NewRequest("GET", s.URL+"/settings", nil)
	req.Header.Set("Comfy-User", bobID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var bobs map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&bobs)
	resp.Body.Close()
	if len(bobs) != 0 {
		t.Errorf("bob sees settings %v", bobs)
	}
	var last comfytest.Request
	for _, r := range s.Requests() {
		if r.Path == "/settings" {
			last = r
		}
	}
	if last.ComfyUser != bobID {
		t.Errorf("request log %+v", last)
	}
}
