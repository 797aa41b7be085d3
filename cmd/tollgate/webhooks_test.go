package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestWebhookSecretEndpoint: GET /v1/webhooks/default/secret gives each
// caller its own whsec_ secret, the same on every call, by token or API
// key, and nothing without credentials.
func TestWebhookSecretEndpoint(t *testing.T) {
	g := setup(t, "")
	g.mustCLI("user", "add", "alice", "--password", "alice-password", "--tenant", "acme", "--role", "user")
	g.mustCLI("user", "add", "bob", "--password", "bob-password", "--tenant", "acme", "--role", "user")
	secret := func(bearer string) (int, string) {
		resp, body := g.do("GET", "/v1/webhooks/default/secret", bearer, "")
		var got struct{ Key string }
		_ = json.Unmarshal(body, &got)
		return resp.StatusCode, got.Key
	}
	aliceToken := g.login("alice", "alice-password").AccessToken
	aliceKey := strings.TrimSpace(g.mustCLI("key", "create", "--user", "alice"))
	bobToken := g.login("bob", "bob-password").AccessToken

	code, alice := secret(aliceToken)
	if code != http.StatusOK || !strings.HasPrefix(alice, "whsec_") {
		t.Fatalf("alice: %d %q, want 200 and whsec_…", code, alice)
	}
	if _, again := secret(aliceKey); again != alice {
		t.Errorf("alice by API key got %q, by token %q; want one secret", again, alice)
	}
	if _, bob := secret(bobToken); bob == alice || !strings.HasPrefix(bob, "whsec_") {
		t.Errorf("bob got %q, want a secret of his own (alice has %q)", bob, alice)
	}
	resp, _ := g.do("GET", "/v1/webhooks/default/secret", "", "")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d (WWW-Authenticate %q), want 401 with a challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if _, metrics := g.do("GET", "/metrics", "", ""); !strings.Contains(string(metrics), "tollgate_webhook_pending_predictions 0") {
		t.Error("/metrics does not show tollgate_webhook_pending_predictions")
	}
}
