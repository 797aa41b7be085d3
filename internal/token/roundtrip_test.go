package token_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

const testIssuer = "https://gw.example.test"

type fixture struct {
	clock    *fakeClock
	store    *memKeys
	keys     *token.KeyManager
	internal *token.KeyManager
	issuer   *token.Issuer
	verifier *token.Verifier
	deny     *token.Denylist
}

type setupOpts struct {
	alg       string
	cacheSize int
	trusted   []token.TrustedIssuer
	jwks      token.JWKSOptions
	realClock bool // time.Now instead of the fake clock (benchmarks)
}

func setup(t testing.TB, o setupOpts) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{clock: newFakeClock(), store: &memKeys{}}
	now := f.clock.Now
	if o.realClock {
		now = time.Now
	}
	var err error
	f.keys, err = token.NewKeyManager(ctx, f.store, token.KeyOptions{Algorithm: o.alg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	f.internal, err = token.NewKeyManager(ctx, f.store, token.KeyOptions{Purpose: token.PurposeInternal, Algorithm: o.alg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	f.issuer, err = token.NewIssuer(f.keys, f.internal, token.IssuerOptions{Issuer: testIssuer, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	f.deny = token.NewDenylist(f.clock.Now)
	f.verifier, err = token.NewVerifier(token.VerifierOptions{
		Issuer: testIssuer, Keys: f.keys, Denylist: f.deny, Now: now,
		CacheSize: o.cacheSize, Trusted: o.trusted, JWKS: o.jwks,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var aliceClaims = token.AccessClaims{
	Subject: "u-alice", TenantID: "t-acme", Role: "user", Scopes: []string{"infer:text", "infer:image"}, Plan: "free",
}

func (f *fixture) mustIssue(t testing.TB, c token.AccessClaims) string {
	t.Helper()
	tok, _, err := f.issuer.Issue(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func wantUnauthorized(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("token accepted, want it refused")
	}
	if code := tollgate.ErrorCode(err); code != tollgate.EUnauthorized {
		t.Fatalf("error code %q (%v), want %q", code, err, tollgate.EUnauthorized)
	}
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	for _, alg := range []string{token.ES256, token.EdDSA, token.RS256} {
		t.Run(alg, func(t *testing.T) {
			f := setup(t, setupOpts{alg: alg})
			tok, exp, err := f.issuer.Issue(context.Background(), aliceClaims)
			if err != nil {
				t.Fatal(err)
			}
			if want := f.clock.Now().Add(15 * time.Minute); !exp.Equal(want) {
				t.Errorf("exp = %v, want %v (15 min default)", exp, want)
			}
			p, err := f.verifier.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if p.UserID != "u-alice" || p.TenantID != "t-acme" || p.Role != "user" || p.Plan != "free" ||
				!slices.Equal(p.Scopes, aliceClaims.Scopes) || p.Issuer != testIssuer || p.JTI == "" || p.External {
				t.Errorf("principal = %+v", p)
			}
			if !p.Expires.Equal(exp) || !p.IssuedAt.Equal(f.clock.Now()) {
				t.Errorf("times: iat %v exp %v", p.IssuedAt, p.Expires)
			}
			// Expires after exp + leeway, also from the cache.
			f.clock.Add(15*time.Minute + 31*time.Second)
			_, err = f.verifier.Verify(context.Background(), tok)
			wantUnauthorized(t, err)
		})
	}
}

func TestIssueTTLOverride(t *testing.T) {
	f := setup(t, setupOpts{})
	c := aliceClaims
	c.TTL = time.Hour // tollgate token mint --ttl 1h
	tok, exp, err := f.issuer.Issue(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(f.clock.Now().Add(time.Hour)) {
		t.Fatalf("exp = %v, want now + 1h", exp)
	}
	f.clock.Add(59 * time.Minute)
	if _, err := f.verifier.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

func TestIssueRefusesBadClaims(t *testing.T) {
	f := setup(t, setupOpts{})
	for name, c := range map[string]token.AccessClaims{
		"no_subject":  {},
		"nul_subject": {Subject: "a\x00b"},
		"ctl_role":    {Subject: "a", Role: "admin\n"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := f.issuer.Issue(context.Background(), c); err == nil {
				t.Fatal("token issued")
			}
		})
	}
}

// TestDenylistConcurrent runs revocations while tokens are verified (run
// with -race).
func TestDenylistConcurrent(t *testing.T) {
	ctx := context.Background()
	f := setup(t, setupOpts{})
	toks := make([]string, 16)
	for i := range toks {
		toks[i] = f.mustIssue(t, aliceClaims)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				_, _ = f.verifier.Verify(ctx, toks[(i+w)%len(toks)])
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			f.deny.RevokeToken(testIssuer, fmt.Sprint("jti-", i), f.clock.Now().Add(time.Minute))
			f.deny.DisableUser(fmt.Sprint("u-", i))
			f.deny.Prune()
		}
	})
	wg.Wait()
	if f.deny.Len() != 200 {
		t.Fatalf("denylist holds %d entries, want 200", f.deny.Len())
	}
}

// TestSessionRevocation: revoking a refresh-token family (its sid) denies
// every access token issued with it, also from the verified-token cache,
// and no token of another session or without one.
func TestSessionRevocation(t *testing.T) {
	ctx := context.Background()
	f := setup(t, setupOpts{})
	withSID := func(sid string) token.AccessClaims {
		c := aliceClaims
		c.SessionID = sid
		return c
	}
	a1, a2 := f.mustIssue(t, withSID("fam-a")), f.mustIssue(t, withSID("fam-a"))
	b, none := f.mustIssue(t, withSID("fam-b")), f.mustIssue(t, aliceClaims)
	for _, tok := range []string{a1, a2, b, none} {
		p, err := f.verifier.Verify(ctx, tok) // now cached
		if err != nil {
			t.Fatal(err)
		}
		if tok == a1 && p.SessionID != "fam-a" {
			t.Fatalf("SessionID = %q, want the sid claim fam-a", p.SessionID)
		}
	}
	f.deny.RevokeToken(testIssuer, token.SessionJTI("fam-a"), f.clock.Now().Add(time.Hour))
	for name, tok := range map[string]string{"first of the session": a1, "second of the session": a2} {
		if _, err := f.verifier.Verify(ctx, tok); err == nil {
			t.Errorf("%s: verified after its session was revoked", name)
		}
	}
	for name, tok := range map[string]string{"another session": b, "no session": none} {
		if _, err := f.verifier.Verify(ctx, tok); err != nil {
			t.Errorf("%s: %v after another session was revoked", name, err)
		}
	}
}

// TestDeletedUserEntry: the denylist entry of a deleted user refuses every
// token of that user under tollgate's issuer, and only those, until it is
// pruned after its expiry.
func TestDeletedUserEntry(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	d := token.NewDenylist(clock)
	d.RevokeToken(testIssuer, token.UserJTI("usr_gone"), now.Add(time.Hour))
	gone := &tollgate.Principal{Issuer: testIssuer, UserID: "usr_gone", JTI: "j1", IssuedAt: now}
	if err := d.Check(gone); err == nil {
		t.Fatal("a token of the deleted user is accepted")
	}
	for _, p := range []*tollgate.Principal{
		{Issuer: testIssuer, UserID: "usr_other", JTI: "j2", IssuedAt: now},
		{Issuer: "https://idp.example.test", UserID: "usr_gone", JTI: "j3", IssuedAt: now, External: true},
	} {
		if err := d.Check(p); err != nil {
			t.Errorf("%+v refused: %v", p, err)
		}
	}
	now = now.Add(2 * time.Hour)
	if n := d.Prune(); n != 1 {
		t.Fatalf("Prune dropped %d entries, want 1", n)
	}
	if err := d.Check(gone); err != nil {
		t.Fatalf("after the entry expired and was pruned: %v", err)
	}
}
