package gradiotest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/gradiotest"
)

// BenchmarkQueueCall is the app's own cost of one /generate_audio call
// through queue/join and queue/data, the baseline a proxy adds to.
func BenchmarkQueueCall(b *testing.B) {
	srv := gradiotest.New(b, gradiotest.Options{})
	var body bytes.Buffer
	prompt := func() string {
		var m bytes.Buffer
		w := multipartWAV(&m)
		resp, err := http.Post(srv.URL+"/gradio_api/upload", w, &m)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var paths []string
		json.NewDecoder(resp.Body).Decode(&paths)
		return paths[0]
	}()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		session := fmt.Sprintf("bench-%d", i)
		body.Reset()
		json.NewEncoder(&body).Encode(map[string]any{
			"data": []any{"Benchmark text", fileData(prompt), "zero-shot", 1.0}, "fn_index": 0, "session_hash": session,
		})
		resp, err := http.Post(srv.URL+"/gradio_api/queue/join", "application/json", &body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("join: %v %v", resp, err)
		}
		resp.Body.Close()
		resp, err = http.Get(srv.URL + "/gradio_api/queue/data?session_hash=" + session)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		closed := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"msg":"close_stream"`) {
				closed = true
				break
			}
		}
		resp.Body.Close()
		if !closed {
			b.Fatal("the stream ended without close_stream")
		}
	}
}
