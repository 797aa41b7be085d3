package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/internal/h1"
)

// writeRequest writes req as http.Request.Write does for the requests the
// direct path takes (no trailers or transfer codings, no body or a body of
// known length), and then closes its body. Unlike Request.Write it does
// not sort the headers first: their order carries no meaning, and sorting
// was a tenth of the cost of forwarding a request.
func writeRequest(w *bufio.Writer, req *http.Request) (err error) {
	if req.Body != nil {
		defer func() {
			if cerr := req.Body.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" || strings.ContainsAny(host, " \r\n") {
		return fmt.Errorf("write request: invalid host %q", host)
	}
	uri := req.URL.RequestURI()
	if strings.ContainsAny(uri, " \r\n") || strings.ContainsAny(req.Method, " \r\n") {
		return errors.New("write request: invalid method or path")
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if ua, ok := req.Header["User-Agent"]; !ok {
		w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	} else if len(ua) > 0 && ua[0] != "" {
		h1.WriteField(w, "User-Agent", ua[0])
	}
	hasBody := req.Body != nil && req.Body != http.NoBody && req.ContentLength > 0
	switch {
	case hasBody:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	if req.Close && !hasToken(req.Header["Connection"], "close") {
		w.WriteString("Connection: close\r\n")
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vs {
			h1.WriteField(w, k, v)
		}
	}
	w.WriteString("\r\n")
	if !hasBody {
		return nil
	}
	n, err := io.Copy(w, io.LimitReader(req.Body, req.ContentLength))
	if err != nil {
		return fmt.Errorf("write request body: %w", err)
	}
	if n != req.ContentLength {
		return fmt.Errorf("write request body: %d of its %d bytes", n, req.ContentLength)
	}
	return nil
}

// hasToken reports whether one of the comma-separated values vs holds
// token, compared case-insensitively.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		if h1.HasToken(v, token) {
			return true
		}
	}
	return false
}
