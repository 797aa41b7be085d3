// Command upstream is the benchmark's stand-in inference server: it answers
// every request with the same small JSON body over keep-alive connections,
// on a loopback address only, so the figures measure the gateway and not
// the backend. A POST to a path ending in /chat/completions is answered
// as an OpenAI-compatible server answers a chat completion: a reply whose
// usage counts the request body's bytes, a token for every four, as its
// prompt tokens.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// body is what every request gets: the size of a short chat completion.
const body = `{"id":"bench-1","object":"chat.completion","model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

func main() {
	port := flag.Int("port", 0, "TCP port to listen on, on 127.0.0.1 (0 picks a free one and prints it)")
	flag.Parse()
	if err := run(*port); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func run(port int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	length := strconv.Itoa(len(body))
	payload := []byte(body)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/echo-identity") {
			echoIdentity(w, r)
			return
		}
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions") {
			chatCompletion(w, r)
			return
		}
		// Drain whatever body was sent so the connection stays reusable.
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		hd := w.Header()
		hd["Content-Type"] = []string{"application/json"}
		hd["Content-Length"] = []string{length}
		_, _ = w.Write(payload)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// chatReply is a chat completion's answer before its usage: a reply of
// completionTokens tokens, about four bytes each.
const (
	chatReply        = `{"id":"chatcmpl-bench","object":"chat.completion","created":1764547200,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"The gateway measured this answer: its usage names the tokens."},"finish_reason":"stop"}],"usage":{"prompt_tokens":`
	completionTokens = 16
)

// chatCompletion answers a chat completion with a usage object: the
// request's bytes over four as prompt tokens, completionTokens as
// completion tokens.
func chatCompletion(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	prompt := max((n+3)/4, 1)
	b := make([]byte, 0, len(chatReply)+80)
	b = append(b, chatReply...)
	b = strconv.AppendInt(b, prompt, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, completionTokens, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, prompt+completionTokens, 10)
	b = append(b, "}}"...)
	hd := w.Header()
	hd["Content-Type"] = []string{"application/json"}
	hd["Content-Length"] = []string{strconv.Itoa(len(b))}
	_, _ = w.Write(b)
}

// echoIdentity shows what a gateway forwarded, for run.sh's sanity check.
func echoIdentity(w http.ResponseWriter, r *http.Request) {
	seen := map[string]string{}
	for _, k := range []string{"X-User-Id", "X-Tenant-Id", "X-User-Role", "X-User-Scopes", "X-User-Plan", "X-Request-Id", "X-Forwarded-For", "Authorization"} {
		seen[k] = r.Header.Get(k)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(seen)
}
