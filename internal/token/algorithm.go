package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Algorithms tollgate signs its own tokens with.
const (
	ES256 = "ES256" // ECDSA P-256 with SHA-256; the default
	EdDSA = "EdDSA" // Ed25519
	RS256 = "RS256" // RSA 2048 PKCS#1 v1.5 with SHA-256
)

// rsaBits is the size of generated RSA keys; remote RSA keys below
// minRSABits are refused.
const (
	rsaBits    = 2048
	minRSABits = 2048
)

// asymmetricMethods are the only algorithms any verifier accepts. HMAC and
// "none" are absent on purpose: a key is always asymmetric and bound to one
// algorithm server-side.
var asymmetricMethods = map[string]jwt.SigningMethod{
	"ES256": jwt.SigningMethodES256,
	"ES384": jwt.SigningMethodES384,
	"ES512": jwt.SigningMethodES512,
	"EdDSA": jwt.SigningMethodEdDSA,
	"RS256": jwt.SigningMethodRS256,
	"RS384": jwt.SigningMethodRS384,
	"RS512": jwt.SigningMethodRS512,
	"PS256": jwt.SigningMethodPS256,
	"PS384": jwt.SigningMethodPS384,
	"PS512": jwt.SigningMethodPS512,
}

func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RS256:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	return nil, fmt.Errorf("signing algorithm %q not supported (want ES256, EdDSA or RS256)", alg)
}

// keyFitsAlg reports whether pub is a key of the kind alg needs.
func keyFitsAlg(pub crypto.PublicKey, alg string) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA" && len(k) == ed25519.PublicKeySize
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return k.N.BitLen() >= minRSABits
		}
	}
	return false
}

// parsePrivateKey parses PKCS#8 DER and checks it suits alg.
func parsePrivateKey(der []byte, alg string) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok || !keyFitsAlg(s.Public(), alg) {
		return nil, fmt.Errorf("private key does not suit %s", alg)
	}
	return s, nil
}
