package proxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	crand "crypto/rand"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// reservedPrefix marks headers that belong to the gateway whatever the
// configuration says.
const reservedPrefix = "x-tollgate-"

// identityHeaders are the canonical names of the headers the gateway sets
// upstream; every one is reserved.
type identityHeaders struct {
	userID, tenantID, role, scopes, plan, requestID, internalToken string
	// reserved holds every configured name, compared case-insensitively
	// with '_' and '-' as equal (some upstream stacks fold them together).
	reserved []string
	// cookies are cookie names never forwarded upstream.
	cookies []string
}

func newIdentityHeaders(h config.Headers) *identityHeaders {
	c := textproto.CanonicalMIMEHeaderKey
	ih := &identityHeaders{
		userID: c(h.UserID), tenantID: c(h.TenantID), role: c(h.Role),
		scopes: c(h.Scopes), plan: c(h.Plan), requestID: c(h.RequestID),
		internalToken: c(h.InternalToken),
		cookies:       h.StripCookies,
	}
	for _, n := range []string{ih.userID, ih.tenantID, ih.role, ih.scopes, ih.plan, ih.requestID, ih.internalToken} {
		if n != "" {
			ih.reserved = append(ih.reserved, n)
		}
	}
	return ih
}

// isReserved reports whether a header name is one the gateway owns.
func (ih *identityHeaders) isReserved(name string) bool {
	if len(name) >= len(reservedPrefix) && foldDashEqual(name[:len(reservedPrefix)], reservedPrefix) {
		return true
	}
	for _, r := range ih.reserved {
		if foldDashEqual(name, r) {
			return true
		}
	}
	return false
}

// strip deletes every reserved header from h.
func (ih *identityHeaders) strip(h http.Header) {
	for k := range h {
		if ih.isReserved(k) {
			delete(h, k)
		}
	}
}

// set writes the identity of p and the request id into h, with one
// allocation for all values.
// It returns the request id's value slice, for reuse on the response.
func (ih *identityHeaders) set(h http.Header, p *tollgate.Principal, requestID string) []string {
	if p == nil {
		v := []string{requestID}
		h[ih.requestID] = v
		return v
	}
	vals := [...]string{requestID, p.UserID, p.TenantID, p.Role, p.ScopeString(), p.Plan}
	names := [...]string{ih.requestID, ih.userID, ih.tenantID, ih.role, ih.scopes, ih.plan}
	buf := make([]string, len(vals))
	copy(buf, vals[:])
	for i, n := range names {
		if buf[i] != "" {
			h[n] = buf[i : i+1 : i+1]
		}
	}
	return buf[0:1:1]
}

// foldDashEqual compares ASCII header names ignoring case and treating '_'
// as '-'.
func foldDashEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if foldDash(a[i]) != foldDash(b[i]) {
			return false
		}
	}
	return true
}

func foldDash(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_':
		return '-'
	}
	return c
}

// stripCookies removes the named cookies from the Cookie headers of h.
func stripCookies(h http.Header, names []string) {
	vals := h["Cookie"]
	if len(names) == 0 || len(vals) == 0 {
		return
	}
	var kept []string
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			drop := false
			for _, n := range names {
				if name == n {
					drop = true
					break
				}
			}
			if !drop && strings.TrimSpace(part) != "" {
				kept = append(kept, strings.TrimSpace(part))
			}
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{strings.Join(kept, "; ")}
}

// validRequestID reports whether s may be taken from a trusted caller:
// 1 to 128 of [A-Za-z0-9._-].
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// idSource generates request ids: 16 bytes of a ChaCha8 stream seeded from
// crypto/rand, hex-encoded.
type idSource struct {
	mu  sync.Mutex
	rng *rand.ChaCha8
}

func newIDSource() *idSource {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // crypto/rand.Read never fails (Go 1.24+)
	return &idSource{rng: rand.NewChaCha8(seed)}
}

// next returns a new request id: 32 hex digits, the first 12 of them the
// time in milliseconds, so ids sort by time (as UUIDv7 does) and the
// ledger appends to its index instead of writing random pages; the rest
// are random.
func (s *idSource) next(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	s.mu.Lock()
	_, _ = s.rng.Read(b[6:])
	s.mu.Unlock()
	var out [32]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}
