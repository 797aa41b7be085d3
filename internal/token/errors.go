package token

import "github.com/tollgate/tollgate/internal/tollgate"

// Reasons a token is refused. They are the user-visible messages of the
// EUnauthorized errors that Verify returns: short, fixed texts that never
// quote the token or a key.
var (
	errMissing     = unauthorized("missing token")
	errMalformed   = unauthorized("malformed token")
	errHeader      = unauthorized("token header not accepted")
	errAlgorithm   = unauthorized("token algorithm not accepted")
	errUnknownKey  = unauthorized("token signed with an unknown key")
	errSignature   = unauthorized("token signature invalid")
	errIssuer      = unauthorized("token issuer not trusted")
	errAudience    = unauthorized("token audience not accepted")
	errType        = unauthorized("token type not accepted")
	errExpired     = unauthorized("token expired")
	errNotYetValid = unauthorized("token not yet valid")
	errClaims      = unauthorized("token claims invalid")
	errRevoked     = unauthorized("token revoked")
	errUserBlocked = unauthorized("user disabled")
	errTenantOff   = unauthorized("tenant disabled")
)

func unauthorized(msg string) *tollgate.Error {
	return &tollgate.Error{Code: tollgate.EUnauthorized, Message: msg}
}
