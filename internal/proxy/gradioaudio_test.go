package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/gradiotest"
	"github.com/tollgate/tollgate/internal/media"
	"github.com/tollgate/tollgate/internal/media/mediatest"
	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestGradioOutputAudioIsMeasuredOnlyFromFileRoutes: a call on a gradio
// route priced per second of output audio returns three FileData. One
// path has ".." segments that, cleaned, would name another route of the
// app: tollgate never requests it. One file the app sends whole, ignoring
// the range, with a 200 MiB Content-Length: tollgate reads its header, not
// the 200 MiB. One it serves with ranges. An Ogg file it sends whole is
// read through for its last page. The call is charged 2 s + 1 s + 3 s,
// also when the app is served under the route's path (strip_prefix off),
// and the app, which checks the route's internal token on every request,
// gets it on the file requests too.
func TestGradioOutputAudioIsMeasuredOnlyFromFileRoutes(t *testing.T) {
	t.Run("prefix stripped", func(t *testing.T) { testGradioOutputAudio(t, true) })
	t.Run("app under the route's path", func(t *testing.T) { testGradioOutputAudio(t, false) })
}

func testGradioOutputAudio(t *testing.T, strip bool) {
	at := "/tts" // where the app serves its routes
	if strip {
		at = ""
	}
	const huge = 200 << 20
	big := gradiotest.SineWAV(16000, 32000, 220) // 2 s
	small := gradiotest.SineWAV(16000, 16000, 220)
	// 3 s of Opus, its last page past the first HeadSize bytes
	opus := append(append(mediatest.Opus(1000), make([]byte, media.HeadSize)...), mediatest.OggPage(7, 9, 48000*3+312, 4, []byte("x"))...)
	var mu sync.Mutex
	var paths []string
	var bigSent atomic.Int64
	bigDone := make(chan struct{}, 1)
	up := newUpstream(t, "app", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.Header.Get("X-Tollgate-Token") != "internal-alice" {
			http.Error(w, "no internal token", http.StatusUnauthorized)
			return
		}
		switch strings.TrimPrefix(r.URL.Path, at) {
		case "/gradio_api/run/predict":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"data":[{"path":"../../admin/reset"},{"path":"/tmp/big.wav"},{"path":"/tmp/small.wav"},{"path":"/tmp/long.opus"}]}`)
		case "/gradio_api/file=/tmp/big.wav": // no ranges, and far more than its header says
			w.Header().Set("Content-Length", fmt.Sprint(huge))
			n, _ := io.Copy(w, io.MultiReader(bytes.NewReader(big), io.LimitReader(zeros{}, huge-int64(len(big)))))
			bigSent.Store(n)
			bigDone <- struct{}{}
		case "/gradio_api/file=/tmp/long.opus": // no ranges: its length is in its last page
			w.Header().Set("Content-Length", fmt.Sprint(len(opus)))
			_, _ = w.Write(opus)
		case "/gradio_api/file=/tmp/small.wav":
			http.ServeContent(w, r, "small.wav", time.Time{}, bytes.NewReader(small))
		default:
			http.NotFound(w, r)
		}
	})
	adm := newAdmission("meter", nil)
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: tts, path: /tts/, type: gradio, upstreams: [%s], strip_prefix: %v, internal_token: true, timeout: 1m, price: {per_output_audio_second: "0.001"}}
`, up.URL, strip), proxy.Options{Admissions: []tollgate.Admission{adm},
		InternalToken: func(_ context.Context, p *tollgate.Principal, _ string) (string, error) {
			return "internal-" + p.UserID, nil
		}})

	res := do(t, "POST", g.URL+"/tts/gradio_api/run/predict", "tok-alice", strings.NewReader(`{"data":["hello"]}`), "Content-Type", "application/json")
	wantStatus(t, res, http.StatusOK)
	readAll(t, res.Body)
	var out tollgate.Outcome
	select {
	case out = <-adm.released:
	case <-t.Context().Done():
		t.Fatal("the call was never settled")
	}
	if out.Units.OutputAudioMillis != 6000 {
		t.Fatalf("output audio %d ms, want 6000 (2 s + 1 s + 3 s)", out.Units.OutputAudioMillis)
	}
	select {
	case <-bigDone: // the app's handler ended: the gateway closed the file's connection
	case <-t.Context().Done():
		t.Fatal("the gateway never let go of the file sent whole")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range paths {
		if !strings.HasPrefix(p, at+"/gradio_api/file=/tmp/") && p != at+"/gradio_api/run/predict" {
			t.Errorf("the app was asked for %s", p)
		}
	}
	if n := bigSent.Load(); n > 32<<20 {
		t.Errorf("the app sent %d bytes of a file whose header suffices", n)
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
