package proxy_test

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tollgate/tollgate/internal/proxy"
)

func TestWebsocket(t *testing.T) {
	user := make(chan string, 1)
	echo := newUpstream(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		user <- r.Header.Get("X-User-Id")
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: gradio, path: /gradio/, upstreams: [%s], strip_prefix: true, timeout: 50ms}
`, echo.URL), proxy.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.URL, "http")+"/gradio/queue/join", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer tok-alice"}, "X-User-Id": {"mallory"}},
	})
	if err != nil {
		t.Fatalf("dial through the gateway: %v", err)
	}
	defer c.CloseNow()
	if got := <-user; got != "alice" {
		t.Errorf("upstream saw X-User-ID %q", got)
	}
	if p := echo.last(t).Path; p != "/queue/join" {
		t.Errorf("upstream path %q, want the prefix stripped", p)
	}
	for i := range 3 {
		if i == 1 {
			time.Sleep(100 * time.Millisecond) // past the route timeout, which does not bound upgraded connections
		}
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+msg {
			t.Errorf("got %q", got)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestUploadIsStreamed(t *testing.T) {
	firstPart := make(chan string, 1)
	done := make(chan string, 1)
	ocr := newUpstream(t, "ocr", func(w http.ResponseWriter, r *http.Request) {
		mr, err := r.MultipartReader()
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var names []string
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(part)
			if len(names) == 0 {
				firstPart <- string(b)
			}
			names = append(names, part.FormName())
		}
		done <- strings.Join(names, ",")
		fmt.Fprint(w, "ok")
	})
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: ocr, path: /ocr, upstreams: [%s], methods: [POST]}
`, ocr.URL), proxy.Options{})

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	req, _ := http.NewRequest("POST", g.URL+"/ocr", pr)
	req.Header.Set("Authorization", "Bearer tok-alice")
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resc := make(chan *http.Response, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(resc)
			return
		}
		resc <- res
	}()
	fw, _ := mw.CreateFormField("page1")
	io.WriteString(fw, "first page")
	fw, _ = mw.CreateFormField("page2") // flushes the first part's end
	// The upstream reads the first part while the client is still sending.
	select {
	case got := <-firstPart:
		if got != "first page" {
			t.Errorf("first part %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upload is buffered: the upstream got nothing before the client finished")
	}
	io.WriteString(fw, "second page")
	mw.Close()
	pw.Close()
	res := <-resc
	if res == nil {
		return
	}
	defer res.Body.Close()
	wantStatus(t, res, 200)
	if got := <-done; got != "page1,page2" {
		t.Errorf("upstream parts %q", got)
	}
}
