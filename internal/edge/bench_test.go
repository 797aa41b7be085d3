package edge_test

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/http"
	"testing"

	"github.com/tollgate/tollgate/internal/edge"
)

// BenchmarkServer: one keep-alive connection sending a plain request and
// reading a small JSON answer, through edge and through net/http. The
// client is a raw socket, so the allocations counted are the server's
// (and the handler's).
func BenchmarkServer(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	servers := map[string]func(net.Listener){
		"edge": func(ln net.Listener) {
			_ = edge.New(edge.Options{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}).Serve(ln)
		},
		"net-http": func(ln net.Listener) { _ = (&http.Server{Handler: h}).Serve(ln) },
	}
	req := []byte("GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer abc.def.ghi\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	for _, name := range []string{"edge", "net-http"} {
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go servers[name](ln)
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := readAnswer(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readAnswer reads one response with a Content-Length body, allocating
// nothing.
func readAnswer(br *bufio.Reader) error {
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		const cl = "Content-Length: "
		if len(line) > len(cl) && string(line[:len(cl)]) == cl {
			length = 0
			for _, c := range line[len(cl) : len(line)-2] {
				length = length*10 + int(c-'0')
			}
		}
	}
	_, err := br.Discard(length)
	return err
}
