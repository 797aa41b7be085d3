package token

import (
	"cmp"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// reload reads the store, applies due state changes and publishes a new
// snapshot. The caller holds m.mu.
func (m *KeyManager) reload(ctx context.Context) error {
	rows, err := m.store.SigningKeys(ctx, m.opts.Purpose)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	now := m.opts.Now()
	slices.SortFunc(rows, func(a, b *tollgate.SigningKey) int {
		return cmp.Or(a.ActivateAt.Compare(b.ActivateAt), a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})

	// cur signs: the latest activated key that is not retired (on equal
	// ActivateAt, the later created). Every non-retired key before it in
	// this order is replaced by it.
	var cur *tollgate.SigningKey
	curIdx := -1
	for i, r := range rows {
		if r.State != tollgate.KeyRetired && !r.ActivateAt.After(now) {
			cur, curIdx = r, i
		}
	}
	set := &keySet{byKID: map[string]*ownKey{}}
	var pub []jwk
	for i, r := range rows {
		if r.State == tollgate.KeyRetired && !r.RemoveAfter.IsZero() && r.RemoveAfter.Before(now) {
			if err := m.store.DeleteSigningKey(ctx, r.ID); err != nil && tollgate.ErrorCode(err) != tollgate.ENotFound {
				return fmt.Errorf("delete expired signing key: %w", err)
			}
			delete(m.loaded, r.ID)
			continue
		}
		if err := m.advance(ctx, r, cur, i < curIdx); err != nil {
			return err
		}
		k, err := m.load(r)
		if err != nil {
			return err
		}
		j, err := publicJWK(k.kid, k.alg, k.pub)
		if err != nil {
			return err
		}
		set.keys = append(set.keys, k)
		set.byKID[k.kid] = k
		pub = append(pub, j)
	}
	if set.jwks, err = encodeJWKS(pub); err != nil {
		return err
	}
	m.snap.Store(set)
	return nil
}

// advance promotes the current key to active and retires the keys it
// replaced, writing the changes to the store. Every replica computes the
// same changes from the same rows, so concurrent reloads agree.
func (m *KeyManager) advance(ctx context.Context, r, cur *tollgate.SigningKey, replaced bool) error {
	switch {
	case cur == nil || r.State == tollgate.KeyRetired:
		return nil
	case r == cur && r.State == tollgate.KeyNext:
		r.State = tollgate.KeyActive
	case replaced:
		r.State = tollgate.KeyRetired
		r.RetiredAt = cur.ActivateAt
		r.RemoveAfter = cur.ActivateAt.Add(m.opts.TokenTTL + m.opts.Leeway)
	default:
		return nil
	}
	if err := m.store.UpdateSigningKey(ctx, r); err != nil {
		return fmt.Errorf("update signing key state: %w", err)
	}
	return nil
}

// load turns a stored key into an ownKey, decrypting it once per kid.
func (m *KeyManager) load(r *tollgate.SigningKey) (*ownKey, error) {
	k := m.loaded[r.ID]
	if k == nil {
		method, ok := asymmetricMethods[r.Algorithm]
		if !ok || !validKID(r.ID) {
			return nil, fmt.Errorf("signing key %s: algorithm %q not supported", r.ID, r.Algorithm)
		}
		der := r.PrivateKey
		if r.Encrypted {
			if m.opts.Passphrase == "" {
				return nil, fmt.Errorf("signing key %s is encrypted: configure its passphrase", r.ID)
			}
			var err error
			if der, err = openKey(m.opts.Passphrase, r.ID, r.PrivateKey); err != nil {
				return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
			}
		}
		priv, err := parsePrivateKey(der, r.Algorithm)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
		}
		if len(r.PublicKey) > 0 {
			pub, err := x509.ParsePKIXPublicKey(r.PublicKey)
			if err != nil || !samePublic(pub, priv.Public()) {
				return nil, fmt.Errorf("signing key %s: public key does not match private key", r.ID)
			}
		}
		k = &ownKey{kid: r.ID, alg: r.Algorithm, method: method, priv: priv, pub: priv.Public()}
		m.loaded[r.ID] = k
	}
	// State may change between reloads: publish a fresh copy, never mutate
	// a key a reader of the previous snapshot holds.
	c := *k
	c.activateAt = r.ActivateAt
	c.retired = r.State == tollgate.KeyRetired
	return &c, nil
}

func samePublic(a, b any) bool {
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// validKID reports whether kid matches [A-Za-z0-9_-]{1,64}.
func validKID(kid string) bool {
	if len(kid) == 0 || len(kid) > 64 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		if !isB64URL(kid[i]) {
			return false
		}
	}
	return true
}

// isB64URLString reports whether s is non-empty and only base64url
// characters; the base64 decoders skip CR and LF, this does not.
func isB64URLString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isB64URL(s[i]) {
			return false
		}
	}
	return s != ""
}

func isB64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// retireAll retires every published key that is not yet retired, as of
// now. The caller holds m.mu.
func (m *KeyManager) retireAll(ctx context.Context, now time.Time) error {
	for _, k := range m.snap.Load().keys {
		if k.retired {
			continue
		}
		r := &tollgate.SigningKey{
			ID: k.kid, State: tollgate.KeyRetired, ActivateAt: k.activateAt,
			RetiredAt: now, RemoveAfter: now.Add(m.opts.TokenTTL + m.opts.Leeway),
		}
		if err := m.store.UpdateSigningKey(ctx, r); err != nil {
			return fmt.Errorf("retire signing key: %w", err)
		}
	}
	return nil
}
