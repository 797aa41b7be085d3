package proxy_test

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/proxy"
	upstreamtr "github.com/tollgate/tollgate/internal/upstream"
)

// The framing test runs every row of the upstream-side framing cases
// (U1–U7) and the request-side cases that reach the forwarding path (C1,
// C5, C6) through the gateway: a raw-socket upstream misbehaves on the
// requests of an anonymous caller while three users of different
// identities call at once on the same pooled upstream connections, and
// every user's answer must name the user's own path and identity. The same
// rows run through net/http (httputil.ReverseProxy and http.Transport)
// beside tollgate's own transport, and through tollgate's transport again
// with every call uploading a body larger than the transport writes
// before it reads (and one of unknown length, sent chunked), and with the
// upstream behind TLS.

// poison is a whole response no request asked for. A client that reads
// it as the answer to its request has been given bytes of another's.
const poison = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poison: 1\r\n\r\nPOISONED"

// hiddenRequest is a request hidden in a GET body; an upstream that
// ignores GET bodies runs it with the identity it claims.
const hiddenRequest = "GET /echo/hidden HTTP/1.1\r\nHost: upstream\r\nX-User-ID: admin\r\n\r\n"

// framingRow is one misbehaviour of the upstream, answered to the trigger
// request of the anonymous caller.
type framingRow struct {
	name   string
	method string // of the trigger; GET when empty
	path   string // of the trigger, on the gateway
	body   string // of the trigger
	// answer writes the upstream's answer to the trigger on ec. It
	// returns false when the upstream then closes the connection.
	answer func(e *emulator, ec *emuConn, req *http.Request) bool
	// delay: a correct answer, then poison once the round of calls has
	// ended and the connection has been idle (no request from the
	// gateway) this long.
	delay time.Duration
	// want checks the trigger caller's answer; "" when it is fine.
	want func(impl string, a answer) string
	// raw: the trigger is these bytes sent on a raw connection to the
	// gateway (request-side rows), instead of a request to path.
	raw string
	// hiddenRuns: the row makes the upstream run hiddenRequest; its
	// answer must still reach no caller.
	hiddenRuns bool
	// refused: the gateway refuses the trigger; the upstream never sees it.
	refused bool
	// behind: the misbehaving bytes are already behind the answer when the
	// gateway reads it (written with it, in one write).
	behind bool
}

// answer is what a caller got.
type answer struct {
	status int
	body   string
	err    error
}

func (a answer) String() string {
	if a.err != nil && a.status == 0 {
		return fmt.Sprintf("error %v", a.err)
	}
	return fmt.Sprintf("%d %q (read error %v)", a.status, a.body, a.err)
}

// write returns an answer function that writes raw and keeps (or closes)
// the connection.
func write(raw string, keep bool) func(*emulator, *emuConn, *http.Request) bool {
	return func(e *emulator, ec *emuConn, _ *http.Request) bool {
		ec.bw.WriteString(raw)
		e.poisoned(ec)
		e.fire()
		return keep
	}
}

// withBody is a head of code with the Content-Length of body, then body.
func withBody(code int, body string) string {
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n%s", code, http.StatusText(code), len(body), body)
}

// trigAnswer is a well-formed answer; what follows it is the row's.
const trigAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntrig"

// ignoreBody answers the trigger well and leaves its body in the
// connection, as an upstream that ignores GET bodies does: the serve loop
// then reads the body as the next request.
func ignoreBody(_ *emulator, ec *emuConn, _ *http.Request) bool {
	ec.bw.WriteString(trigAnswer)
	return true
}

func wantStatusOf(code int) func(string, answer) string {
	return func(_ string, a answer) string {
		if a.status != code {
			return fmt.Sprintf("want %d", code)
		}
		return ""
	}
}

// want502 is the answer to a malformed head: 502 through tollgate's
// transport; net/http reads some of these heads leniently (bare LF,
// CL with TE), which is fine as long as its connection is not reused.
func want502(impl string, a answer) string {
	if impl == "tollgate" && a.status != http.StatusBadGateway {
		return "want 502"
	}
	return ""
}

// wantAborted: the caller sees the answer cut short.
func wantAborted(_ string, a answer) string {
	if a.status == http.StatusOK && a.err == nil {
		return "want an aborted answer"
	}
	return ""
}

func framingRows() []framingRow {
	return []framingRow{
		{name: "U1 Content-Length shorter than the body", path: "/pub/u1",
			answer: write(trigAnswer+poison, true), behind: true, want: wantStatusOf(200)},
		{name: "U2 unsolicited response at once", path: "/pub/u2",
			answer: write(trigAnswer+poison, true), behind: true, want: wantStatusOf(200)},
		{name: "U2 unsolicited response 30ms later", path: "/pub/u2", delay: 30 * time.Millisecond, want: wantStatusOf(200)},
		{name: "U2 unsolicited response 1s later", path: "/pub/u2", delay: time.Second, want: wantStatusOf(200)},
		{name: "U3 204 with Content-Length", path: "/pub/u3",
			answer: write(withBody(204, poison), true), behind: true, want: wantStatusOf(204)},
		{name: "U3 204 with Transfer-Encoding", path: "/pub/u3",
			answer: write("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"+poison, true), behind: true, want: wantStatusOf(204)},
		{name: "U3 304 with a body", path: "/pub/u3",
			answer: write(withBody(304, poison), true), behind: true, want: wantStatusOf(304)},
		{name: "U3 body on a HEAD answer", method: "HEAD", path: "/pub/u3",
			answer: write(withBody(200, poison), true), behind: true, want: wantStatusOf(200)},
		{name: "U4 101 to a request that asked for no upgrade", path: "/pub/u4", answer: switchProtocols,
			want: wantStatusOf(http.StatusBadGateway)},
		{name: "U5 Content-Length and Transfer-Encoding", path: "/pub/u5",
			answer: write(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s", 5+len(poison), poison), true), behind: true, want: want502},
		{name: "U5 duplicate Content-Length", path: "/pub/u5",
			answer: write(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: %d\r\n\r\ntrig%s", 4+len(poison), poison), true), behind: true, want: want502},
		{name: "U5 bare LF", path: "/pub/u5",
			answer: write("HTTP/1.1 200 OK\nContent-Length: 4\n\ntrig"+poison, true), behind: true, want: want502},
		{name: "U5 NUL in the head", path: "/pub/u5",
			answer: write("HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 4\r\n\r\ntrig"+poison, true), behind: true, want: want502},
		{name: "U5 obs-fold in the head", path: "/pub/u5",
			answer: write("HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 4\r\n\r\ntrig"+poison, true), behind: true, want: want502},
		{name: "U6 close mid-body", path: "/pub/u6",
			answer: write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", false), want: wantAborted},
		{name: "U6 close-delimited body", path: "/pub/u6",
			answer: write("HTTP/1.1 200 OK\r\n\r\ntrig"+poison, false), want: wantStatusOf(200)},
		{name: "U6 a body that never ends", path: "/hang/u6", answer: neverEnds, want: wantAborted},
		{name: "U7 GET body the upstream ignores, route allows GET bodies", path: "/lax/u7", body: hiddenRequest,
			answer: ignoreBody, behind: true, want: wantStatusOf(200), hiddenRuns: true},
		{name: "U7 GET body on a route that refuses them", path: "/pub/u7", body: hiddenRequest,
			answer: ignoreBody, want: wantStatusOf(http.StatusBadRequest), refused: true},
		{name: "C1 CL.TE smuggled request", raw: "POST /pub/c1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"0\r\n\r\n" + hiddenRequest, want: wantNoHidden},
		{name: "C6 pipelined request without a token", raw: "GET /pub/c6 HTTP/1.1\r\nHost: gw\r\n\r\n" + hiddenRequest, want: wantNoHidden},
		{name: "C6 POST body hiding a request", raw: fmt.Sprintf("POST /pub/c6 HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n%s",
			len(hiddenRequest), hiddenRequest), want: wantNoHidden},
	}
}

// wantNoHidden: a request hidden behind the trigger is refused on its own
// (no token) and never answered as the hidden request.
func wantNoHidden(_ string, a answer) string {
	switch {
	case a.status == 0:
		return "the gateway did not answer"
	case strings.Contains(a.body, "/echo/hidden"):
		return "the hidden request was answered"
	}
	return ""
}

// switchProtocols answers 101 and then talks another protocol: whatever
// arrives next is answered with poison.
func switchProtocols(e *emulator, ec *emuConn, _ *http.Request) bool {
	ec.bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x-other\r\n\r\n")
	_ = ec.bw.Flush()
	e.poisoned(ec)
	e.fire()
	buf := make([]byte, 4096)
	for {
		if _, err := ec.br.Read(buf); err != nil {
			e.ended(ec)
			return false
		}
		e.reused(ec)
		ec.bw.WriteString(poison)
		_ = ec.bw.Flush()
	}
}

// neverEnds sends part of a body and then nothing, until the gateway
// gives up on the connection.
func neverEnds(e *emulator, ec *emuConn, _ *http.Request) bool {
	ec.bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
	_ = ec.bw.Flush()
	e.poisoned(ec)
	e.fire()
	_, _ = io.Copy(io.Discard, ec.br)
	e.ended(ec)
	return false
}

// framingImpl is one way of forwarding: tollgate's own transport, or
// net/http's.
type framingImpl struct {
	name string
	opts func() proxy.Options
	// settle: before users use the pool again after an unsolicited
	// answer, wait until the gateway closed the connection it came on.
	// net/http notices such bytes on its connection's read goroutine, at
	// a moment of its own; tollgate's transport when it takes the
	// connection from the pool, so it needs no wait.
	settle bool
	// poolsFirst: the connection goes back to the pool before the bytes
	// behind an answer are looked at. net/http's read loop does so ("so
	// if they process it quickly and make another request, they'll get
	// this same conn"), and a request that takes the connection in that
	// moment is answered with those bytes. On the rows with bytes behind
	// the answer, net/http's wrong answers are reported, not failed on.
	poolsFirst bool
	// upload: every user call, and every trigger that is a plain GET, is
	// a POST with this body ("" for none): bigBody or chunkedBody.
	upload string
	// tls: the upstream speaks TLS with this certificate, which the
	// gateway trusts.
	tls *tls.Config
	// requests per row; framingRequestsPerRow when 0.
	requests int
}

// The upload kinds of framingImpl.upload.
const (
	bigBody     = "large body" // of known length, above upstream.MaxDirectBody
	chunkedBody = "chunked upload"
)

// uploadSize is the size of every upload: larger than the transport
// writes before it reads the answer.
const uploadSize = upstreamtr.MaxDirectBody + 2<<10

func framingImpls(t *testing.T) []framingImpl {
	serverTLS, roots := testCertificate(t)
	own := func() proxy.Options { return proxy.Options{} }
	return []framingImpl{
		{name: "tollgate", opts: own},
		{name: "net-http", settle: true, poolsFirst: true, opts: func() proxy.Options {
			return proxy.Options{Transport: viaTransport{&http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}}
		}},
		{name: "tollgate " + bigBody, opts: own, upload: bigBody, requests: 300},
		{name: "tollgate " + chunkedBody, opts: own, upload: chunkedBody, requests: 300},
		{name: "tollgate TLS upstream", tls: serverTLS, requests: 300, opts: func() proxy.Options {
			return proxy.Options{UpstreamTLS: &tls.Config{RootCAs: roots}}
		}},
	}
}

// testCertificate is a self-signed certificate for 127.0.0.1, as a
// server's TLS configuration and as the roots a client trusts it by.
func testCertificate(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	s := httptest.NewUnstartedServer(http.NotFoundHandler())
	s.StartTLS()
	defer s.Close()
	roots := x509.NewCertPool()
	roots.AddCert(s.Certificate())
	return &tls.Config{Certificates: s.TLS.Certificates}, roots
}

// takes reports whether impl runs row: the upload runs carry bodies on
// the rows whose trigger is a plain GET; the request-side rows are the
// edge server's and run without TLS only.
func (impl framingImpl) takes(row *framingRow) bool {
	switch {
	case impl.upload != "":
		return row.method == "" && row.body == "" && row.raw == ""
	case impl.tls != nil:
		return row.raw == ""
	}
	return true
}

// TestFramingIsolation: whatever the upstream sends, no user receives an
// answer that is not to its own request, through tollgate's transport as
// through net/http's.
func TestFramingIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip("the framing test sends tens of thousands of requests")
	}
	for _, impl := range framingImpls(t) {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			for _, row := range framingRows() {
				if impl.takes(&row) {
					t.Run(row.name, func(t *testing.T) { runFramingRow(t, impl, &row) })
				}
			}
		})
	}
}

const framingRequestsPerRow = 2100

// framingRun is one row through one implementation: the emulator, the
// gateway in front of it, and what the callers saw.
type framingRun struct {
	impl   framingImpl
	row    *framingRow
	e      *emulator
	g      *gateway
	client *http.Client
	users  []string // each with a token of its own
	seq    atomic.Int64

	mu       sync.Mutex
	sent     int      // user requests
	wrong    int      // user answers not to the user's own request
	examples []string // of wrong answers
	triggers int
	first    answer   // the first trigger's, for the log
	badTrig  []string // trigger answers that were not as the row wants
}

func runFramingRow(t *testing.T, impl framingImpl, row *framingRow) {
	e := newEmulator(t, row, impl.tls)
	scheme := "http"
	if impl.tls != nil {
		scheme = "https"
	}
	g := setup(t, fmt.Sprintf(`
server: {access_log: false}
routes:
  - {name: echo, path: /echo/, upstreams: ["%[2]s://%[1]s"]}
  - {name: pub, path: /pub/, public: true, upstreams: ["%[2]s://%[1]s"]}
  - {name: lax, path: /lax/, public: true, allow_get_body: true, upstreams: ["%[2]s://%[1]s"]}
  - {name: hang, path: /hang/, public: true, timeout: 300ms, upstreams: ["%[2]s://%[1]s"]}
`, e.addr, scheme), impl.opts())
	clientTransport := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	t.Cleanup(clientTransport.CloseIdleConnections)
	r := &framingRun{impl: impl, row: row, e: e, g: g, client: &http.Client{Transport: clientTransport},
		users: []string{"alice", "bob", "carol"}}

	rounds := 1
	switch {
	case row.delay >= time.Second:
		rounds = 3
	case row.delay > 0:
		rounds = 6
	}
	perRow := cmp.Or(impl.requests, framingRequestsPerRow)
	if row.raw != "" {
		perRow /= 3 // the request-side rows are the edge server's; here they only pass through
	}
	for round := range rounds {
		r.round(round, perRow/len(r.users)/rounds, round < rounds-1)
		r.settle(t)
	}
	waitIdle(t, g)
	if r.sent < perRow-len(r.users)*rounds {
		t.Errorf("only %d user requests", r.sent)
	}
	r.verdict(t)
}

// round runs perUser calls of every user while the anonymous caller fires
// triggers; with more, one trigger follows the users' calls, so that a
// delayed answer finds its connection idle.
func (r *framingRun) round(round, perUser int, more bool) {
	var users sync.WaitGroup
	for _, u := range r.users {
		users.Go(func() {
			for i := range perUser {
				r.userCall(u, fmt.Sprintf("/echo/%s-%d-%d", u, round, i))
			}
		})
	}
	stop := make(chan struct{})
	var anon sync.WaitGroup
	anon.Go(func() {
		for {
			select {
			case <-stop:
				if more {
					r.trigger()
				}
				return
			default:
				r.trigger()
			}
		}
	})
	users.Wait()
	close(stop)
	anon.Wait()
}

// userCall is one user's call; its answer must be to this very request.
func (r *framingRun) userCall(user, path string) {
	got := userCall(r.client, r.g.URL, user, path, r.impl.upload)
	method := "GET"
	if r.impl.upload != "" {
		method = "POST"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent++
	if want := method + " " + path + " user=" + user; got.status != 200 || got.err != nil || got.body != want {
		r.wrong++
		if len(r.examples) < 5 {
			r.examples = append(r.examples, fmt.Sprintf("%s asked %s, got %s", user, path, got))
		}
	}
}

// trigger fires the row's trigger as the anonymous caller and checks its
// answer: as the row wants, and never a user's or the hidden request's.
func (r *framingRun) trigger() {
	a := fireTrigger(r.client, r.g.URL, r.row, r.seq.Add(1), r.impl.upload)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.triggers++
	if r.triggers == 1 {
		r.first = a
	}
	problem := r.row.want(r.impl.name, a)
	for _, u := range r.users {
		if strings.Contains(a.body, "user="+u) {
			problem = "the trigger caller got " + u + "'s answer"
		}
	}
	if strings.Contains(a.body, "user=admin") {
		problem = "the trigger caller got the hidden request's answer"
	}
	if problem != "" && len(r.badTrig) < 5 {
		r.badTrig = append(r.badTrig, fmt.Sprintf("%s: %s", problem, a))
	}
}

// settle ends a round of a delayed row: the delayed answers are written
// while the gateway is quiet, and, for an implementation that watches
// idle connections on a goroutine of its own, the connections they came
// on are closed before the next round.
func (r *framingRun) settle(t *testing.T) {
	if r.row.delay == 0 {
		return
	}
	e := r.e
	e.hush()
	e.wait(t, "the delayed answers were written or given up", func() bool { return e.armed == 0 })
	if r.impl.settle {
		e.wait(t, "the gateway closed every connection that carried an unsolicited answer", func() bool {
			for _, st := range e.conns {
				if st == connOpen {
					return false
				}
			}
			return true
		})
	}
}

// verdict fails the row on any answer a caller should not have had, on a
// connection used again after it misbehaved, and on a trigger that never
// fired.
func (r *framingRun) verdict(t *testing.T) {
	e, row := r.e, r.row
	e.mu.Lock()
	fired, hidden, reused := e.fired, e.hidden, 0
	for _, s := range e.conns {
		if s == connReused {
			reused++
		}
	}
	e.mu.Unlock()
	t.Logf("%d user requests, %d triggers, %d misbehaving answers, %d hidden requests run; the first trigger got %s",
		r.sent, r.triggers, fired, hidden, r.first)
	report := t.Errorf
	if r.impl.poolsFirst && row.behind {
		report = t.Logf
	}
	if r.wrong > 0 {
		report("%d of %d user answers were not the user's own, e.g.\n%s", r.wrong, r.sent, strings.Join(r.examples, "\n"))
	}
	if len(r.badTrig) > 0 {
		report("the trigger caller's answers:\n%s", strings.Join(r.badTrig, "\n"))
	}
	if reused > 0 {
		report("%d connections were used again after a misbehaving answer", reused)
	}
	switch {
	case row.raw != "" || row.refused:
		if hidden > 0 || fired > 0 {
			t.Errorf("the upstream ran %d hidden requests and %d triggers that the gateway should have refused", hidden, fired)
		}
	case row.hiddenRuns && hidden == 0:
		t.Error("the hidden request never reached the upstream: the row tests nothing")
	case !row.hiddenRuns && hidden > 0:
		t.Errorf("the upstream ran %d hidden requests", hidden)
	case !row.hiddenRuns && fired == 0:
		t.Error("the upstream never misbehaved: the row tests nothing")
	}
}

// userCall is one user's authenticated GET (a POST with an upload of
// that kind when upload is set), with the identity headers a client might
// try to spoof (C5).
func userCall(client *http.Client, base, user, path, upload string) answer {
	method, body := "GET", uploadBody(upload)
	if body != nil {
		method = "POST"
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer tok-"+user)
	req.Header["X-User-Id"] = []string{"mallory"}
	req.Header["X_user_id"] = []string{"mallory"}
	req.Header.Set("Connection", "X-User-Id")
	return call(client, req)
}

func call(client *http.Client, req *http.Request) answer {
	res, err := client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, body: string(b), err: err}
}

// uploadBody is a body of the upload kind, or nil for none.
func uploadBody(upload string) io.Reader {
	switch upload {
	case bigBody:
		return bytes.NewReader(bytes.Repeat([]byte("u"), uploadSize))
	case chunkedBody:
		// No length: the client sends it chunked.
		return io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("u"), uploadSize)))
	}
	return nil
}

// fireTrigger sends the row's trigger as the anonymous caller; a plain
// GET trigger is a POST with an upload of that kind when upload is set.
func fireTrigger(client *http.Client, base string, row *framingRow, n int64, upload string) answer {
	if row.raw != "" {
		return rawTrigger(strings.TrimPrefix(base, "http://"), row.raw)
	}
	method := cmp.Or(row.method, "GET")
	var body io.Reader
	switch {
	case row.body != "":
		body = strings.NewReader(row.body)
	case row.method == "" && upload != "":
		method, body = "POST", uploadBody(upload)
	}
	req, err := http.NewRequest(method, fmt.Sprintf("%s%s-%d", base, row.path, n), body)
	if err != nil {
		return answer{err: err}
	}
	return call(client, req)
}

// rawTrigger writes raw to the gateway and reads every answer until the
// gateway closes the connection or stops answering.
func rawTrigger(addr, raw string) answer {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return answer{err: err}
	}
	defer c.Close()
	// A last request asks the gateway to close, so every answer is read.
	raw += "GET /pub/end HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, raw); err != nil {
		return answer{err: err}
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	var all answer
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return all
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if all.status == 0 {
			all.status = res.StatusCode
		}
		all.body += fmt.Sprintf("[%d %s]", res.StatusCode, b)
		if res.Close {
			return all
		}
	}
}
