package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/config"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tollgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a leaf certificate for localhost and 127.0.0.1, named cn,
// to certFile and keyFile (each replaced in one rename).
func (ca *testCA) issue(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func writeAtomic(t *testing.T, name string, data []byte) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// setupTLS starts a gateway on TLS, with a plain listener for
// listen_http; extraYAML holds its tls section. It returns the gateway
// (URL https://127.0.0.1:port) and the plain listener's address.
func setupTLS(t *testing.T, dir, extraYAML string) (*testGateway, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return setupTLSOn(t, dir, ln, pln, extraYAML)
}

// setupTLSOn is setupTLS on given listeners.
func setupTLSOn(t *testing.T, dir string, ln, pln net.Listener, extraYAML string) (*testGateway, string) {
	t.Helper()
	addr := ln.Addr().String()
	cfgPath := filepath.Join(dir, "tollgate.yaml")
	yaml := "listen: " + addr + "\nlisten_http: " + pln.Addr().String() + "\ndata_dir: " + filepath.Join(dir, "data") +
		"\nprotection: {login_rate_limit: 1000/m, ip_rate_limit: 1000/s}\n" + extraYAML
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g := &testGateway{URL: "https://" + addr, Config: cfgPath, t: t, stderr: &syncBuffer{}, stopped: make(chan struct{}),
		env: map[string]string{"TOLLGATE_ADMIN_PASSWORD": adminPassword}}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	penv := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: g.stderr, Getenv: g.getenv}
	gw, err := newGateway(ctx, cfg, gatewayOptions{Env: penv, Logger: slog.New(slog.NewJSONHandler(g.stderr, nil)), Listener: ln, HTTPListener: pln})
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	go func() {
		defer close(g.stopped)
		defer gw.Close()
		if err := gw.Serve(ctx); err != nil {
			t.Errorf("serve: %v\n%s", err, g.stderr.String())
		}
	}()
	t.Cleanup(g.stop)
	return g, pln.Addr().String()
}

// servedCert connects anew and returns the certificate the server shows.
func servedCert(t *testing.T, addr string, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// TestHTTPSCertFiles serves HTTPS from certificate files: HTTP/2 is
// negotiated, answers carry HSTS, the session cookie is Secure, the plain
// listener redirects to HTTPS, and a certificate written over the files
// is served from the next connection on.
func TestHTTPSCertFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issue(t, "first", certFile, keyFile)
	g, plain := setupTLS(t, dir, "tls: {cert_file: "+certFile+", key_file: "+keyFile+"}\n")
	g.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	addr := strings.TrimPrefix(g.URL, "https://")
	tlsConf := &tls.Config{RootCAs: ca.pool}

	t.Run("HTTP/2 and HSTS", func(t *testing.T) {
		b := newBrowser(t, g.URL, tlsConf)
		resp, _ := b.do("GET", "/healthz", nil, nil)
		if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
			t.Fatalf("GET /healthz: %d over %s, want 200 over HTTP/2.0", resp.StatusCode, resp.Proto)
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("Strict-Transport-Security = %q", got)
		}
		var only1 http.Protocols
		only1.SetHTTP1(true)
		h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, Protocols: &only1}}
		r1, err := h1.Get(g.URL + "/healthz")
		if err != nil {
			t.Fatal(err, g.stderr.String())
		}
		r1.Body.Close()
		if r1.Proto != "HTTP/1.1" || r1.StatusCode != 200 {
			t.Errorf("HTTP/1.1 client: %d over %s", r1.StatusCode, r1.Proto)
		}
	})
	t.Run("Secure session cookie", func(t *testing.T) {
		b := newBrowser(t, g.URL, tlsConf)
		resp, _ := b.loginForm("ana", "ana-password")
		sc := setCookie(resp, "tollgate_session")
		if resp.StatusCode != http.StatusSeeOther || sc == nil || !sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode {
			t.Fatalf("login over HTTPS: %d, cookie %+v; want Secure, HttpOnly, SameSite=Lax", resp.StatusCode, sc)
		}
		if resp, page := b.do("GET", "/ui/", nil, nil); resp.StatusCode != 200 || !strings.Contains(page, ">ana<") {
			t.Fatalf("/ui/ over HTTPS: %d", resp.StatusCode)
		}
	})
	t.Run("plain HTTP redirects", func(t *testing.T) {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Post("http://"+plain+"/v1/me?x=1", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != g.URL+"/v1/me?x=1" {
			t.Fatalf("plain HTTP: %d Location %q, want 308 to %s/v1/me?x=1", resp.StatusCode, resp.Header.Get("Location"), g.URL)
		}
	})
	t.Run("reload on change", func(t *testing.T) {
		if cn := servedCert(t, addr, ca.pool).Subject.CommonName; cn != "first" {
			t.Fatalf("serves %q, want first", cn)
		}
		ca.issue(t, "second", certFile, keyFile)
		if cn := servedCert(t, addr, ca.pool).Subject.CommonName; cn != "second" {
			t.Fatalf("after writing a new certificate: serves %q, want second", cn)
		}
		// A broken pair leaves the last good certificate in service.
		writeAtomic(t, keyFile, []byte("not a key"))
		if cn := servedCert(t, addr, ca.pool).Subject.CommonName; cn != "second" {
			t.Fatalf("after breaking the key file: serves %q, want second", cn)
		}
		ca.issue(t, "third", certFile, keyFile)
		if cn := servedCert(t, addr, ca.pool).Subject.CommonName; cn != "third" {
			t.Fatalf("after repairing the files: serves %q, want third", cn)
		}
	})
}
