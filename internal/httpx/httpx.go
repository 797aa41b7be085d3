// Package httpx holds the HTTP plumbing shared by every handler of the
// gateway: the table from error codes to statuses, the OpenAI-shaped error
// body, and the adapter for handlers that return errors.
package httpx

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Status returns the HTTP status for an error code (500 for unknown codes);
// the one table from codes to statuses.
func Status(code string) int {
	switch code {
	case tollgate.EInvalid:
		return http.StatusBadRequest
	case tollgate.EUnauthorized:
		return http.StatusUnauthorized
	case tollgate.EForbidden:
		return http.StatusForbidden
	case tollgate.ENotFound:
		return http.StatusNotFound
	case tollgate.EConflict:
		return http.StatusConflict
	case tollgate.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case tollgate.ERateLimited, tollgate.EQuota, tollgate.EQueueFull:
		return http.StatusTooManyRequests
	case tollgate.EInputInvalid:
		return http.StatusUnprocessableEntity
	case tollgate.EUpstream:
		return http.StatusBadGateway
	case tollgate.EUnavailable:
		return http.StatusServiceUnavailable
	case tollgate.ETimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// errorTypes gives the OpenAI "type" field per code, so SDKs classify errors.
func errorType(code string) string {
	switch code {
	case tollgate.EInvalid, tollgate.ETooLarge, tollgate.ENotFound, tollgate.EConflict, tollgate.EInputInvalid:
		return "invalid_request_error"
	case tollgate.EUnauthorized:
		return "authentication_error"
	case tollgate.EForbidden:
		return "permission_error"
	case tollgate.ERateLimited, tollgate.EQuota, tollgate.EQueueFull:
		return "rate_limit_error"
	default:
		return "api_error"
	}
}

// ErrorBody is the JSON shape of every error response (the OpenAI shape).
type ErrorBody struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

// WriteError renders err: status from its code, the OpenAI-shaped body,
// WWW-Authenticate on 401/403 (RFC 6750) and Retry-After where set. Internal
// errors are logged with their detail and shown as a generic message.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := tollgate.ErrorCode(err)
	status := Status(code)
	var te *tollgate.Error
	isTollgate := errors.As(err, &te)
	switch {
	case log == nil:
	case code == tollgate.EInternal:
		log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	case code == tollgate.EUnavailable && error(te) != err:
		// A store that cannot be reached or written: the caller is told
		// to retry, the operator is told why.
		log.WarnContext(r.Context(), "service unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	h := w.Header()
	switch code {
	case tollgate.EUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="tollgate", error="invalid_token"`)
	case tollgate.EForbidden:
		h.Set("WWW-Authenticate", `Bearer realm="tollgate", error="insufficient_scope"`)
	}
	if isTollgate && te.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(te.RetryAfter))
	}
	var body ErrorBody
	body.Error.Message = tollgate.ErrorMessage(err)
	body.Error.Type = errorType(code)
	body.Error.Code = code
	WriteJSON(w, status, body)
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// HandlerFunc is a handler that returns an error instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts h to http.Handler, rendering a returned error with WriteError.
func Handle(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, log, err)
		}
	})
}

// Mux is where handlers are registered: an *http.ServeMux, or a router in
// front of one.
type Mux interface {
	Handle(pattern string, h http.Handler)
}
