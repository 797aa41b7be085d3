package token

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Denylist is the in-memory revocation state that Verify consults on every
// call, cache hits included: revoked tokens by (issuer, jti) until they
// expire, per-user "tokens issued before T are invalid" marks and disabled
// users. It never calls the store per request. Its methods are safe for
// concurrent use; the HTTP layer calls the add methods on revocation and a
// cluster fan-out may call them for revocations made on other replicas.
type Denylist struct {
	now func() time.Time

	mu         sync.RWMutex
	tokens     map[tokenID]time.Time // → the token's expiry
	validAfter map[string]time.Time  // user id → tokens issued before are invalid
	disabled   map[string]struct{}
	tenantsOff map[string]struct{} // disabled tenants
	// deleted holds (iss, user id) of the UserJTI entries of tokens, so a
	// check looks it up without building the entry's jti.
	deleted map[tokenID]struct{}
}

// tokenID keys a revoked token. It is (iss, jti), never a hash of the
// token: a malleated ECDSA signature yields another valid token string with
// the same jti.
type tokenID struct{ iss, jti string }

// NewDenylist returns an empty denylist. now is the clock; nil means
// time.Now.
func NewDenylist(now func() time.Time) *Denylist {
	if now == nil {
		now = time.Now
	}
	return &Denylist{
		now:        now,
		tokens:     map[tokenID]time.Time{},
		validAfter: map[string]time.Time{},
		disabled:   map[string]struct{}{},
		tenantsOff: map[string]struct{}{},
		deleted:    map[tokenID]struct{}{},
	}
}

// Load adds the store's unexpired revocations and, when users is not nil,
// every user's TokensValidAfter mark and disabled flag, and when tenants
// is not nil every tenant's disabled flag.
func (d *Denylist) Load(ctx context.Context, revs tollgate.RevocationStore, users tollgate.UserStore, tenants tollgate.TenantStore) error {
	if revs != nil {
		list, err := revs.Revocations(ctx, d.now())
		if err != nil {
			return fmt.Errorf("load revocations: %w", err)
		}
		for _, r := range list {
			d.RevokeToken(r.Issuer, r.JTI, r.ExpiresAt)
		}
	}
	if users != nil {
		list, err := users.Users(ctx, "")
		if err != nil {
			return fmt.Errorf("load users for revocation: %w", err)
		}
		for _, u := range list {
			d.SetUser(u)
		}
	}
	if tenants != nil {
		list, err := tenants.Tenants(ctx)
		if err != nil {
			return fmt.Errorf("load tenants for revocation: %w", err)
		}
		for _, t := range list {
			if t.Disabled {
				d.DisableTenant(t.ID)
			} else {
				d.EnableTenant(t.ID)
			}
		}
	}
	return nil
}

// SessionJTI is the denylist entry, under tollgate's own issuer, that
// revokes every access token issued with a refresh-token family (their sid
// claim). Generated jtis have no colon, so it names no single token.
func SessionJTI(sid string) string { return "sid:" + sid }

// UserJTI is the denylist entry, under tollgate's own issuer, that revokes
// every token of a deleted user: its row, with its marks, is gone.
func UserJTI(userID string) string { return userPrefix + userID }

const userPrefix = "user:"

// RevokeToken denies the token (iss, jti) until exp.
func (d *Denylist) RevokeToken(iss, jti string, exp time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.tokens[tokenID{iss, jti}]; !ok || exp.After(old) {
		d.tokens[tokenID{iss, jti}] = exp
	}
	if uid, ok := strings.CutPrefix(jti, userPrefix); ok {
		d.deleted[tokenID{iss, uid}] = struct{}{}
	}
}

// UnrevokeToken removes a token's entry.
func (d *Denylist) UnrevokeToken(iss, jti string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.tokens, tokenID{iss, jti})
	if uid, ok := strings.CutPrefix(jti, userPrefix); ok {
		delete(d.deleted, tokenID{iss, uid})
	}
}

// RevokeUserTokens invalidates every token of user issued before t. iat
// has whole seconds, so t counts from the start of its second (as OIDC
// providers' not-before policies do): a token issued in that same second
// stays valid, which lets a fresh login right after the revocation work.
// A later t replaces an earlier one; an earlier one is ignored.
func (d *Denylist) RevokeUserTokens(userID string, t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.After(d.validAfter[userID]) {
		d.validAfter[userID] = t
	}
}

// DisableUser refuses every token of the user until EnableUser.
func (d *Denylist) DisableUser(userID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.disabled[userID] = struct{}{}
}

// EnableUser lifts DisableUser.
func (d *Denylist) EnableUser(userID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.disabled, userID)
}

// DisableTenant refuses every token of the tenant's users, tollgate's own
// and those of trusted issuers that map to it, until EnableTenant.
func (d *Denylist) DisableTenant(tenantID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tenantsOff[tenantID] = struct{}{}
}

// EnableTenant lifts DisableTenant.
func (d *Denylist) EnableTenant(tenantID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.tenantsOff, tenantID)
}

// TenantDisabled reports whether the tenant is disabled.
func (d *Denylist) TenantDisabled(tenantID string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, off := d.tenantsOff[tenantID]
	return off
}

// SetUser applies a user row: its disabled flag and TokensValidAfter mark.
func (d *Denylist) SetUser(u *tollgate.User) {
	if u.Disabled {
		d.DisableUser(u.ID)
	} else {
		d.EnableUser(u.ID)
	}
	if !u.TokensValidAfter.IsZero() {
		d.RevokeUserTokens(u.ID, u.TokensValidAfter)
	}
}

// Check returns an EUnauthorized error when p's token is revoked, its
// user disabled or its tenant disabled. User marks apply to tollgate's own
// users only: an external issuer's subjects are not tollgate user ids;
// its tenants are tollgate's tenants.
func (d *Denylist) Check(p *tollgate.Principal) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if p.JTI != "" {
		if _, ok := d.tokens[tokenID{p.Issuer, p.JTI}]; ok {
			return errRevoked
		}
	}
	if len(d.tenantsOff) > 0 {
		if _, off := d.tenantsOff[p.TenantID]; off {
			return errTenantOff
		}
	}
	if p.External {
		return nil
	}
	if p.SessionID != "" {
		if _, ok := d.tokens[tokenID{p.Issuer, SessionJTI(p.SessionID)}]; ok {
			return errRevoked
		}
	}
	if len(d.deleted) > 0 {
		if _, ok := d.deleted[tokenID{p.Issuer, p.UserID}]; ok {
			return errRevoked
		}
	}
	if _, ok := d.disabled[p.UserID]; ok {
		return errUserBlocked
	}
	if t, ok := d.validAfter[p.UserID]; ok && p.IssuedAt.Unix() < t.Unix() {
		return errRevoked
	}
	return nil
}

// Prune drops token entries that expired more than a minute ago (the
// longest leeway) and returns how many it dropped.
func (d *Denylist) Prune() int {
	cutoff := d.now().Add(-time.Minute)
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for id, exp := range d.tokens {
		if exp.Before(cutoff) {
			delete(d.tokens, id)
			if uid, ok := strings.CutPrefix(id.jti, userPrefix); ok {
				delete(d.deleted, tokenID{id.iss, uid})
			}
			n++
		}
	}
	return n
}

// Len returns the number of revoked tokens held.
func (d *Denylist) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.tokens)
}
