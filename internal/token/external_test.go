package token_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/token"
)

// idp is an external identity provider: an httptest JWKS endpoint whose
// keys, status and latency the test controls.
type idp struct {
	srv    *httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	keys   []jose.JSONWebKey
	status int
	cc     string
	block  chan struct{} // when set, requests wait on it
}

func newIDP(t testing.TB) *idp {
	t.Helper()
	d := &idp{status: http.StatusOK, cc: "max-age=300"}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		d.mu.Lock()
		keys, status, cc, block := slices.Clone(d.keys), d.status, d.cc, d.block
		d.mu.Unlock()
		if block != nil {
			<-block
		}
		if status != http.StatusOK {
			http.Error(w, "down", status)
			return
		}
		w.Header().Set("Cache-Control", cc)
		_, _ = w.Write(mustJSON(t, jose.JSONWebKeySet{Keys: keys}))
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *idp) set(f func(d *idp)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func (d *idp) url() string { return d.srv.URL + "/protocol/openid-connect/certs" }

func mustRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signWith(t testing.TB, m jwt.SigningMethod, key any, h, c map[string]any) string {
	t.Helper()
	in := enc(mustJSON(t, h)) + "." + enc(mustJSON(t, c))
	sig, err := m.Sign(in, key)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + enc(sig)
}

func extVerifier(t testing.TB, clock *fakeClock, ti token.TrustedIssuer, jwks token.JWKSOptions) *token.Verifier {
	t.Helper()
	ti.Issuer = extIssuer
	if ti.Audience == "" {
		ti.Audience = "tollgate"
	}
	v, err := token.NewVerifier(token.VerifierOptions{Trusted: []token.TrustedIssuer{ti}, JWKS: jwks, Now: clock.Now, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// keycloakClaims look like a Keycloak access token.
func keycloakClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": extIssuer, "sub": "f3b1c0de", "aud": []string{"account", "tollgate"},
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": "kc-1", "typ": "Bearer",
		"realm_access": map[string]any{"roles": []string{"offline_access", "admin", "user"}},
		"org_id":       "t-globex", "scope": "openid infer:text",
	}
}

func TestExternalIssuerClaimsMapping(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	key := mustRSAKey(t)
	d := newIDP(t)
	d.keys = []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "rsa-1", Use: "sig"}} // no alg: bound by the issuer's list
	v := extVerifier(t, clock, token.TrustedIssuer{
		JWKSURL: d.url(), Algorithms: []string{"RS256"}, DefaultPlan: "free", RolePriority: []string{"admin", "user"},
		Claims: token.ClaimsMapping{TenantID: "org_id", Role: "realm_access.roles", Scope: "scope", Plan: "plan"},
	}, token.JWKSOptions{})
	tok := signWith(t, jwt.SigningMethodRS256, key, map[string]any{"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}, keycloakClaims(clock.Now()))
	p, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !p.External || p.Issuer != extIssuer || p.UserID != "f3b1c0de" || p.TenantID != "t-globex" || p.Role != "admin" ||
		p.Plan != "free" || !slices.Equal(p.Scopes, []string{"openid", "infer:text"}) || p.JTI != "kc-1" {
		t.Fatalf("principal = %+v", p)
	}
	t.Run("plan_claim_wins_over_default", func(t *testing.T) {
		c := keycloakClaims(clock.Now())
		c["plan"] = "pro"
		p, err := v.Verify(ctx, signWith(t, jwt.SigningMethodRS256, key, map[string]any{"alg": "RS256", "kid": "rsa-1"}, c))
		if err != nil || p.Plan != "pro" {
			t.Fatalf("plan = %v, err %v", p, err)
		}
	})
	t.Run("two_tenants_refused", func(t *testing.T) {
		c := keycloakClaims(clock.Now())
		c["org_id"] = []string{"t-a", "t-b"}
		_, err := v.Verify(ctx, signWith(t, jwt.SigningMethodRS256, key, map[string]any{"alg": "RS256", "kid": "rsa-1"}, c))
		wantUnauthorized(t, err)
	})
	t.Run("algorithm_not_listed_for_issuer", func(t *testing.T) {
		// PS256 fits the RSA key, but the issuer only allows RS256.
		c := keycloakClaims(clock.Now())
		_, err := v.Verify(ctx, signWith(t, jwt.SigningMethodPS256, key, map[string]any{"alg": "PS256", "kid": "rsa-1"}, c))
		wantUnauthorized(t, err)
	})
}

func TestExternalIssuerKeyRotationAndOutage(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	k1, k2 := mustECKey(t), mustECKey(t)
	d := newIDP(t)
	d.keys = []jose.JSONWebKey{{Key: &k1.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
	v := extVerifier(t, clock, token.TrustedIssuer{JWKSURL: d.url(), Algorithms: []string{"ES256"}}, token.JWKSOptions{})
	longLived := func(k any, kid string) string {
		c := keycloakClaims(clock.Now())
		c["exp"] = clock.Now().Add(72 * time.Hour).Unix()
		return signWith(t, jwt.SigningMethodES256, k, map[string]any{"alg": "ES256", "kid": kid}, c)
	}
	tok1 := longLived(k1, "k1")
	if _, err := v.Verify(ctx, tok1); err != nil {
		t.Fatal(err)
	}
	// The IdP rotates: a token with the new kid triggers one refetch.
	d.set(func(d *idp) {
		d.keys = append(d.keys, jose.JSONWebKey{Key: &k2.PublicKey, KeyID: "k2", Algorithm: "ES256", Use: "sig"})
	})
	clock.Add(2 * time.Minute)
	if _, err := v.Verify(ctx, longLived(k2, "k2")); err != nil {
		t.Fatalf("token of the IdP's new key: %v", err)
	}
	// Outage: keys already fetched keep working, up to MaxStale (24 h).
	d.set(func(d *idp) { d.status = http.StatusServiceUnavailable })
	clock.Add(2 * time.Hour)
	if err := v.RefreshJWKS(ctx); err == nil {
		t.Fatal("refresh during the outage reported success")
	}
	if _, err := v.Verify(ctx, tok1); err != nil {
		t.Fatalf("stale key not served during the outage: %v", err)
	}
	clock.Add(23 * time.Hour)
	_, err := v.Verify(ctx, tok1)
	wantUnauthorized(t, err)
	// The IdP is back: the next lookup fetches again.
	d.set(func(d *idp) { d.status = http.StatusOK })
	clock.Add(2 * time.Minute)
	if _, err := v.Verify(ctx, tok1); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestExternalFetchHoldsNoLock: while a JWKS fetch for an unknown kid
// hangs, tokens with known kids still verify, and concurrent lookups of
// unknown kids share the one fetch.
func TestExternalFetchHoldsNoLock(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	k := mustECKey(t)
	d := newIDP(t)
	d.keys = []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
	v := extVerifier(t, clock, token.TrustedIssuer{JWKSURL: d.url(), Algorithms: []string{"ES256"}}, token.JWKSOptions{})
	good := signWith(t, jwt.SigningMethodES256, k, map[string]any{"alg": "ES256", "kid": "k1"}, keycloakClaims(clock.Now()))
	if _, err := v.Verify(ctx, good); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Minute)
	release := make(chan struct{})
	d.set(func(d *idp) { d.block = release })
	var wg sync.WaitGroup
	for i := range 8 {
		bad := signWith(t, jwt.SigningMethodES256, k, map[string]any{"alg": "ES256", "kid": "unknown-" + string(rune('a'+i))}, keycloakClaims(clock.Now()))
		wg.Go(func() { _, _ = v.Verify(ctx, bad) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.hits.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { _, err := v.Verify(ctx, good); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a known kid waited for a JWKS fetch in flight")
	}
	close(release)
	wg.Wait()
	if n := d.hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (initial + one merged refetch)", n)
	}
}

// TestExternalBackgroundRefresh runs in a synctest bubble: the
// background refresh waits on the bubble's clock, so the test checks when
// it fetches without waiting in real time. The IdP serves over real TCP
// from outside the bubble; connections are not kept alive, so nothing in
// the bubble waits on the network between fetches.
func TestExternalBackgroundRefresh(t *testing.T) {
	k := mustECKey(t)
	d := newIDP(t)
	d.keys = []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
	d.cc = "max-age=0"
	synctest.Test(t, func(t *testing.T) {
		v, err := token.NewVerifier(token.VerifierOptions{
			Trusted: []token.TrustedIssuer{{Issuer: extIssuer, JWKSURL: d.url(), Audience: "tollgate", Algorithms: []string{"ES256"}}},
			JWKS: token.JWKSOptions{MinRefresh: 1500 * time.Millisecond, MaxRefresh: 2 * time.Second,
				HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer v.Stop()
		synctest.Wait() // the first fetch is done; the refresh waits on its timer
		tok := signWith(t, jwt.SigningMethodES256, k, map[string]any{"alg": "ES256", "kid": "k1"}, keycloakClaims(time.Now()))
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		if n := d.hits.Load(); n != 1 {
			t.Fatalf("%d fetches before first refresh, want 1", n)
		}
		// max-age=0 is raised to MinRefresh (1.5 s); refresh happens at 3/4 of it.
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if n := d.hits.Load(); n != 1 {
			t.Fatalf("%d fetches 1.1 s after the first, want 1 (max-age=0 is raised to MinRefresh)", n)
		}
		time.Sleep(400 * time.Millisecond)
		synctest.Wait()
		if n := d.hits.Load(); n != 2 {
			t.Fatalf("%d fetches 1.5 s after the first, want 2 (one background refresh)", n)
		}
	})
}

// TestExternalThumbprintHeader: Microsoft Entra puts x5t in the header; it
// is tolerated (and ignored) for external issuers, never for tollgate's
// own tokens.
func TestExternalThumbprintHeader(t *testing.T) {
	e := newAttackEnv(t)
	for _, field := range []string{"x5t", "x5t#S256"} {
		t.Run(field, func(t *testing.T) {
			e.accept(t, e.ext.sign(t, with(e.ext.header(), field, "bm90LWEta2V5"), e.ext.claims()))
			e.refuse(t, "own", e.own.sign(t, with(e.own.header(), field, "bm90LWEta2V5"), e.own.claims()))
			e.refuse(t, "not_a_string", e.ext.sign(t, with(e.ext.header(), field, 1), e.ext.claims()))
		})
	}
}
