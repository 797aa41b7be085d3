// Package token issues and verifies tollgate's JWT access tokens, manages
// their signing keys and JWKS, trusts external identity providers through
// their JWKS, and handles refresh tokens, API keys and revocation.
//
// # Exported API (stable; the HTTP layer and the CLI build on it)
//
// Keys, one set per purpose (PurposeAccess, PurposeInternal), generated on
// first start, PKCS#8 encrypted at rest when KeyOptions.Passphrase is set:
//
//	km, err := NewKeyManager(ctx, store.SigningKeys(), KeyOptions{Algorithm: ES256, Passphrase: p})
//	km.JWKS() []byte                        // GET /.well-known/jwks.json (cached bytes)
//	km.Algorithms() []string                // for openid-configuration
//	km.Rotate(ctx)                          // next key published now, signs after PublishDelay
//	km.RotateAfter(ctx, 0)                  // tollgate keys rotate: switch now
//	km.Reload(ctx); km.Start(ctx); km.Stop() // pick up rotations by the CLI or replicas
//
// Issuing (RFC 9068: typ at+jwt, kid, iss sub aud exp iat nbf jti
// tenant_id role scope plan):
//
//	iss, err := NewIssuer(accessKM, internalKM, IssuerOptions{Issuer: publicURL})
//	tok, exp, err := iss.Issue(ctx, AccessClaims{Subject: u.ID, TenantID: u.TenantID, Role: u.Role, Scopes: s, Plan: plan})
//	tok, exp, err := iss.IssueInternal(ctx, principal, "") // for upstreams, internal key
//
// Verifying, tollgate's own tokens and trusted external issuers:
//
//	v, err := NewVerifier(VerifierOptions{Issuer: publicURL, Keys: accessKM, Trusted: []TrustedIssuer{…}, Denylist: dl})
//	v.Start(ctx); defer v.Stop()   // background JWKS refresh, pruning
//	p, err := v.Verify(ctx, raw)   // *tollgate.Principal, shared read-only
//	v.RefreshJWKS(ctx)             // fetch every external JWKS now
//
// Every Verify failure is a *tollgate.Error with code EUnauthorized and a
// fixed message that never quotes the token. Revocation state lives in
// memory and is consulted on every Verify, cache hits included:
//
//	dl := NewDenylist(now); err := dl.Load(ctx, store.Revocations(), store.Users(), store.Tenants())
//	dl.RevokeToken(iss, jti, exp); dl.UnrevokeToken(iss, jti)
//	dl.RevokeUserTokens(userID, t); dl.DisableUser(id); dl.EnableUser(id); dl.SetUser(u)
//	dl.Check(p); dl.Prune(); dl.Len()
//
// Refresh tokens (opaque "tgr_" + 32 random bytes, stored as SHA-256,
// rotated on every use; reuse revokes the family) and API keys
// ("tg_<16 hex id>_<32 bytes base64url>", stored as SHA-256):
//
//	r := NewRefresher(store.RefreshTokens(), RefreshOptions{IdleTTL: 24 * time.Hour, AbsoluteTTL: 30 * 24 * time.Hour})
//	raw, rt, err := r.Start(ctx, userID, scopes)
//	raw, rt, err := r.Rotate(ctx, raw) // tollgate.ErrRefreshReused on replay
//	err := r.Revoke(ctx, raw)          // RFC 7009: unknown tokens are no error
//	raw, key := NewAPIKey(userID, name, now)
//	id, hash, err := ParseAPIKey(raw); ok := APIKeyMatches(stored, hash)
//	IsRefreshToken(raw), IsAPIKey(raw) // route a credential by its shape
//
// # Hardening
//
// The verifier closes the gaps golang-jwt leaves open by default (see
// shared/security/jwt-attacks.md): a size cap before parsing, a strict
// compact-JWS shape and canonical base64url, a header of exactly alg, typ
// and kid (every other field, such as crit, jku, x5u, jwk, x5c or cty,
// refuses the token, and keys never come from it; external issuers may
// also send the ignored certificate thumbprint x5t), the algorithm bound to
// the key found by exact kid lookup, typ "at+jwt" for tollgate's tokens,
// duplicate or case-variant JSON members refused, exp required and numeric,
// nbf and iat not in the future beyond the leeway, exact iss and aud, and
// no control characters in identity claims. golang-jwt then checks the
// signature and the registered claims a second time.
package token
