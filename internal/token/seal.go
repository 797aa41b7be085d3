package token

// Seal encrypts a secret other than a signing key for storage the way
// signing keys are sealed (argon2id from the passphrase, AES-256-GCM), bound
// to id so that a blob cannot be moved to another row.
func Seal(passphrase, id string, secret []byte) ([]byte, error) {
	return sealKey(passphrase, id, secret)
}

// Open returns the secret Seal sealed for id, or an error for a wrong
// passphrase, another id or a corrupt blob.
func Open(passphrase, id string, blob []byte) ([]byte, error) {
	return openKey(passphrase, id, blob)
}
