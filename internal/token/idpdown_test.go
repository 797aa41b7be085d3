package token_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestIdPDownAtStart: an issuer whose JWKS cannot be fetched at start is
// tried again with back-off, not once a minute: over a ten-minute outage
// with a token every 100 ms the IdP sees a bounded number of fetches, and
// once it comes up its tokens are accepted within RetryBackoff × 8.
func TestIdPDownAtStart(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	k := mustECKey(t)
	d := newIDP(t)
	d.keys = []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
	d.status = http.StatusServiceUnavailable
	v := extVerifier(t, clock, token.TrustedIssuer{JWKSURL: d.url(), Algorithms: []string{"ES256"}}, token.JWKSOptions{})
	claims := keycloakClaims(clock.Now())
	claims["exp"] = clock.Now().Add(time.Hour).Unix()
	tok := signWith(t, jwt.SigningMethodES256, k, map[string]any{"alg": "ES256", "kid": "k1"}, claims)

	const outage, every = 10*time.Minute + 7*time.Second, 100 * time.Millisecond
	for range int(outage / every) {
		if _, err := v.Verify(ctx, tok); tollgate.ErrorCode(err) != tollgate.EUnauthorized {
			t.Fatalf("Verify while the IdP is down = %v, want %s", err, tollgate.EUnauthorized)
		}
		clock.Add(every)
	}
	// Back-off from 1 s doubling to 8 s: about outage ÷ 8 s fetches.
	if n := d.hits.Load(); n < 30 || n > int64(outage/(8*time.Second))+5 {
		t.Fatalf("%d fetches over a %v outage; want retries, but at most one per 8 s", n, outage)
	}

	d.set(func(d *idp) { d.status = http.StatusOK })
	up := clock.Now()
	for {
		if _, err := v.Verify(ctx, tok); err == nil {
			break
		}
		if clock.Now().Sub(up) > 8*time.Second {
			t.Fatalf("tokens still refused %v after the IdP came up; want within 8 s", clock.Now().Sub(up))
		}
		clock.Add(every)
	}
}

// TestTrustedIssuerRefreshInterval: refresh_interval bounds how soon a
// token with a new kid makes the key set be fetched again, per issuer.
func TestTrustedIssuerRefreshInterval(t *testing.T) {
	ctx := context.Background()
	k1, k2 := mustECKey(t), mustECKey(t)
	for _, tc := range []struct {
		name     string
		interval time.Duration
		wait     time.Duration // until the rotated key is accepted
	}{
		{"Default", 0, time.Minute},
		{"FiveSeconds", 5 * time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			d := newIDP(t)
			d.keys = []jose.JSONWebKey{{Key: &k1.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
			v := extVerifier(t, clock, token.TrustedIssuer{JWKSURL: d.url(), Algorithms: []string{"ES256"}, RefreshInterval: tc.interval}, token.JWKSOptions{})
			claims := keycloakClaims(clock.Now())
			claims["exp"] = clock.Now().Add(time.Hour).Unix()
			if _, err := v.Verify(ctx, signWith(t, jwt.SigningMethodES256, k1, map[string]any{"alg": "ES256", "kid": "k1"}, claims)); err != nil {
				t.Fatal(err)
			}
			// The IdP rotates to k2 right after tollgate fetched its keys.
			d.set(func(d *idp) {
				d.keys = []jose.JSONWebKey{{Key: &k2.PublicKey, KeyID: "k2", Algorithm: "ES256", Use: "sig"}}
			})
			tok2 := signWith(t, jwt.SigningMethodES256, k2, map[string]any{"alg": "ES256", "kid": "k2"}, claims)
			clock.Add(tc.wait - time.Second)
			if _, err := v.Verify(ctx, tok2); err == nil {
				t.Fatalf("a new kid %v after the last fetch was accepted; refresh_interval %v allows no fetch yet", tc.wait-time.Second, tc.interval)
			}
			clock.Add(time.Second)
			if _, err := v.Verify(ctx, tok2); err != nil {
				t.Fatalf("a new kid %v after the last fetch: %v; want accepted", tc.wait, err)
			}
		})
	}
}

// TestIdPDownAtStartBackground: the background refresh of a started
// verifier retries an issuer whose JWKS failed at start with back-off, so
// its keys are in place within seconds of the IdP coming up, before any
// token asks for them.
func TestIdPDownAtStartBackground(t *testing.T) {
	k := mustECKey(t)
	d := newIDP(t) // outside the bubble: its goroutines are real
	d.keys = []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
	d.status = http.StatusServiceUnavailable
	// No idle connections: a goroutine parked on a socket would keep the
	// bubble's clock from moving.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	synctest.Test(t, func(t *testing.T) {
		v, err := token.NewVerifier(token.VerifierOptions{
			Trusted:   []token.TrustedIssuer{{Issuer: extIssuer, JWKSURL: d.url(), Audience: "tollgate", Algorithms: []string{"ES256"}}},
			JWKS:      token.JWKSOptions{HTTPClient: client},
			CacheSize: -1,
			Logger:    slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer v.Stop()
		time.Sleep(5 * time.Minute) // the IdP stays down
		synctest.Wait()
		if n := d.hits.Load(); n < 20 {
			t.Fatalf("%d background fetches in 5 minutes of outage; want retries with back-off, not one a minute", n)
		}
		d.set(func(d *idp) { d.status = http.StatusOK })
		time.Sleep(8 * time.Second)
		synctest.Wait()
		claims := keycloakClaims(time.Now())
		tok := signWith(t, jwt.SigningMethodES256, k, map[string]any{"alg": "ES256", "kid": "k1"}, claims)
		before := d.hits.Load()
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatalf("a token 8 s after the IdP came up: %v", err)
		}
		if d.hits.Load() != before {
			t.Fatal("the token needed a fetch of its own: the background refresh had not fetched the keys")
		}
	})
}
