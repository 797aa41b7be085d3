package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestJWTAttacks turns every row of shared/security/jwt-attacks.md into
// subtests, each run against tollgate's own tokens and against a trusted
// external issuer served by an httptest JWKS server. Row 13 (a tenant-A
// token on a tenant-B resource) is an authorization decision of the HTTP
// layer, not of the verifier, and is tested there.
func TestJWTAttacks(t *testing.T) {
	rows := []struct {
		name string
		run  func(t *testing.T, e *attackEnv, tg *target)
	}{
		{"row01_alg_none", row01}, {"row02_signature_stripped", row02}, {"row03_hs256_public_key", row03},
		{"row04_ecdsa_zero_signature", row04}, {"row05_ecdsa_malleability", row05}, {"row06_embedded_key", row06},
		{"row07_jku_x5u", row07}, {"row08_kid_injection", row08}, {"row09_random_kid", row09},
		{"row10_crit", row10}, {"row11_times", row11}, {"row12_iss_aud_typ", row12},
		{"row14_number_as_string", row14}, {"row15_duplicate_claims", row15}, {"row16_noncanonical_base64", row16},
		{"row17_oversized", row17}, {"row18_jwe_and_json_serialization", row18}, {"row19_nested_jwt", row19},
		{"row20_weak_hmac_secret", row20}, {"row21_control_characters", row21}, {"row22_json_types", row22},
		{"row23_revoked_jti", row23},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			for _, which := range []string{"own", "external"} {
				t.Run(which, func(t *testing.T) {
					e := newAttackEnv(t)
					tg := e.own
					if which == "external" {
						tg = e.ext
					}
					// Control: the target's genuine token passes, so every
					// refusal below is the attack's doing.
					e.accept(t, tg.valid(t))
					row.run(t, e, tg)
				})
			}
		})
	}
}

func seg(t testing.TB, v any) string { return enc(toJSON(t, v)) }

func row01(t *testing.T, e *attackEnv, tg *target) {
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		h := with(tg.header(), "alg", alg)
		unsigned := seg(t, h) + "." + seg(t, tg.claims()) + "."
		e.refuse(t, alg+"_empty_signature", unsigned)
		e.refuse(t, alg+"_with_signature", unsigned+enc([]byte("sig")))
	}
}

func row02(t *testing.T, e *attackEnv, tg *target) {
	tok := tg.valid(t)
	i := strings.LastIndexByte(tok, '.')
	e.refuse(t, "empty", tok[:i+1])
	e.refuse(t, "stripped", tok[:i])
	e.refuse(t, "truncated", tok[:len(tok)-8])
	in := seg(t, with(tg.header(), "alg", "HS256")) + "." + seg(t, tg.claims())
	e.refuse(t, "hs256_empty_key", in+"."+enc(hmacSHA256(nil, in)))
	// No HMAC key can be configured at all, so an empty or short one can
	// never be started with.
	for _, alg := range []string{"HS256", "none"} {
		t.Run("config_"+alg, func(t *testing.T) {
			_, err := token.NewVerifier(token.VerifierOptions{Trusted: []token.TrustedIssuer{{
				Issuer: extIssuer, JWKSURL: "https://idp.example.test/certs", Audience: "tollgate", Algorithms: []string{alg},
			}}})
			if err == nil {
				t.Fatalf("verifier started with algorithm %s", alg)
			}
		})
	}
}

func hmacSHA256(key []byte, in string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(in))
	return m.Sum(nil)
}

func row03(t *testing.T, e *attackEnv, tg *target) {
	der, err := x509.MarshalPKIXPublicKey(&tg.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwks := mustJSON(t, jose.JSONWebKey{Key: &tg.priv.PublicKey, KeyID: tg.kid, Algorithm: "ES256", Use: "sig"})
	for name, secret := range map[string][]byte{"pem": pemKey, "der": der, "jwk_json": jwks} {
		in := seg(t, with(tg.header(), "alg", "HS256")) + "." + seg(t, tg.claims())
		e.refuse(t, "hs256_"+name, in+"."+enc(hmacSHA256(secret, in)))
	}
	// Another asymmetric algorithm named in the header for our key.
	e.refuse(t, "rs256_header_on_ec_key", tg.sign(t, with(tg.header(), "alg", "RS256"), tg.claims()))
	e.refuse(t, "es384_header_on_p256_key", tg.sign(t, with(tg.header(), "alg", "ES384"), tg.claims()))
}

func row04(t *testing.T, e *attackEnv, tg *target) {
	in := seg(t, tg.header()) + "." + seg(t, tg.claims())
	e.refuse(t, "zero_r_s", in+"."+enc(make([]byte, 64)))
	n := elliptic.P256().Params().N.FillBytes(make([]byte, 32))
	e.refuse(t, "r_s_equal_n", in+"."+enc(append(append([]byte{}, n...), n...)))
}

// row05: s → n−s is a second valid signature of the same token. The maths
// accept it, so revocation is keyed on (iss, jti): revoking the original
// refuses the malleated twin too.
func row05(t *testing.T, e *attackEnv, tg *target) {
	c := tg.claims()
	tok := tg.sign(t, tg.header(), c)
	twin := malleate(t, tok)
	if twin == tok {
		t.Fatal("malleated token equals the original")
	}
	e.accept(t, tok)
	p := e.accept(t, twin)
	e.deny.RevokeToken(p.Issuer, p.JTI, p.Expires)
	e.refuse(t, "original_after_revoke", tok)
	e.refuse(t, "malleated_after_revoke", twin)
}

func malleate(t testing.TB, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := strictDecode(tok[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %v", err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	out := append(append([]byte{}, sig[:32]...), s.FillBytes(make([]byte, 32))...)
	return tok[:i+1] + enc(out)
}

func row06(t *testing.T, e *attackEnv, tg *target) {
	evil := e.attacker
	jwk := jose.JSONWebKey{Key: &evil.PublicKey, KeyID: "evil", Algorithm: "ES256", Use: "sig"}
	cert := selfSigned(t, evil)
	for _, kid := range []string{"evil", tg.kid} {
		h := with(tg.header(), "kid", kid, "jwk", jwk)
		e.refuse(t, "jwk_kid_"+kid, signES256(t, evil, toJSON(t, h), toJSON(t, tg.claims())))
		h = with(tg.header(), "kid", kid, "x5c", []string{enc(cert)})
		e.refuse(t, "x5c_kid_"+kid, signES256(t, evil, toJSON(t, h), toJSON(t, tg.claims())))
	}
}

func selfSigned(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func row07(t *testing.T, e *attackEnv, tg *target) {
	before := e.jwksHits.Load()
	for _, field := range []string{"jku", "x5u"} {
		h := with(tg.header(), "kid", "evil", field, e.attackerURL)
		e.refuse(t, field+"_attacker_key", signES256(t, e.attacker, toJSON(t, h), toJSON(t, tg.claims())))
		e.refuse(t, field+"_own_key", tg.sign(t, with(tg.header(), field, e.attackerURL), tg.claims()))
	}
	if n := e.attackerHits.Load(); n != 0 {
		t.Errorf("attacker's server got %d requests, want 0", n)
	}
	if n := e.jwksHits.Load() - before; n != 0 {
		t.Errorf("issuer's JWKS fetched %d more times, want 0", n)
	}
}

func row08(t *testing.T, e *attackEnv, tg *target) {
	before := e.jwksHits.Load()
	kids := map[string]any{
		"path_traversal": "../../../dev/null", "sql_injection": "x' UNION SELECT '1';--",
		"command_injection": "|sleep 10", "empty": "", "too_long": strings.Repeat("a", 65),
		"nul": "own\x00key", "number": 1,
	}
	for name, kid := range kids {
		e.refuse(t, name, tg.sign(t, with(tg.header(), "kid", kid), tg.claims()))
	}
	e.refuse(t, "missing", tg.sign(t, with(tg.header(), "kid", nil), tg.claims()))
	if n := e.jwksHits.Load() - before; n != 0 {
		t.Errorf("malformed kids caused %d JWKS fetches, want 0", n)
	}
}

// row09: a new random kid on every request. For the external issuer, at
// most one refetch per interval, concurrent refetches merged.
func row09(t *testing.T, e *attackEnv, tg *target) {
	e.clock.Add(2 * time.Minute) // a refetch is allowed again
	before := e.jwksHits.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		tok := tg.sign(t, with(tg.header(), "kid", fmt.Sprintf("random-%d", i)), tg.claims())
		wg.Go(func() {
			if _, err := e.v.Verify(context.Background(), tok); err == nil {
				errs <- fmt.Errorf("token with random kid %d accepted", i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 16 {
		e.refuse(t, fmt.Sprintf("sequential_%d", i), tg.sign(t, with(tg.header(), "kid", fmt.Sprintf("seq-%d", i)), tg.claims()))
	}
	want := int64(0)
	if tg.name == "external" {
		want = 1
	}
	if n := e.jwksHits.Load() - before; n != want {
		t.Errorf("80 unknown kids caused %d JWKS fetches, want %d", n, want)
	}
}

func row10(t *testing.T, e *attackEnv, tg *target) {
	e.refuse(t, "crit_unknown", tg.sign(t, with(tg.header(), "crit", []string{"x-unknown"}, "x-unknown", true), tg.claims()))
	e.refuse(t, "crit_exp", tg.sign(t, with(tg.header(), "crit", []string{"exp"}), tg.claims()))
	e.refuse(t, "crit_empty", tg.sign(t, with(tg.header(), "crit", []string{}), tg.claims()))
}

// row11: the verifier's leeway is 30 s (default; at most 60 s).
func row11(t *testing.T, e *attackEnv, tg *target) {
	now := e.clock.Now().Unix()
	e.refuse(t, "exp_past", tg.sign(t, tg.header(), with(tg.claims(), "exp", now-31)))
	e.refuse(t, "exp_past_long_ago", tg.sign(t, tg.header(), with(tg.claims(), "exp", now-86400)))
	e.refuse(t, "nbf_future", tg.sign(t, tg.header(), with(tg.claims(), "nbf", now+31)))
	e.refuse(t, "iat_future", tg.sign(t, tg.header(), with(tg.claims(), "iat", now+31)))
	e.refuse(t, "exp_missing", tg.sign(t, tg.header(), with(tg.claims(), "exp", nil)))
	e.refuse(t, "exp_zero", tg.sign(t, tg.header(), with(tg.claims(), "exp", 0)))
	t.Run("within_leeway_accepted", func(t *testing.T) {
		e.accept(t, tg.sign(t, tg.header(), with(tg.claims(), "exp", now-29, "nbf", now+29, "iat", now+29)))
	})
	t.Run("leeway_over_60s_refused_by_config", func(t *testing.T) {
		if _, err := token.NewVerifier(token.VerifierOptions{Leeway: 61 * time.Second}); err == nil {
			t.Fatal("verifier started with a 61 s leeway")
		}
	})
}

func row12(t *testing.T, e *attackEnv, tg *target) {
	other := e.ext
	if tg == e.ext {
		other = e.own
	}
	c := tg.claims()
	e.refuse(t, "iss_wrong", tg.sign(t, tg.header(), with(c, "iss", "https://evil.example.test")))
	e.refuse(t, "iss_trailing_slash", tg.sign(t, tg.header(), with(c, "iss", tg.iss+"/")))
	e.refuse(t, "iss_missing", tg.sign(t, tg.header(), with(c, "iss", nil)))
	e.refuse(t, "iss_of_other_issuer", tg.sign(t, tg.header(), with(c, "iss", other.iss)))
	e.refuse(t, "key_of_other_issuer", other.sign(t, with(other.header(), "kid", tg.kid), c))
	e.refuse(t, "kid_of_other_issuer", tg.sign(t, with(tg.header(), "kid", other.kid), c))
	e.refuse(t, "aud_wrong", tg.sign(t, tg.header(), with(c, "aud", "someone-else")))
	e.refuse(t, "aud_array_without_us", tg.sign(t, tg.header(), with(c, "aud", []string{"a", "b"})))
	e.refuse(t, "aud_empty_array", tg.sign(t, tg.header(), with(c, "aud", []string{})))
	e.refuse(t, "aud_missing", tg.sign(t, tg.header(), with(c, "aud", nil)))
	e.refuse(t, "typ_JWT", tg.sign(t, with(tg.header(), "typ", "JWT"), c))
	e.refuse(t, "typ_missing", tg.sign(t, with(tg.header(), "typ", nil), c))
	e.refuse(t, "typ_refresh", tg.sign(t, with(tg.header(), "typ", "rt+jwt"), c))
	idToken := with(c, "aud", "web-client", "nonce", "n-0S6_WzA2Mj", "auth_time", c["iat"])
	e.refuse(t, "id_token", tg.sign(t, with(tg.header(), "typ", "JWT"), idToken))
	e.refuse(t, "refresh_token", token.RefreshPrefix+enc(make([]byte, 32)))
	e.refuse(t, "api_key", token.APIKeyPrefix+"0123456789abcdef_"+enc(make([]byte, 32)))
}

func row14(t *testing.T, e *attackEnv, tg *target) {
	now := e.clock.Now().Unix()
	e.refuse(t, "exp_string", tg.sign(t, tg.header(), with(tg.claims(), "exp", "1999999999")))
	e.refuse(t, "iat_string", tg.sign(t, tg.header(), with(tg.claims(), "iat", fmt.Sprint(now))))
	e.refuse(t, "nbf_string", tg.sign(t, tg.header(), with(tg.claims(), "nbf", fmt.Sprint(now))))
}

func row15(t *testing.T, e *attackEnv, tg *target) {
	body := strings.TrimSuffix(string(toJSON(t, with(tg.claims(), "sub", nil))), "}")
	e.refuse(t, "sub_twice", tg.sign(t, tg.header(), body+`,"sub":"alice","sub":"admin"}`))
	e.refuse(t, "sub_and_SUB", tg.sign(t, tg.header(), body+`,"sub":"a","SUB":"admin"}`))
	e.refuse(t, "sub_and_Sub", tg.sign(t, tg.header(), body+`,"Sub":"admin","sub":"a"}`))
	e.refuse(t, "role_twice", tg.sign(t, tg.header(), body+`,"sub":"a","role":"user","role":"admin"}`))
	e.refuse(t, "only_SUB", tg.sign(t, tg.header(), body+`,"SUB":"admin"}`))
	e.refuse(t, "sub_and_escaped_sub", tg.sign(t, tg.header(), body+`,"sub":"a","s\u0075b":"admin"}`))
	e.refuse(t, "sub_and_long_s_sub", tg.sign(t, tg.header(), body+`,"sub":"a","\u017fub":"admin"}`))
	h := fmt.Sprintf(`{"alg":"ES256","typ":"at+jwt","kid":%q`, tg.kid)
	e.refuse(t, "header_alg_twice", tg.sign(t, h+`,"alg":"none"}`, tg.claims()))
	e.refuse(t, "header_Kid", tg.sign(t, h+`,"Kid":"x"}`, tg.claims()))
	e.refuse(t, "nested_duplicate", tg.sign(t, tg.header(), body+`,"sub":"a","realm_access":{"roles":["user"],"roles":["admin"]}}`))
}

func row16(t *testing.T, e *attackEnv, tg *target) {
	tok := tg.valid(t)
	i := strings.LastIndexByte(tok, '.')
	sig := tok[i+1:] // 86 chars for 64 bytes: the last carries 4 spare bits
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	flipped := tok[:len(tok)-1] + string(alphabet[last^1])
	if _, err := strictDecode(flipped[i+1:]); err == nil {
		t.Fatal("test bug: flipped signature decodes strictly")
	}
	e.refuse(t, "spare_bits_flipped", flipped)
	e.refuse(t, "padding", tok+"==")
	e.refuse(t, "trailing_newline", tok+"\n")
	e.refuse(t, "trailing_crlf", tok+"\r\n")
	e.refuse(t, "leading_space", " "+tok)
	e.refuse(t, "inner_newline", tok[:10]+"\n"+tok[10:])
	e.refuse(t, "std_base64_alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(tok)+"+/")
	h, rest, _ := strings.Cut(tok, ".")
	e.refuse(t, "header_padded", h+"=."+rest)
}

func row17(t *testing.T, e *attackEnv, tg *target) {
	e.refuse(t, "8MiB_header", "eyJ"+strings.Repeat("A", 8<<20)+"."+seg(t, tg.claims())+".AAAA")
	e.refuse(t, "1MiB_dots", strings.Repeat(".", 1<<20))
	big := with(tg.claims(), "pad", strings.Repeat("x", 9<<10))
	e.refuse(t, "validly_signed_9KiB", tg.sign(t, tg.header(), big))
}

func row18(t *testing.T, e *attackEnv, tg *target) {
	jwe := seg(t, map[string]any{"alg": "RSA-OAEP", "enc": "A256GCM", "kid": tg.kid}) + ".a2V5.aXY.Y2lwaGVy.dGFn"
	e.refuse(t, "jwe_5_segments", jwe)
	pbes := map[string]any{"alg": "PBES2-HS512+A256KW", "enc": "A256GCM", "p2c": 2147483647, "p2s": "c2FsdA", "kid": tg.kid}
	e.refuse(t, "pbes2_jwe", seg(t, pbes)+".a2V5.aXY.Y2lwaGVy.dGFn")
	e.refuse(t, "pbes2_as_jws", tg.sign(t, pbes, tg.claims()))
	tok := tg.valid(t)
	parts := strings.Split(tok, ".")
	flat := fmt.Sprintf(`{"payload":%q,"protected":%q,"signature":%q}`, parts[1], parts[0], parts[2])
	e.refuse(t, "json_flattened", flat)
	e.refuse(t, "json_general", fmt.Sprintf(`{"payload":%q,"signatures":[{"protected":%q,"signature":%q}]}`, parts[1], parts[0], parts[2]))
}

func row19(t *testing.T, e *attackEnv, tg *target) {
	e.refuse(t, "cty_JWT", tg.sign(t, with(tg.header(), "cty", "JWT"), tg.claims()))
	inner := tg.valid(t)
	e.refuse(t, "payload_is_jwt", signES256(t, tg.priv, toJSON(t, tg.header()), []byte(inner)))
	e.refuse(t, "payload_is_jwt_string", tg.sign(t, tg.header(), fmt.Sprintf("%q", inner)))
	e.refuse(t, "cty_JWT_payload_jwt", signES256(t, tg.priv, toJSON(t, with(tg.header(), "cty", "JWT")), []byte(inner)))
}

func row20(t *testing.T, e *attackEnv, tg *target) {
	for _, secret := range []string{"secret", "your-256-bit-secret", "password", "changeme", "tollgate", "", "0123456789abcdef0123456789abcdef"} {
		in := seg(t, with(tg.header(), "alg", "HS256")) + "." + seg(t, tg.claims())
		e.refuse(t, "hs256_"+strings.ReplaceAll(secret, "-", "_"), in+"."+enc(hmacSHA256([]byte(secret), in)))
	}
}

func row21(t *testing.T, e *attackEnv, tg *target) {
	cases := map[string][2]string{
		"sub_nul": {"sub", "alice\x00admin"}, "sub_escape": {"sub", "alice\x1b[2J"}, "sub_newline": {"sub", "alice\nadmin"},
		"tenant_nul": {"tenant_id", "t-acme\x00"}, "tenant_c1": {"tenant_id", "t-acme\u0085"},
		"role_nul": {"role", "admin\x00"}, "role_del": {"role", "user\x7f"}, "sub_bom": {"sub", "\ufeffalice"},
	}
	for name, kv := range cases {
		e.refuse(t, name, tg.sign(t, tg.header(), with(tg.claims(), kv[0], kv[1])))
	}
	bom := "\ufeff"
	e.refuse(t, "bom_before_header", tg.sign(t, bom+string(toJSON(t, tg.header())), tg.claims()))
	e.refuse(t, "bom_before_payload", tg.sign(t, tg.header(), bom+string(toJSON(t, tg.claims()))))
	e.refuse(t, "invalid_utf8_sub", tg.sign(t, tg.header(), strings.Replace(string(toJSON(t, tg.claims())), "u-alice", "u-\xffalice", 1)))
}

func row22(t *testing.T, e *attackEnv, tg *target) {
	e.refuse(t, "alg_array", tg.sign(t, with(tg.header(), "alg", []string{"ES256"}), tg.claims()))
	e.refuse(t, "header_array", tg.sign(t, "["+string(toJSON(t, tg.header()))+"]", tg.claims()))
	e.refuse(t, "header_null", tg.sign(t, "null", tg.claims()))
	e.refuse(t, "typ_object", tg.sign(t, with(tg.header(), "typ", map[string]any{}), tg.claims()))
	e.refuse(t, "payload_array", tg.sign(t, tg.header(), "["+string(toJSON(t, tg.claims()))+"]"))
	e.refuse(t, "aud_object", tg.sign(t, tg.header(), with(tg.claims(), "aud", map[string]any{"aud": tg.aud})))
	e.refuse(t, "aud_array_of_numbers", tg.sign(t, tg.header(), with(tg.claims(), "aud", []any{tg.aud, 1})))
	e.refuse(t, "exp_true", tg.sign(t, tg.header(), with(tg.claims(), "exp", true)))
	e.refuse(t, "exp_null", tg.sign(t, tg.header(), strings.Replace(string(toJSON(t, tg.claims())), `"exp":`, `"exp":null,"x":`, 1)))
	e.refuse(t, "exp_nan_like", tg.sign(t, tg.header(), with(tg.claims(), "exp", 1e300)))
	e.refuse(t, "sub_number", tg.sign(t, tg.header(), with(tg.claims(), "sub", 42)))
	e.refuse(t, "sub_array", tg.sign(t, tg.header(), with(tg.claims(), "sub", []string{"a", "admin"})))
	e.refuse(t, "role_object", tg.sign(t, tg.header(), with(tg.claims(), "role", map[string]any{"x": 1})))
	e.refuse(t, "trailing_data", tg.sign(t, tg.header(), string(toJSON(t, tg.claims()))+"{}"))
}

// row23: revoking a jti refuses the token at once, also when it was
// verified (and cached) before; a refresh token replayed after rotation
// (on the SQLite store) is refused and revokes its family. See also
// TestRefreshReplayRevokesFamily and TestRevocationFromStore.
func row23(t *testing.T, e *attackEnv, tg *target) {
	if tg.name == "own" {
		t.Run("refresh_replay_sqlite", func(t *testing.T) {
			ctx := context.Background()
			r, _, _, u := newRefresher(t)
			first, _, err := r.Start(ctx, u.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			second, _, err := r.Rotate(ctx, first)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := r.Rotate(ctx, first); !errors.Is(err, tollgate.ErrRefreshReused) {
				t.Fatalf("replay: %v, want ErrRefreshReused", err)
			}
			_, _, err = r.Rotate(ctx, second)
			wantUnauthorized(t, err)
		})
	}
	tok := tg.valid(t)
	p := e.accept(t, tok)
	e.accept(t, tok) // now a cache hit
	e.deny.RevokeToken(p.Issuer, p.JTI, p.Expires)
	e.refuse(t, "revoked_jti_cached", tok)
	e.refuse(t, "revoked_jti_malleated", malleate(t, tok))
	other := e.accept(t, tg.valid(t))
	if other.JTI == p.JTI {
		t.Fatal("test bug: same jti")
	}
}
