package tlsserve

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mholt/acmez/v3"
)

// TLSConfig is the server side of HTTPS: certificates from getCert,
// HTTP/2 and HTTP/1.1 by ALPN (and the ACME TLS-ALPN-01 protocol), TLS
// 1.2 at least.
func TLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		GetCertificate: getCert,
		NextProtos:     []string{"h2", "http/1.1", acmez.ACMETLS1Protocol},
		MinVersion:     tls.VersionTLS12,
	}
}

// HSTS sets Strict-Transport-Security on every answer to a request that
// came over TLS; a negative maxAge sends none.
func HSTS(next http.Handler, maxAge time.Duration) http.Handler {
	if maxAge < 0 {
		return next
	}
	value := "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", value)
		}
		next.ServeHTTP(w, r)
	})
}

// Redirect answers every plain-HTTP request with a permanent redirect
// (308, so the method is kept) to the same path on HTTPS: on publicURL
// when it is an https URL, else on the request's host at the port of
// listen (none for 443). A malformed Host gets 400.
func Redirect(publicURL, listen string) http.Handler {
	var base string
	if u, err := url.Parse(publicURL); err == nil && u.Scheme == "https" && u.Host != "" {
		base = "https://" + u.Host
	}
	port := ""
	if _, p, err := net.SplitHostPort(listen); err == nil && p != "443" && p != "" && p != "0" {
		port = ":" + p
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := base
		if target == "" {
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			if host == "" || strings.ContainsAny(host, "/\\@?#% ") {
				http.Error(w, "bad Host header", http.StatusBadRequest)
				return
			}
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
			target = "https://" + host + port
		}
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
