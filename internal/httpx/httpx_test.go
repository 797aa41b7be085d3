package httpx_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestUnavailableIsLoggedWithItsCause: a 503 caused by a store failure
// tells the operator why in the log; a plain 503 (draining) logs nothing.
func TestUnavailableIsLoggedWithItsCause(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	for _, err := range []error{
		tollgate.Unavailable(errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), 1, "the database cannot be reached right now"),
		tollgate.Errorf(tollgate.EUnavailable, "the gateway is shutting down"),
	} {
		httpx.Handle(log, func(http.ResponseWriter, *http.Request) error { return err }).
			ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/chat", nil))
	}
	if out := buf.String(); !strings.Contains(out, "connection refused") || strings.Contains(out, "shutting down") {
		t.Fatalf("log %q; want the store failure's cause, and nothing for draining", out)
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		code, typ  string
		authHeader string
		retry      string
		message    string
	}{
		{"unauthorized", tollgate.Errorf(tollgate.EUnauthorized, "token expired"), 401, "invalid_token", "authentication_error", `Bearer realm="tollgate", error="invalid_token"`, "", "token expired"},
		{"forbidden", tollgate.Errorf(tollgate.EForbidden, "needs infer:image"), 403, "insufficient_scope", "permission_error", `Bearer realm="tollgate", error="insufficient_scope"`, "", "needs infer:image"},
		{"quota", &tollgate.Error{Code: tollgate.EQuota, Message: "budget spent", RetryAfter: 60}, 429, "insufficient_quota", "rate_limit_error", "", "60", "budget spent"},
		{"wrapped", fmt.Errorf("outer: %w", tollgate.Errorf(tollgate.ETooLarge, "body over 10MiB")), 413, "request_too_large", "invalid_request_error", "", "", "body over 10MiB"},
		{"internal detail hidden", errors.New("pq: password authentication failed for secret"), 500, "internal_error", "api_error", "", "", "internal error"},
		{"store unavailable, cause hidden", tollgate.Unavailable(errors.New("create /data/tollgate.db-open.7.journal: no space left on device"), 2, "usage cannot be recorded right now"), 503, "service_unavailable", "api_error", "", "2", "usage cannot be recorded right now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			httpx.Handle(nil, func(http.ResponseWriter, *http.Request) error { return tt.err }).
				ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d", rec.Code, tt.status)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.authHeader {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.authHeader)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retry {
				t.Errorf("Retry-After %q, want %q", got, tt.retry)
			}
			var body httpx.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if body.Error.Code != tt.code || body.Error.Type != tt.typ || body.Error.Message != tt.message {
				t.Errorf("body %+v, want code %q type %q message %q", body.Error, tt.code, tt.typ, tt.message)
			}
		})
	}
}
