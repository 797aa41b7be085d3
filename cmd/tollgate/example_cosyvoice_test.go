package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/gradiotest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// webuiJoin queues a 3 s voice clone on the webui's /generate_audio (fn 1)
// with its ten inputs in webui.py's order, and returns the status and the
// answer.
func webuiJoin(t *testing.T, g *testGateway, key, session, text, prompt string, extra ...string) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"fn_index": 1, "session_hash": session, "event_data": nil, "trigger_id": 13,
		"data": []any{text, "3s极速复刻", "", "希望你以后能够做的比我还好呦。",
			map[string]any{"path": prompt, "meta": map[string]any{"_type": "gradio.FileData"}}, nil, "", 0, false, 1}})
	resp, b := gradioDo(t, g, key, "POST", "/cosyvoice/gradio_api/queue/join", "application/json", body, extra...)
	return resp.StatusCode, b
}

// wantCharge checks a usage row of one call or job at the example's
// prices: 0.005 + 0.001 a GPU second + 0.002 a second of speech, the GPU
// time the app's own and the speech the WAV's length.
func wantCharge(t *testing.T, what string, r usageRow, app gradiotest.Execution, speech float64) {
	t.Helper()
	if r.Requests != 1 {
		t.Fatalf("%s: %d records, want 1", what, r.Requests)
	}
	if r.GPUSeconds < 0.3 || r.GPUSeconds > app.Ended.Sub(app.Started).Seconds()+0.001 {
		t.Errorf("%s: %.3f GPU seconds, want the app's processing time (0.3 s to %.3f s)", what, r.GPUSeconds, app.Ended.Sub(app.Started).Seconds())
	}
	if r.OutputAudioSeconds != speech {
		t.Errorf("%s: %.3f s of output audio in the ledger, want the returned WAV's %.3f s", what, r.OutputAudioSeconds, speech)
	}
	want := tollgate.Money(5_000 + math.Round(r.GPUSeconds*1000) + 2*math.Round(speech*1000))
	if r.Cost != want.String() {
		t.Errorf("%s: cost %s, want %s (0.005 + %.3f GPU s × 0.001 + %.3f s of speech × 0.002)", what, r.Cost, want, r.GPUSeconds, speech)
	}
}

// TestExampleCosyVoice runs examples/cosyvoice/tollgate.yaml against an
// app shaped like CosyVoice's webui.py: @gradio/client clones a voice
// through the route with an API key, the replicate client through the job
// model, each charged the app's GPU time and the seconds of speech it
// returned; another user cannot fetch the results, and budgets hold to
// the micro-unit, refusing a call before the app sees it.
func TestExampleCosyVoice(t *testing.T) {
	clients := clienttest.Node(t)
	app := gradiotest.New(t, gradiotest.Options{App: gradiotest.AppCosyVoiceWebUI, RootPath: "/cosyvoice",
		RunTime: 300 * time.Millisecond, Concurrency: 2})
	g := setup(t, exampleYAML(t, "cosyvoice", map[string]string{"http://127.0.0.1:50000": app.URL}))
	alice, bob, carol := g.userKey("alice", ""), g.userKey("bob", ""), g.userKey("carol", "")
	aliceID, carolID := userIDOfKey(t, g, alice), userIDOfKey(t, g, carol)
	admin := g.login("admin", adminPassword).AccessToken
	prompt := filepath.Join(t.TempDir(), "prompt.wav")
	if err := os.WriteFile(prompt, gradiotest.SineWAV(16000, 48000, 220), 0o600); err != nil {
		t.Fatal(err)
	}

	var output string
	t.Run("@gradio/client clones a voice through /cosyvoice/ with an API key", func(t *testing.T) {
		text := "收到好友从远方寄来的生日礼物，那份意外的惊喜让我心中充满了甜蜜。" // 32 characters: 3.2 s
		raw := clients.Run(t, time.Minute, "gradio-cosyvoice.mjs", g.URL+"/cosyvoice/", alice, prompt, text)
		var out struct {
			Root       string
			Parameters []string
			File       struct{ Path, URL string }
			Download   struct {
				Status  int
				Seconds float64
			}
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("gradio-cosyvoice.mjs printed %s: %v", raw, err)
		}
		if out.Root != g.URL+"/cosyvoice" || len(out.Parameters) != 10 {
			t.Errorf("the client resolved root %q and %d parameters, want %q and webui.py's 10", out.Root, len(out.Parameters), g.URL+"/cosyvoice")
		}
		if out.Download.Status != 200 || math.Abs(out.Download.Seconds-3.2) > 0.001 {
			t.Fatalf("download of %s: %+v, want 200 and 3.2 s of speech (printed %s)", out.File.URL, out.Download, raw)
		}
		output = out.File.Path
		execs := app.Executions()
		if len(execs) != 1 || execs[0].Header.Get("X-User-ID") != aliceID || execs[0].AudioSecs != out.Download.Seconds {
			t.Fatalf("the app ran %+v; want one call as alice (%s) making the speech she downloaded", execs, aliceID)
		}
		rows := usageRows(t, g, admin, "route", 1)
		wantCharge(t, "route cosyvoice-ui", rows["cosyvoice-ui"], execs[0], out.Download.Seconds)
	})

	t.Run("another user cannot fetch the speech, and cannot pose as its owner", func(t *testing.T) {
		if output == "" {
			t.Skip("no output from the previous subtest")
		}
		if resp, _ := gradioDo(t, g, bob, "GET", "/cosyvoice/gradio_api/file="+output, "", nil); resp.StatusCode != 404 {
			t.Errorf("bob fetched alice's speech: %d, want 404", resp.StatusCode)
		}
		if resp, _ := gradioDo(t, g, bob, "GET", "/cosyvoice/gradio_api/file="+output, "", nil, "X-User-ID", aliceID); resp.StatusCode != 404 {
			t.Errorf("bob fetched alice's speech naming her X-User-ID: %d, want 404", resp.StatusCode)
		}
		if resp, _ := gradioDo(t, g, alice, "GET", "/cosyvoice/gradio_api/file="+output, "", nil); resp.StatusCode != 200 {
			t.Errorf("alice fetched her speech: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("the replicate client runs voice/cosyvoice3 through the predictions API", func(t *testing.T) {
		before := len(app.Executions())
		input, _ := json.Marshal(map[string]any{"text": "今天天气真不错，我们去公园散步吧。", "prompt": prompt, // 17 characters: 1.7 s
			"prompt_text": "希望你以后能够做的比我还好呦。"})
		got := replicateAs(t, clients, g, alice, "run-audio", "voice/cosyvoice3", string(input))
		if got["status"] != float64(200) || got["seconds"] != 1.7 || !strings.HasPrefix(fmt.Sprint(got["output"]), g.URL+"/v1/results/") {
			t.Fatalf("run-audio printed %v; want a result link to 1.7 s of speech", got)
		}
		execs := app.Executions()
		if len(execs) != before+1 {
			t.Fatalf("the app ran %d calls, want %d", len(execs), before+1)
		}
		x := execs[len(execs)-1]
		upload, _ := x.Data[4].(map[string]any)
		if x.Data[1] != "3s极速复刻" || x.Data[3] != "希望你以后能够做的比我还好呦。" || !strings.HasSuffix(fmt.Sprint(upload["path"]), ".wav") ||
			x.Data[8] != false || x.Header.Get("X-User-ID") != aliceID {
			t.Errorf("the app got %v as %q; want the mode, the prompt's words, the prompt at position 4 and stream left false, as alice",
				x.Data, x.Header.Get("X-User-ID"))
		}
		rows := usageRows(t, g, admin, "model", 2)
		wantCharge(t, "job voice/cosyvoice3", rows["voice/cosyvoice3"], x, 1.7)
	})

	t.Run("a call through /call is charged the speech it returned too", func(t *testing.T) {
		upload := gradioUpload(t, g, bob, "/cosyvoice/")
		body, _ := json.Marshal(map[string]any{"data": []any{"你好，世界。", "跨语种复刻", "", "",
			map[string]any{"path": upload, "meta": map[string]any{"_type": "gradio.FileData"}}, nil, "", 0, false, 2}})
		resp, b := gradioDo(t, g, bob, "POST", "/cosyvoice/gradio_api/call/generate_audio", "application/json", body)
		var call struct {
			EventID string `json:"event_id"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &call) != nil || call.EventID == "" {
			t.Fatalf("POST call/generate_audio: %d %s", resp.StatusCode, b)
		}
		_, next := gradioOpen(t, g, bob, "/cosyvoice/gradio_api/call/generate_audio/"+call.EventID)
		for m := next(); m != nil; m = next() {
		}
		x := app.Executions()[len(app.Executions())-1]
		if x.Header.Get("X-User-ID") != userIDOfKey(t, g, bob) || x.AudioSecs != 0.3 { // 6 characters at speed 2
			t.Fatalf("the app ran %+v, want bob's call making 0.3 s", x)
		}
		r := usageRows(t, g, admin, "user", 3)[userIDOfKey(t, g, bob)]
		// A /call stream carries no duration: 0.005 + 0.3 s × 0.002.
		if r.Requests != 1 || r.OutputAudioSeconds != 0.3 || r.Cost != "0.005600" {
			t.Errorf("bob's usage %+v, want 1 call with 0.3 s of output audio costing 0.005600", r)
		}
	})

	t.Run("budgets are exact: a call or job that could exceed one never reaches the app", func(t *testing.T) {
		// A call reserves its worst case: 0.005 + 300 s × 0.001 + 120 s
		// of speech × 0.002 = 0.545.
		setBudget := func(amount tollgate.Money) {
			t.Helper()
			if resp, body := g.do("PUT", "/admin/v1/budgets/user/"+carolID, admin, `{"amount":"`+amount.String()+`","period":"month"}`); resp.StatusCode >= 300 {
				t.Fatalf("set carol's budget: %d %s", resp.StatusCode, body)
			}
		}
		upload := gradioUpload(t, g, carol, "/cosyvoice/")
		execs := len(app.Executions())
		setBudget(544_999)
		if st, b := webuiJoin(t, g, carol, "c1", "差一点", upload); st != 429 || !strings.Contains(string(b), "insufficient_quota") {
			t.Errorf("a call reserving 0.545 within a budget of 0.544999: %d %s, want 429 insufficient_quota", st, b)
		}
		setBudget(545_000)
		st, b := webuiJoin(t, g, carol, "c1", "刚刚好", upload, "X-User-ID", aliceID)
		if st != 200 {
			t.Fatalf("a call reserving 0.545 within a budget of 0.545: %d %s, want 200", st, b)
		}
		_, next := gradioOpen(t, g, carol, "/cosyvoice/gradio_api/queue/data?session_hash=c1")
		for m := next(); m != nil && m["msg"] != "process_completed"; m = next() {
		}
		ran := app.Executions()[execs:]
		if len(ran) != 1 || ran[0].Header.Get("X-User-ID") != carolID {
			t.Fatalf("the app ran %+v; want only carol's call within budget, as carol whatever X-User-ID she sent", ran)
		}
		spent := usageRows(t, g, admin, "user", 4)[carolID]
		cost, _ := tollgate.ParseMoney(spent.Cost)
		setBudget(cost + 544_999)
		wav := "data:audio/wav;base64," + base64.StdEncoding.EncodeToString(gradiotest.SineWAV(16000, 16000, 220))
		resp, body := g.do("POST", "/v1/models/voice/cosyvoice3/predictions", carol,
			`{"input":{"text":"再来一次","prompt":"`+wav+`","prompt_text":"希望你以后能够做的比我还好呦。"}}`)
		if resp.StatusCode != 429 || !strings.Contains(string(body), "insufficient_quota") {
			t.Errorf("a job reserving 0.545 with 0.544999 left: %d %s, want 429 insufficient_quota", resp.StatusCode, body)
		}
		if n := len(app.Executions()) - execs; n != 1 {
			t.Errorf("the app ran %d of carol's calls, want 1: refused ones never reach it", n)
		}
		setBudget(cost + 545_000)
		resp, body = g.do("POST", "/v1/models/voice/cosyvoice3/predictions", carol,
			`{"input":{"text":"再来一次","prompt":"`+wav+`","prompt_text":"希望你以后能够做的比我还好呦。"}}`)
		if resp.StatusCode != 201 {
			t.Errorf("a job reserving 0.545 with 0.545 left: %d %s, want 201", resp.StatusCode, body)
		}
	})
}
