package token_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/token"
)

func TestAPIKey(t *testing.T) {
	raw, k := token.NewAPIKey("u-alice", "laptop", time.Now())
	if !regexp.MustCompile(`^tg_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$`).MatchString(raw) {
		t.Fatalf("api key %q does not look like tg_<id>_<secret>", raw)
	}
	if k.UserID != "u-alice" || k.Name != "laptop" || !strings.HasPrefix(raw, "tg_"+k.ID+"_") || len(k.Hash) != 32 {
		t.Fatalf("record = %+v", k)
	}
	if bytes.Contains(k.Hash, []byte(raw[20:])) {
		t.Fatal("secret stored in clear")
	}
	id, hash, err := token.ParseAPIKey(raw)
	if err != nil || id != k.ID || !token.APIKeyMatches(k, hash) {
		t.Fatalf("parse: id %q err %v", id, err)
	}
	raw2, k2 := token.NewAPIKey("u-alice", "ci", time.Now())
	if raw2 == raw || k2.ID == k.ID {
		t.Fatal("two keys alike")
	}
	_, hash2, _ := token.ParseAPIKey(raw2)
	if token.APIKeyMatches(k, hash2) {
		t.Fatal("another key's secret matches")
	}
	// Same id, other secret: a guessed secret for a known id.
	_, forged, err := token.ParseAPIKey("tg_" + k.ID + "_" + raw2[len(raw2)-43:])
	if err != nil || token.APIKeyMatches(k, forged) {
		t.Fatal("forged secret for a known id matches")
	}
	k.Revoked = true
	if token.APIKeyMatches(k, hash) {
		t.Fatal("revoked key matches")
	}
	for _, bad := range []string{"", "tg_", "tg_" + k.ID, "tg_" + k.ID + "_", "TG_" + raw[3:], "tgr_" + raw[3:],
		"tg_" + strings.ToUpper(k.ID) + raw[19:], raw + "=", raw + "\n", raw[:len(raw)-1], " " + raw} {
		if _, _, err := token.ParseAPIKey(bad); err == nil {
			t.Errorf("ParseAPIKey(%q) accepted", bad)
		}
	}
}
