// Command jwkpem reads a JWKS (a file, or an http:// URL on a loopback
// address) and writes the public key with the given kid, or the only EC
// P-256 key, as a PEM "PUBLIC KEY" block: the form HAProxy's jwt_verify
// loads.
package main

import (
	"crypto/ecdh"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func main() {
	src := flag.String("jwks", "", "JWKS file or http://127.0.0.1:PORT/.well-known/jwks.json (required)")
	kid := flag.String("kid", "", "key id to export; empty takes the only ES256 key")
	tok := flag.String("token", "", "take the key id from this JWS's header instead of --kid")
	flag.Parse()
	if *tok != "" {
		k, err := kidOf(*tok)
		if err != nil {
			fmt.Fprintln(os.Stderr, "jwkpem:", err)
			os.Exit(1)
		}
		*kid = k
	}
	if err := run(*src, *kid, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "jwkpem:", err)
		os.Exit(1)
	}
}

func run(src, kid string, out io.Writer) error {
	if src == "" {
		return errors.New("--jwks is required")
	}
	raw, err := load(src)
	if err != nil {
		return err
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return fmt.Errorf("decode jwks: %w", err)
	}
	var picked []jwk
	for _, k := range set.Keys {
		if k.Kty == "EC" && k.Crv == "P-256" && (kid == "" || k.Kid == kid) {
			picked = append(picked, k)
		}
	}
	if len(picked) != 1 {
		return fmt.Errorf("want exactly one EC P-256 key (kid %q), found %d", kid, len(picked))
	}
	der, err := marshal(picked[0])
	if err != nil {
		return err
	}
	return pem.Encode(out, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// kidOf reads the kid from the protected header of a compact JWS.
func kidOf(tok string) (string, error) {
	head, _, ok := strings.Cut(tok, ".")
	if !ok {
		return "", errors.New("--token is not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", fmt.Errorf("token header: %w", err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil || h.Kid == "" {
		return "", errors.New("token header has no kid")
	}
	return h.Kid, nil
}

func load(src string) ([]byte, error) {
	if !strings.HasPrefix(src, "http://") {
		return os.ReadFile(src)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(src)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", src, res.Status)
	}
	return io.ReadAll(io.LimitReader(res.Body, 1<<20))
}

// marshal turns the JWK coordinates into a PKIX SubjectPublicKeyInfo.
func marshal(k jwk) ([]byte, error) {
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil {
		return nil, fmt.Errorf("x: %w", err)
	}
	y, err := base64.RawURLEncoding.DecodeString(k.Y)
	if err != nil {
		return nil, fmt.Errorf("y: %w", err)
	}
	if len(x) != 32 || len(y) != 32 {
		return nil, errors.New("P-256 coordinates must be 32 bytes each")
	}
	point := append(append([]byte{4}, x...), y...)
	pub, err := ecdh.P256().NewPublicKey(point)
	if err != nil {
		return nil, fmt.Errorf("not a P-256 point: %w", err)
	}
	return x509.MarshalPKIXPublicKey(pub)
}
