package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestJWKSMaxAgeBounds: the refresh schedule follows Cache-Control
// max-age, bounded by MinRefresh and MaxRefresh.
func TestJWKSMaxAgeBounds(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	j, err := publicJWK("k1", ES256, &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"keys": []jwk{j}})
	cases := map[string]struct {
		cc   string
		want time.Duration // time until refresh: 3/4 of the bounded max-age
	}{
		"in_bounds":  {"public, max-age=600", 450 * time.Second},
		"too_short":  {"max-age=1", 45 * time.Second},
		"too_long":   {"max-age=31536000", 45 * time.Minute},
		"absent":     {"", 45 * time.Minute},
		"no_store":   {"no-store", 45 * time.Minute},
		"bad_number": {"max-age=-5", 45 * time.Minute},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", c.cc)
				_, _ = w.Write(body)
			}))
			defer srv.Close()
			now := time.Unix(1_800_000_000, 0)
			opts := JWKSOptions{}
			if err := opts.fill(); err != nil {
				t.Fatal(err)
			}
			rk := &remoteKeys{url: srv.URL, algs: []string{ES256}, opts: opts, now: func() time.Time { return now }}
			if err := rk.refresh(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			st := rk.state.Load()
			if got := st.refreshAt.Sub(now); got != c.want {
				t.Fatalf("refresh in %v, want %v", got, c.want)
			}
			if rk.cached("k1") == nil {
				t.Fatal("key not installed")
			}
		})
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := publicJWK("good", ES256, &k.PublicKey)
	enc, _ := publicJWK("enc", ES256, &k.PublicKey)
	enc.Use = "enc"
	wrongAlg, _ := publicJWK("wrong-alg", ES256, &k.PublicKey)
	wrongAlg.Alg = "RS256"
	badKID, _ := publicJWK("bad kid!", ES256, &k.PublicKey)
	offCurve, _ := publicJWK("off-curve", ES256, &k.PublicKey)
	offCurve.Y = offCurve.X
	body, _ := json.Marshal(map[string]any{"keys": []any{
		good, enc, wrongAlg, badKID, offCurve,
		map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
		map[string]any{"kty": "unknown", "kid": "x"},
	}})
	keys, err := parseJWKS(body, []string{ES256})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys["good"] == nil {
		t.Fatalf("usable keys = %v, want only good", keys)
	}
	if _, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`), []string{ES256}); err == nil {
		t.Fatal("a JWKS of only an HMAC secret accepted")
	}
}
