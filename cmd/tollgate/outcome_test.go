package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/meter"
)

// exported returns the settled record of one request id as `tollgate
// export` prints it, waiting for its settlement.
func (g *testGateway) exported(id string) meter.EventData {
	g.t.Helper()
	var found *meter.EventData
	if !eventually(3*time.Second, func() bool {
		out, err := g.cli("export")
		if err != nil {
			g.t.Fatalf("export: %v\n%s", err, out)
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev meter.CloudEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.ID == id {
				found = &ev.Data
				return true
			}
		}
		return false
	}) {
		g.t.Fatalf("request %s: no settled record in the export", id)
	}
	return *found
}

// TestUpstreamErrorsAreNotCharged sends pictures to a colorize route whose
// upstream refuses some with 400 and fails others with 500: those calls
// are recorded upstream_error and cost nothing (GPU time the upstream
// reports still counts), while a route with charge_failures charges them.
func TestUpstreamErrorsAreNotCharged(t *testing.T) {
	up := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-GPU-Seconds", "2")
		switch r.Header.Get("X-Answer") {
		case "400":
			http.Error(w, `{"error":"not a photo"}`, http.StatusBadRequest)
		case "500":
			http.Error(w, `{"error":"worker crashed"}`, http.StatusInternalServerError)
		default:
			_, _ = w.Write([]byte(`{"ok":true}`))
		}
	})
	g := setup(t, `routes:
  - name: colorize
    path: /colorize
    upstreams: [`+up.URL+`]
    gpu_seconds_header: X-GPU-Seconds
    price: {per_request: "0.01", per_image: "0.02", per_gpu_second: "0.001"}
  - name: strict
    path: /strict
    upstreams: [`+up.URL+`]
    charge_failures: true
    price: {per_request: "0.01", per_image: "0.02"}
`)
	tok := g.login("admin", adminPassword).AccessToken
	var pic bytes.Buffer
	if err := png.Encode(&pic, image.NewGray(image.Rect(0, 0, 100, 100))); err != nil {
		t.Fatal(err)
	}
	upload := func(path, answer string) string {
		t.Helper()
		req, _ := http.NewRequest("POST", g.URL+path, bytes.NewReader(pic.Bytes()))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "image/png")
		req.Header.Set("X-Answer", answer)
		resp, body := send(t, req)
		if answer != "" && strconv.Itoa(resp.StatusCode) != answer || answer == "" && resp.StatusCode != 200 {
			t.Fatalf("POST %s answered %d %s", path, resp.StatusCode, body)
		}
		return resp.Header.Get("X-Request-ID")
	}
	for _, tc := range []struct {
		path, answer, outcome, cost string
	}{
		{"/colorize", "", "ok", "0.032000"},                // 0.01 + one image 0.02 + 2 GPU seconds 0.002
		{"/colorize", "400", "upstream_error", "0.002000"}, // only the GPU time the upstream reported
		{"/colorize", "500", "upstream_error", "0.002000"},
		{"/strict", "400", "upstream_error", "0.030000"}, // charge_failures: the full price
	} {
		rec := g.exported(upload(tc.path, tc.answer))
		if rec.Outcome != tc.outcome || rec.Cost != tc.cost {
			t.Errorf("%s answered %q: recorded outcome %s, cost %s; want %s, %s",
				tc.path, tc.answer, rec.Outcome, rec.Cost, tc.outcome, tc.cost)
		}
	}
}

// TestChunkedUploadBytesIn streams an upload without Content-Length
// through a route that does not read bodies: its record has the bytes
// sent, as one with Content-Length does.
func TestChunkedUploadBytesIn(t *testing.T) {
	var got int64
	up := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	g := setup(t, `routes:
  - name: files
    path: /files
    upstreams: [`+up.URL+`]
    price: {per_request: "0.001"}
`)
	tok := g.login("admin", adminPassword).AccessToken
	body := bytes.Repeat([]byte("tollgate "), 100_000) // 900 kB
	for _, chunked := range []bool{true, false} {
		var r io.Reader = bytes.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // hides the length: sent chunked
		}
		req, _ := http.NewRequest("POST", g.URL+"/files", r)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, b := send(t, req)
		if resp.StatusCode != 200 || got != int64(len(body)) {
			t.Fatalf("upload (chunked %v): %d %s; upstream got %d bytes", chunked, resp.StatusCode, b, got)
		}
		if rec := g.exported(resp.Header.Get("X-Request-ID")); rec.BytesIn != int64(len(body)) {
			t.Errorf("upload (chunked %v): recorded bytes_in %d, want %d", chunked, rec.BytesIn, len(body))
		}
	}
}

// TestInFlightOnOneNode holds a call at the upstream: the admin usage
// report and `tollgate usage` (another process's view of the store) show
// it in flight with its reservation, and as settled once it ends.
func TestInFlightOnOneNode(t *testing.T) {
	arrived := make(chan struct{}, 1)
	hold := make(chan struct{})
	up := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-hold
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	g := setup(t, `routes:
  - name: slow
    path: /slow
    upstreams: [`+up.URL+`]
    price: {per_request: "0.25"}
`)
	tok := g.login("admin", adminPassword).AccessToken
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("POST", g.URL+"/slow", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-arrived
	type total struct {
		Requests int64
		InFlight int64 `json:"in_flight"`
		Reserved string
	}
	var api, cli struct{ Total total }
	_, body := g.do("GET", "/admin/v1/usage", tok, "")
	if err := json.Unmarshal(body, &api); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(g.mustCLI("usage", "--format", "json")), &cli); err != nil {
		t.Fatal(err)
	}
	want := total{Requests: 0, InFlight: 1, Reserved: "0.250000"}
	if api.Total != want || cli.Total != want {
		t.Fatalf("while the call runs: admin API %+v, tollgate usage %+v; want %+v", api.Total, cli.Total, want)
	}
	close(hold)
	<-done
	if !eventually(3*time.Second, func() bool {
		cli.Total = total{}
		_ = json.Unmarshal([]byte(g.mustCLI("usage", "--format", "json")), &cli)
		return cli.Total == total{Requests: 1, InFlight: 0, Reserved: "0.000000"}
	}) {
		t.Fatalf("after the call: tollgate usage %+v; want it settled", cli.Total)
	}
}

// TestUpstreamErrorTokensCount: an OpenAI upstream that refuses a chat
// call with 400 but reports the prompt tokens it read has the call
// charged those tokens, not the per-request price.
func TestUpstreamErrorTokensCount(t *testing.T) {
	up := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"message":"context too long"},"usage":{"prompt_tokens":10,"completion_tokens":0}}`))
	})
	g := setup(t, `routes:
  - name: chat
    path: /v1/chat/completions
    type: openai
    upstreams: [`+up.URL+`]
    price: {per_request: "0.01", per_1k_input_tokens: "2"}
`)
	tok := g.login("admin", adminPassword).AccessToken
	resp, body := g.do("POST", "/v1/chat/completions", tok, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 400 {
		t.Fatalf("chat: %d %s", resp.StatusCode, body)
	}
	rec := g.exported(resp.Header.Get("X-Request-ID"))
	if rec.Outcome != "upstream_error" || rec.InputTokens != 10 || rec.Cost != "0.020000" {
		t.Fatalf("recorded outcome %s, %d input tokens, cost %s; want upstream_error, 10, 0.020000 (the tokens only)",
			rec.Outcome, rec.InputTokens, rec.Cost)
	}
}

// TestDemoColorizeRefusalIsFree sends the demo image endpoint something
// that is not a picture: it answers 400, and the call is recorded as the
// upstream's error at no charge.
func TestDemoColorizeRefusalIsFree(t *testing.T) {
	g := setupWith(t, "", true)
	tok := g.login("admin", adminPassword).AccessToken
	req, _ := http.NewRequest("POST", g.URL+"/demo/colorize", strings.NewReader("not an image"))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "image/png")
	resp, body := send(t, req)
	if resp.StatusCode != 400 {
		t.Fatalf("demo colorize: %d %s", resp.StatusCode, body)
	}
	if rec := g.exported(resp.Header.Get("X-Request-ID")); rec.Outcome != "upstream_error" || rec.Cost != "0.000000" || rec.Status != 400 {
		t.Fatalf("recorded outcome %s, status %d, cost %s; want upstream_error, 400, 0.000000", rec.Outcome, rec.Status, rec.Cost)
	}
}
