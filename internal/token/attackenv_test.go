package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

const (
	extIssuer = "https://idp.example.test/realms/ai"
	ownKID    = "own-key-1"
	extKID    = "idp-key-1"
)

// attackEnv is one verifier that trusts tollgate's own keys and one
// external issuer served by an httptest JWKS server, plus an attacker's
// server that must never be contacted.
type attackEnv struct {
	clock        *fakeClock
	v            *token.Verifier
	deny         *token.Denylist
	own, ext     *target
	jwksHits     atomic.Int64
	attackerHits atomic.Int64
	attackerURL  string
	attacker     *ecdsa.PrivateKey
}

// target is an issuer whose tokens the attacks forge: the test holds its
// private key, so a token it signs is valid unless the attack makes it not.
type target struct {
	name, iss, aud, kid string
	priv                *ecdsa.PrivateKey
	env                 *attackEnv
}

func newAttackEnv(t testing.TB) *attackEnv {
	t.Helper()
	e := &attackEnv{clock: newFakeClock()}
	e.own = &target{name: "own", iss: testIssuer, aud: token.DefaultAudience, kid: ownKID, priv: mustECKey(t), env: e}
	e.ext = &target{name: "external", iss: extIssuer, aud: "tollgate", kid: extKID, priv: mustECKey(t), env: e}
	e.attacker = mustECKey(t)

	extJWKS := mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &e.ext.priv.PublicKey, KeyID: extKID, Algorithm: "ES256", Use: "sig"},
	}})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.jwksHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(extJWKS)
	}))
	t.Cleanup(idp.Close)
	evilJWKS := mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &e.attacker.PublicKey, KeyID: "evil", Algorithm: "ES256", Use: "sig"},
	}})
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.attackerHits.Add(1)
		_, _ = w.Write(evilJWKS)
	}))
	t.Cleanup(evil.Close)
	e.attackerURL = evil.URL + "/jwks.json"

	store := &memKeys{}
	if err := store.CreateSigningKey(context.Background(), signingKeyRow(t, ownKID, e.own.priv, e.clock.Now())); err != nil {
		t.Fatal(err)
	}
	keys, err := token.NewKeyManager(context.Background(), store, token.KeyOptions{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.deny = token.NewDenylist(e.clock.Now)
	e.v, err = token.NewVerifier(token.VerifierOptions{
		Issuer: testIssuer, Keys: keys, Denylist: e.deny, Now: e.clock.Now,
		Trusted: []token.TrustedIssuer{{
			Issuer: extIssuer, JWKSURL: idp.URL + "/certs", Audience: "tollgate",
			Algorithms: []string{"ES256", "RS256"}, Typ: "at+jwt", DefaultPlan: "free",
		}},
		JWKS: token.JWKSOptions{RefetchInterval: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// signingKeyRow stores priv as an active tollgate signing key.
func signingKeyRow(t testing.TB, kid string, priv *ecdsa.PrivateKey, now time.Time) *tollgate.SigningKey {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tollgate.SigningKey{
		ID: kid, Algorithm: "ES256", Purpose: token.PurposeAccess, PrivateKey: der, PublicKey: pub,
		State: tollgate.KeyActive, CreatedAt: now.Add(-time.Hour), ActivateAt: now.Add(-time.Hour),
	}
}

func mustECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

var jtiSeq atomic.Int64

// claims returns a valid payload for the target.
func (tg *target) claims() map[string]any {
	now := tg.env.clock.Now().Unix()
	return map[string]any{
		"iss": tg.iss, "sub": "u-alice", "aud": tg.aud, "exp": now + 600, "iat": now, "nbf": now,
		"jti":       fmt.Sprintf("jti-%d", jtiSeq.Add(1)),
		"tenant_id": "t-acme", "role": "user", "scope": "infer:text", "plan": "free",
	}
}

// header returns a valid JOSE header for the target.
func (tg *target) header() map[string]any {
	return map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": tg.kid}
}

// with returns a copy of m with kv pairs set; a nil value deletes the key.
func with(m map[string]any, kv ...any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

// sign encodes header and claims (maps, or raw JSON strings) and signs
// them with the target's key.
func (tg *target) sign(t testing.TB, h, c any) string {
	t.Helper()
	return signES256(t, tg.priv, toJSON(t, h), toJSON(t, c))
}

func (tg *target) valid(t testing.TB) string { return tg.sign(t, tg.header(), tg.claims()) }

func toJSON(t testing.TB, v any) []byte {
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	return mustJSON(t, v)
}

func signES256(t testing.TB, priv *ecdsa.PrivateKey, h, c []byte) string {
	t.Helper()
	in := enc(h) + "." + enc(c)
	sig, err := jwt.SigningMethodES256.Sign(in, priv)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + enc(sig)
}

// refuse asserts the verifier refuses tok with EUnauthorized.
func (e *attackEnv) refuse(t *testing.T, name, tok string) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		p, err := e.v.Verify(context.Background(), tok)
		if err == nil {
			t.Fatalf("token accepted as %+v", p)
		}
		wantUnauthorized(t, err)
		// The message a client sees never echoes the token.
		for part := range strings.SplitSeq(tok, ".") {
			if len(part) >= 8 && strings.Contains(err.Error(), part) {
				t.Fatalf("error %q quotes the token", err)
			}
		}
	})
}

// accept asserts the verifier accepts tok.
func (e *attackEnv) accept(t *testing.T, tok string) *tollgate.Principal {
	t.Helper()
	p, err := e.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	return p
}

func strictDecode(s string) ([]byte, error) { return base64.RawURLEncoding.Strict().DecodeString(s) }
