package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Encrypted private keys are stored as
//
//	"tgk1" | salt (16) | nonce (12) | AES-256-GCM(PKCS#8 DER)
//
// with the AES key derived from the passphrase by argon2id and the key ID
// as additional data, so a blob cannot be moved to another key's row.
const (
	sealMagic   = "tgk1"
	sealSaltLen = 16
	argonTime   = 2
	argonMemory = 19 * 1024 // KiB
	argonLanes  = 1
)

var errSealed = errors.New("decrypt signing key: wrong passphrase or corrupt blob")

func sealKey(passphrase, kid string, der []byte) ([]byte, error) {
	salt := make([]byte, sealSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("seal signing key: %w", err)
	}
	aead, err := keyAEAD(passphrase, salt)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal signing key: %w", err)
	}
	out := make([]byte, 0, len(sealMagic)+len(salt)+len(nonce)+len(der)+aead.Overhead())
	out = append(out, sealMagic...)
	out = append(out, salt...)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, der, []byte(kid)), nil
}

func openKey(passphrase, kid string, blob []byte) ([]byte, error) {
	const head = len(sealMagic) + sealSaltLen + 12
	if len(blob) < head || string(blob[:len(sealMagic)]) != sealMagic {
		return nil, errSealed
	}
	salt := blob[len(sealMagic) : len(sealMagic)+sealSaltLen]
	aead, err := keyAEAD(passphrase, salt)
	if err != nil {
		return nil, err
	}
	nonce := blob[len(sealMagic)+sealSaltLen : head]
	der, err := aead.Open(nil, nonce, blob[head:], []byte(kid))
	if err != nil {
		return nil, errSealed
	}
	return der, nil
}

func keyAEAD(passphrase string, salt []byte) (cipher.AEAD, error) {
	k := argon2.IDKey([]byte(passphrase), salt, argonTime, argonMemory, argonLanes, 32)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("signing key cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("signing key cipher: %w", err)
	}
	return aead, nil
}
