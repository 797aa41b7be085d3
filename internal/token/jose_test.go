package token_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/tollgate/tollgate/internal/token"
)

// TestIndependentVerification checks tollgate's tokens and JWKS with
// go-jose, an independent JOSE implementation, as a client or upstream
// would: only the published JWKS JSON, no shared code.
func TestIndependentVerification(t *testing.T) {
	algs := map[string]jose.SignatureAlgorithm{token.ES256: jose.ES256, token.EdDSA: jose.EdDSA, token.RS256: jose.RS256}
	for alg, joseAlg := range algs {
		t.Run(alg, func(t *testing.T) {
			f := setup(t, setupOpts{alg: alg})
			tok := f.mustIssue(t, aliceClaims)

			var set jose.JSONWebKeySet
			if err := json.Unmarshal(f.keys.JWKS(), &set); err != nil {
				t.Fatalf("go-jose cannot read the JWKS: %v", err)
			}
			parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{joseAlg})
			if err != nil {
				t.Fatal(err)
			}
			h := parsed.Headers[0]
			if h.ExtraHeaders["typ"] != "at+jwt" || h.KeyID == "" {
				t.Fatalf("header: typ %v kid %q", h.ExtraHeaders["typ"], h.KeyID)
			}
			keys := set.Key(h.KeyID)
			if len(keys) != 1 || keys[0].Algorithm != alg || keys[0].Use != "sig" {
				t.Fatalf("JWKS entries for kid: %+v", keys)
			}
			var std josejwt.Claims
			var own struct {
				TenantID string `json:"tenant_id"`
				Role     string `json:"role"`
				Scope    string `json:"scope"`
				Plan     string `json:"plan"`
			}
			if err := parsed.Claims(keys[0].Key, &std, &own); err != nil {
				t.Fatalf("go-jose refuses the signature: %v", err)
			}
			err = std.ValidateWithLeeway(josejwt.Expected{
				Issuer: testIssuer, AnyAudience: josejwt.Audience{token.DefaultAudience}, Time: f.clock.Now(),
			}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if std.Subject != "u-alice" || std.ID == "" || std.NotBefore == nil || std.IssuedAt == nil ||
				std.Expiry.Time().Sub(std.IssuedAt.Time()) != 15*time.Minute {
				t.Fatalf("registered claims = %+v", std)
			}
			if own.TenantID != "t-acme" || own.Role != "user" || own.Plan != "free" || own.Scope != "infer:text infer:image" {
				t.Fatalf("private claims = %+v", own)
			}
		})
	}
}
