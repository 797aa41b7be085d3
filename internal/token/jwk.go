package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

// jwk is the public part of a key as published in a JWKS (RFC 7517).
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func publicJWK(kid, alg string, pub crypto.PublicKey) (jwk, error) {
	j := jwk{Use: "sig", Alg: alg, Kid: kid}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		// Bytes is the uncompressed point: 0x04 || X || Y.
		raw, err := k.Bytes()
		if err != nil {
			return j, fmt.Errorf("encode public key: %w", err)
		}
		size := (len(raw) - 1) / 2
		j.Kty, j.Crv = "EC", k.Curve.Params().Name
		j.X, j.Y = b64(raw[1:1+size]), b64(raw[1+size:])
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64(k)
	case *rsa.PublicKey:
		j.Kty, j.N, j.E = "RSA", b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
	default:
		return j, fmt.Errorf("public key type %T not supported", pub)
	}
	return j, nil
}

// encodeJWKS renders a key set as {"keys":[…]}.
func encodeJWKS(keys []jwk) ([]byte, error) {
	if keys == nil {
		keys = []jwk{}
	}
	b, err := json.Marshal(struct {
		Keys []jwk `json:"keys"`
	}{keys})
	if err != nil {
		return nil, fmt.Errorf("encode jwks: %w", err)
	}
	return b, nil
}
