package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

// secretAPI serves SecretHandler; the caller is named by the X-User header
// ("tenant/user"), standing in for the authenticator.
func secretAPI(t *testing.T, secrets *webhook.Secrets) *httptest.Server {
	t.Helper()
	principal := func(r *http.Request) *tollgate.Principal {
		tenant, user, ok := strings.Cut(r.Header.Get("X-User"), "/")
		if !ok {
			return nil
		}
		return &tollgate.Principal{TenantID: tenant, UserID: user}
	}
	srv := httptest.NewServer(httpx.Handle(nil, webhook.SecretHandler(secrets, principal)))
	t.Cleanup(srv.Close)
	return srv
}

// getSecret asks the API for a caller's secret and returns the status and
// the key.
func getSecret(t *testing.T, url, user string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET secret: %v", err)
	}
	defer resp.Body.Close()
	var body struct{ Key string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Key
}

func TestSecretHandler(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	api := secretAPI(t, webhook.NewSecrets(db.Webhooks(), "", nil))
	code, alice := getSecret(t, api.URL, "acme/alice")
	if code != http.StatusOK || !strings.HasPrefix(alice, "whsec_") {
		t.Fatalf("alice's secret: %d %q, want 200 and whsec_…", code, alice)
	}
	if key, err := webhook.ParseSecret(alice); err != nil || len(key) != 32 {
		t.Errorf("ParseSecret(%q) = %d bytes, %v; want 32", alice, len(key), err)
	}
	if _, again := getSecret(t, api.URL, "acme/alice"); again != alice {
		t.Errorf("alice's secret changed between calls: %q then %q", alice, again)
	}
	for _, other := range []string{"acme/bob", "globex/alice"} {
		if _, key := getSecret(t, api.URL, other); key == alice || !strings.HasPrefix(key, "whsec_") {
			t.Errorf("%s got %q, want a secret of its own (alice has %q)", other, key, alice)
		}
	}
	if code, key := getSecret(t, api.URL, ""); code != http.StatusUnauthorized || key != "" {
		t.Errorf("no caller: %d %q, want 401 and no key", code, key)
	}
	if code, key := getSecret(t, api.URL, "acme/"); code != http.StatusForbidden || key != "" {
		t.Errorf("caller without a user: %d %q, want 403 and no key", code, key)
	}
}

func TestSecretsAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("SealedWithThePassphrase", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		key, err := webhook.NewSecrets(db.Webhooks(), "correct horse", nil).Key(ctx, "acme", "alice")
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
		row, err := db.Webhooks().WebhookSecret(ctx, "acme", "alice")
		if err != nil {
			t.Fatalf("WebhookSecret: %v", err)
		}
		if !row.Encrypted || bytes.Contains(row.Secret, key) {
			t.Errorf("stored secret encrypted=%v and holds the key in clear=%v; want it sealed", row.Encrypted, bytes.Contains(row.Secret, key))
		}
		again, err := webhook.NewSecrets(db.Webhooks(), "correct horse", nil).Key(ctx, "acme", "alice")
		if err != nil || !bytes.Equal(again, key) {
			t.Errorf("another process with the passphrase got %x, %v; want %x", again, err, key)
		}
		if k, err := webhook.NewSecrets(db.Webhooks(), "wrong", nil).Key(ctx, "acme", "alice"); err == nil {
			t.Errorf("a wrong passphrase opened the secret: %x", k)
		}
		if k, err := webhook.NewSecrets(db.Webhooks(), "", nil).Key(ctx, "acme", "alice"); err == nil {
			t.Errorf("no passphrase opened the sealed secret: %x", k)
		}
		// A sealed blob moved to another user's row does not open there.
		row.UserID = "mallory"
		if err := db.Webhooks().PutWebhookSecret(ctx, row); err != nil {
			t.Fatalf("PutWebhookSecret: %v", err)
		}
		if k, err := webhook.NewSecrets(db.Webhooks(), "correct horse", nil).Key(ctx, "acme", "mallory"); err == nil {
			t.Errorf("alice's sealed secret opened as mallory's: %x", k)
		}
	})
	t.Run("RotateSignsWithTheNewKey", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t)
		f := setup(t, nil, webhook.Config{})
		old := f.key(t)
		fresh, err := f.secrets.Rotate(ctx, "acme", "alice")
		if err != nil || bytes.Equal(fresh, old) {
			t.Fatalf("Rotate = %x, %v; want a new key", fresh, err)
		}
		mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 1))
		h := r.waitHits(t, 1)[0]
		wantSigned(t, fresh, h, time.Now())
		if webhook.Verify(old, h.Header, h.Body, time.Now(), time.Minute) == nil {
			t.Error("a message after the rotation verifies with the old key")
		}
	})
}

// TestStandardWebhooksVerifies checks delivered messages with the official
// npm standardwebhooks library and the secret the API gives their owner.
func TestStandardWebhooksVerifies(t *testing.T) {
	clients := clienttest.Node(t)
	r := newReceiver(t)
	f := setup(t, nil, webhook.Config{})
	api := secretAPI(t, f.secrets)
	_, alice := getSecret(t, api.URL, "acme/alice")
	_, bob := getSecret(t, api.URL, "acme/bob")

	mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 1))
	h := r.waitHits(t, 1)[0]
	headers := map[string]string{}
	for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		headers[k] = h.Header.Get(k)
	}
	with := func(k, v string) map[string]string {
		c := map[string]string{}
		for hk, hv := range headers {
			c[hk] = hv
		}
		c[k] = v
		return c
	}
	type check struct {
		Secret  string            `json:"secret"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	cases := []check{
		{alice, headers, string(h.Body)},
		{alice, headers, strings.Replace(string(h.Body), `"seq":1`, `"seq":2`, 1)},
		{bob, headers, string(h.Body)},
		{alice, with("webhook-id", "msg_other"), string(h.Body)},
		{alice, with("webhook-timestamp", "1"), string(h.Body)},
	}
	file := filepath.Join(t.TempDir(), "cases.json")
	b, _ := json.Marshal(cases)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	out := clients.Run(t, time.Minute, "standardwebhooks.mjs", file)
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(cases) {
		t.Fatalf("standardwebhooks.mjs printed %s (%v)", out, err)
	}
	t.Logf("standardwebhooks: %q", got)
	if got[0] != "ok" {
		t.Errorf("the delivered message does not verify with its owner's secret: %s", got[0])
	}
	for i, why := range []string{"", "a tampered body", "another user's secret", "another webhook-id", "an old timestamp"} {
		if i > 0 && !strings.HasPrefix(got[i], "WebhookVerificationError") {
			t.Errorf("%s: the library said %q, want a WebhookVerificationError", why, got[i])
		}
	}
}
