package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pebbleVersion is the ACME test CA the test builds from the module proxy.
const pebbleVersion = "github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3"

// buildPebble builds pebble into a temporary folder. Without a go command
// or when the build fails (no module proxy) the test is skipped; under
// CI=true, where the proxy is reachable, that is a failure.
func buildPebble(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err == nil {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, "install", pebbleVersion)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "GOWORK=off")
		out, berr := cmd.CombinedOutput()
		if berr == nil {
			return filepath.Join(dir, "pebble")
		}
		err = &buildError{berr, string(out)}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI=true and pebble cannot be built: %v", err)
	}
	t.Skipf("skipping: cannot build pebble (%s): %v", pebbleVersion, err)
	return ""
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPebble runs pebble with its own HTTPS certificate signed by ca and
// its validation ports pointed at the gateway's listeners; it returns the
// ACME directory URL and the pool holding the root pebble issues under.
func startPebble(t *testing.T, bin string, ca *testCA, httpPort, tlsPort int) (string, func() *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issue(t, "pebble", certFile, keyFile)
	listen, mgmt := freePort(t), freePort(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress": "127.0.0.1:" + strconv.Itoa(listen), "managementListenAddress": "127.0.0.1:" + strconv.Itoa(mgmt),
		"certificate": certFile, "privateKey": keyFile, "httpPort": httpPort, "tlsPort": tlsPort,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(conf)
	confFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-config", confFile)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() || os.Getenv("PEBBLE_LOG") != "" {
			t.Logf("pebble output:\n%s", out.String())
		}
	})
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	dirURL := "https://127.0.0.1:" + strconv.Itoa(listen) + "/dir"
	if !eventually(30*time.Second, func() bool {
		resp, err := client.Get(dirURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}) {
		t.Fatalf("pebble did not answer:\n%s", out.String())
	}
	roots := func() *x509.CertPool {
		resp, err := client.Get("https://127.0.0.1:" + strconv.Itoa(mgmt) + "/roots/0")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		pem, _ := io.ReadAll(resp.Body)
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("pebble root: %s", pem)
		}
		return pool
	}
	return dirURL, roots
}

// TestACMEWithPebble obtains the gateway's certificate from pebble, a
// real ACME CA run by the test, whose own HTTPS endpoint is signed by a
// private root (tls.acme.ca_root). Pebble validates on the gateway's own
// listeners, once with only HTTP-01 able to pass (on listen_http; the
// TLS-ALPN-01 port leads nowhere) and once with only TLS-ALPN-01 (on
// listen); then the gateway serves the issued certificate over HTTP/2
// and keeps it under data_dir.
func TestACMEWithPebble(t *testing.T) {
	bin := buildPebble(t)
	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) { testACME(t, bin, challenge) })
	}
}

func testACME(t *testing.T, bin, challenge string) {
	ca := newTestCA(t)
	dir := t.TempDir()
	caRoot := filepath.Join(dir, "ca-root.pem")
	if err := os.WriteFile(caRoot, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	// The gateway's ports are chosen first, so pebble can validate on them.
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpPort, tlsPort := plainLn.Addr().(*net.TCPAddr).Port, tlsLn.Addr().(*net.TCPAddr).Port
	if challenge == "http-01" {
		tlsPort = freePort(t)
	} else {
		httpPort = freePort(t)
	}
	dirURL, roots := startPebble(t, bin, ca, httpPort, tlsPort)
	g, _ := setupTLSOn(t, dir, tlsLn, plainLn, "tls: {acme: {domains: [localhost], email: ops@example.com, ca: "+dirURL+", ca_root: "+caRoot+"}}\n")
	addr := strings.TrimPrefix(g.URL, "https://")

	pool := roots()
	var served *x509.Certificate
	if !eventually(90*time.Second, func() bool {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			return false
		}
		defer conn.Close()
		served = conn.ConnectionState().PeerCertificates[0]
		return true
	}) {
		t.Fatalf("no certificate from pebble within 90 s\n%s", g.stderr.String())
	}
	if len(served.DNSNames) != 1 || served.DNSNames[0] != "localhost" {
		t.Errorf("served certificate names %v", served.DNSNames)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}, ForceAttemptHTTP2: true}}
	resp, err := c.Get(g.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("GET /healthz with the ACME certificate: %d over %s, HSTS %q", resp.StatusCode, resp.Proto, resp.Header.Get("Strict-Transport-Security"))
	}
	var stored []string
	_ = filepath.WalkDir(filepath.Join(dir, "data", "certificates"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".crt") {
			stored = append(stored, p)
		}
		return nil
	})
	if len(stored) == 0 {
		t.Error("no certificate stored under data_dir/certificates")
	}
}

// TestClusterACME runs two replicas sharing PostgreSQL with ACME on: the
// certificate pebble issues is kept in the store, and both replicas serve
// the same one (one obtained it, under the store's lock; the other loaded
// it), whichever of them the CA's validation reached.
func TestClusterACME(t *testing.T) {
	yaml := clusterYAML(t, "")
	bin := buildPebble(t)
	ca := newTestCA(t)
	caRoot := filepath.Join(t.TempDir(), "ca-root.pem")
	if err := os.WriteFile(caRoot, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	aTLS, aPlain, bTLS, bPlain := listen(), listen(), listen(), listen()
	dirURL, roots := startPebble(t, bin, ca, aPlain.Addr().(*net.TCPAddr).Port, aTLS.Addr().(*net.TCPAddr).Port)
	acme := "tls: {acme: {domains: [localhost], ca: " + dirURL + ", ca_root: " + caRoot + "}}\n"
	a, _ := setupTLSOn(t, t.TempDir(), aTLS, aPlain, yaml+acme)
	b, _ := setupTLSOn(t, t.TempDir(), bTLS, bPlain, yaml+acme)
	pool := roots()
	serial := func(g *testGateway) string {
		var s string
		if !eventually(90*time.Second, func() bool {
			conn, err := tls.Dial("tcp", strings.TrimPrefix(g.URL, "https://"), &tls.Config{RootCAs: pool, ServerName: "localhost"})
			if err != nil {
				return false
			}
			defer conn.Close()
			s = conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
			return true
		}) {
			t.Fatalf("%s: no certificate from pebble within 90 s\n%s", g.URL, g.stderr.String())
		}
		return s
	}
	if sa, sb := serial(a), serial(b); sa != sb {
		t.Fatalf("replicas serve different certificates (serials %s and %s): the store was not shared", sa, sb)
	}
}
