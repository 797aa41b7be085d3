package tollgate

import (
	"errors"
	"fmt"
)

// Error codes. They are the "code" field of an error response and map to
// HTTP statuses in one table (see internal/httpx). Callers branch on codes
// with ErrorCode, never on message text.
const (
	EInvalid      = "invalid_request_error" // 400: bad input
	EUnauthorized = "invalid_token"         // 401: missing, malformed, expired or revoked credentials
	EForbidden    = "insufficient_scope"    // 403: authenticated but not allowed
	ENotFound     = "not_found"             // 404: absent, or not the caller's
	EConflict     = "conflict"              // 409: already exists
	ETooLarge     = "request_too_large"     // 413: body over the route's limit
	ERateLimited  = "rate_limit_exceeded"   // 429: rate or concurrency limit
	EQuota        = "insufficient_quota"    // 429: budget spent
	EInternal     = "internal_error"        // 500: a bug or an unreachable store
	EUpstream     = "upstream_error"        // 502: the upstream failed
	EUnavailable  = "service_unavailable"   // 503: draining, not ready, or a store cannot be reached or written
	ETimeout      = "upstream_timeout"      // 504: the upstream took too long
)

// Error is an error a user may see. Message is safe to show; it never holds a
// secret or internal detail.
type Error struct {
	Code    string
	Message string
	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int
}

func (e *Error) Error() string {
	return fmt.Sprintf("tollgate error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for
// any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EInternal
	}
}

// ErrorMessage returns the user-safe message of err: the message of its
// *Error, or a generic text for any other error.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}

// Unavailable returns an EUnavailable error asking the caller to retry
// after retryAfter seconds (at least 1), with cause kept in its chain for
// the logs: ErrorCode and ErrorMessage read the *Error, never the cause.
func Unavailable(cause error, retryAfter int, format string, args ...any) error {
	e := &Error{Code: EUnavailable, Message: fmt.Sprintf(format, args...), RetryAfter: max(1, retryAfter)}
	if cause == nil {
		return e
	}
	return fmt.Errorf("%w: %w", e, cause)
}

// Sentinel errors for conditions callers branch on.
var (
	// ErrRefreshReused is returned by RefreshTokenStore.Consume when a refresh
	// token that was already rotated is presented again; the store has then
	// revoked the token's whole family.
	ErrRefreshReused = &Error{Code: EUnauthorized, Message: "refresh token reused; its family is revoked"}
	// ErrNoSession is the refusal of a request that carried no credential
	// to check: no bearer token, and no session cookie or one whose
	// session ended (a browser after a logout, an expiry or a
	// revocation). Nothing was guessed, so it does not count toward an IP
	// ban, and a browser's page load is sent to the login page instead.
	ErrNoSession = &Error{Code: EUnauthorized, Message: "not logged in or the session ended"}
)
