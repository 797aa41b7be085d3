package token_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

type publishedKey struct {
	Kty, Use, Alg, Kid, Crv string
}

func jwksKeys(t testing.TB, km *token.KeyManager) []publishedKey {
	t.Helper()
	var set struct{ Keys []publishedKey }
	if err := json.Unmarshal(km.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	return set.Keys
}

func kidOf(t testing.TB, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := strictDecode(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid, Typ, Alg string }
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

func TestKeyManagerFirstStart(t *testing.T) {
	for _, alg := range []string{token.ES256, token.EdDSA, token.RS256} {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			store := &memKeys{}
			km, err := token.NewKeyManager(ctx, store, token.KeyOptions{Algorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			keys := jwksKeys(t, km)
			if len(keys) != 1 || keys[0].Alg != alg || keys[0].Use != "sig" || keys[0].Kid == "" {
				t.Fatalf("jwks = %+v", keys)
			}
			// A restart loads the same key rather than generating another.
			km2, err := token.NewKeyManager(ctx, store, token.KeyOptions{Algorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			if k2 := jwksKeys(t, km2); len(k2) != 1 || k2[0].Kid != keys[0].Kid {
				t.Fatalf("after restart jwks = %+v, want the key %s", k2, keys[0].Kid)
			}
			if rows := store.all(); len(rows) != 1 || rows[0].Encrypted || rows[0].State != tollgate.KeyActive {
				t.Fatalf("stored keys = %d, %+v", len(rows), rows[0].State)
			}
		})
	}
	t.Run("unknown_algorithm", func(t *testing.T) {
		if _, err := token.NewKeyManager(context.Background(), &memKeys{}, token.KeyOptions{Algorithm: "HS256"}); err == nil {
			t.Fatal("HS256 key manager created")
		}
	})
}

func TestKeyManagerPassphrase(t *testing.T) {
	ctx := context.Background()
	store := &memKeys{}
	km, err := token.NewKeyManager(ctx, store, token.KeyOptions{Passphrase: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	row := store.all()[0]
	if !row.Encrypted {
		t.Fatal("key stored unencrypted with a passphrase configured")
	}
	if _, err := x509.ParsePKCS8PrivateKey(row.PrivateKey); err == nil {
		t.Fatal("stored private key parses as plain PKCS#8")
	}
	iss, err := token.NewIssuer(km, nil, token.IssuerOptions{Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := iss.Issue(ctx, aliceClaims)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("reopen_with_passphrase", func(t *testing.T) {
		km2, err := token.NewKeyManager(ctx, store, token.KeyOptions{Passphrase: "correct horse battery staple"})
		if err != nil {
			t.Fatal(err)
		}
		v, err := token.NewVerifier(token.VerifierOptions{Issuer: testIssuer, Keys: km2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	})
	for name, pass := range map[string]string{"wrong_passphrase": "wrong", "no_passphrase": ""} {
		t.Run(name, func(t *testing.T) {
			_, err := token.NewKeyManager(ctx, store, token.KeyOptions{Passphrase: pass})
			if err == nil {
				t.Fatal("encrypted key loaded")
			}
			if strings.Contains(err.Error(), "correct horse") {
				t.Fatalf("error reveals the passphrase: %v", err)
			}
		})
	}
	t.Run("blob_moved_to_another_key", func(t *testing.T) {
		moved := *row
		moved.ID = "another-kid"
		other := &memKeys{}
		if err := other.CreateSigningKey(ctx, &moved); err != nil {
			t.Fatal(err)
		}
		if _, err := token.NewKeyManager(ctx, other, token.KeyOptions{Passphrase: "correct horse battery staple"}); err == nil {
			t.Fatal("encrypted key accepted under another kid")
		}
	})
}

// keyEnv is an issuer and verifier over one key store with a fake clock.
type keyEnv struct {
	clock *fakeClock
	km    *token.KeyManager
	iss   *token.Issuer
	v     *token.Verifier
}

func newKeyEnv(t testing.TB, store tollgate.SigningKeyStore, clock *fakeClock) *keyEnv {
	t.Helper()
	e := &keyEnv{clock: clock}
	var err error
	if e.km, err = token.NewKeyManager(context.Background(), store, token.KeyOptions{Now: clock.Now}); err != nil {
		t.Fatal(err)
	}
	if e.iss, err = token.NewIssuer(e.km, nil, token.IssuerOptions{Issuer: testIssuer, Now: clock.Now}); err != nil {
		t.Fatal(err)
	}
	if e.v, err = token.NewVerifier(token.VerifierOptions{Issuer: testIssuer, Keys: e.km, Now: clock.Now, CacheSize: -1}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *keyEnv) issue(t testing.TB) string {
	t.Helper()
	tok, _, err := e.iss.Issue(context.Background(), aliceClaims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestKeyRotation(t *testing.T) {
	stores := map[string]func(t *testing.T) tollgate.SigningKeyStore{
		"memory": func(t *testing.T) tollgate.SigningKeyStore { return &memKeys{} },
		"sqlite": func(t *testing.T) tollgate.SigningKeyStore { return openSQLite(t).SigningKeys() },
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clock := newFakeClock()
			store := newStore(t)
			e := newKeyEnv(t, store, clock)
			replica := newKeyEnv(t, store, clock)
			oldTok := e.issue(t)
			oldKID := kidOf(t, oldTok)

			if err := e.km.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			if keys := jwksKeys(t, e.km); len(keys) != 2 {
				t.Fatalf("right after rotation the JWKS has %d keys, want old and next", len(keys))
			}
			if kid := kidOf(t, e.issue(t)); kid != oldKID {
				t.Fatal("the next key signs before its publish delay passed")
			}
			// The replica learns of the next key on reload and can verify
			// its tokens before it signs anything.
			if err := replica.km.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			if len(jwksKeys(t, replica.km)) != 2 {
				t.Fatal("replica does not publish the next key after reload")
			}

			clock.Add(10 * time.Minute) // default publish delay
			newTok := e.issue(t)
			if kidOf(t, newTok) == oldKID {
				t.Fatal("the next key does not sign after the publish delay")
			}
			for _, env := range []*keyEnv{e, replica} {
				if err := env.km.Reload(ctx); err != nil {
					t.Fatal(err)
				}
				for _, tok := range []string{oldTok, newTok} {
					if _, err := env.v.Verify(ctx, tok); err != nil {
						t.Fatalf("token refused after rotation: %v", err)
					}
				}
			}
			states := map[string]string{}
			rows, _ := store.SigningKeys(ctx, token.PurposeAccess)
			for _, r := range rows {
				states[r.ID] = r.State
				if r.ID == oldKID && !r.RemoveAfter.Equal(r.RetiredAt.Add(16*time.Minute)) {
					t.Errorf("retired key RemoveAfter = %v, want retirement + TTL + leeway", r.RemoveAfter)
				}
			}
			if states[oldKID] != tollgate.KeyRetired || len(states) != 2 {
				t.Fatalf("key states = %v, want old retired and new active", states)
			}

			clock.Add(16*time.Minute + time.Second) // every old token expired
			if err := e.km.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			if keys := jwksKeys(t, e.km); len(keys) != 1 || keys[0].Kid == oldKID {
				t.Fatalf("retired key still published after its tokens expired: %+v", keys)
			}
			if rows, _ := store.SigningKeys(ctx, token.PurposeAccess); len(rows) != 1 {
				t.Fatalf("store holds %d keys, want 1", len(rows))
			}
		})
	}
}

func TestForcedRotation(t *testing.T) {
	ctx := context.Background()
	e := newKeyEnv(t, &memKeys{}, newFakeClock())
	old := e.issue(t)
	if err := e.km.RotateAfter(ctx, 0); err != nil {
		t.Fatal(err)
	}
	tok := e.issue(t)
	if kidOf(t, tok) == kidOf(t, old) {
		t.Fatal("forced rotation did not switch the signing key")
	}
	for _, tk := range []string{old, tok} {
		if _, err := e.v.Verify(ctx, tk); err != nil {
			t.Fatalf("token refused after forced rotation: %v", err)
		}
	}
}

func TestKeyPurposesAreSeparate(t *testing.T) {
	ctx := context.Background()
	f := setup(t, setupOpts{})
	p, err := f.verifier.Verify(ctx, f.mustIssue(t, aliceClaims))
	if err != nil {
		t.Fatal(err)
	}
	internal, _, err := f.issuer.IssueInternal(ctx, p, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.verifier.Verify(ctx, internal)
	wantUnauthorized(t, err)

	// An upstream verifies it with the internal key set and audience.
	iv, err := token.NewVerifier(token.VerifierOptions{Issuer: testIssuer, Keys: f.internal, Audience: token.DefaultInternalAudience, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	got, err := iv.Verify(ctx, internal)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != p.UserID || got.TenantID != p.TenantID || !got.Expires.Equal(f.clock.Now().Add(time.Minute)) {
		t.Fatalf("internal token principal = %+v", got)
	}
	if strings.Contains(string(f.keys.JWKS()), kidOf(t, internal)) {
		t.Fatal("internal key published in the access JWKS")
	}
}

func openSQLite(t testing.TB) *sqlite.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestKeyManagerPicksUpCLIRotation: the server's key manager, once
// started, notices a rotation made by the CLI (another process on the
// same store) without a restart.
func TestKeyManagerPicksUpCLIRotation(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t).SigningKeys()
	server, err := token.NewKeyManager(ctx, store, token.KeyOptions{RefreshInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer server.Stop()
	cli, err := token.NewKeyManager(ctx, store, token.KeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.RotateAfter(ctx, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(jwksKeys(t, server)) != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(jwksKeys(t, server)); n != 2 {
		t.Fatalf("server publishes %d keys after the CLI rotated, want 2", n)
	}
	iss, err := token.NewIssuer(server, nil, token.IssuerOptions{Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := iss.Issue(ctx, aliceClaims)
	if err != nil {
		t.Fatal(err)
	}
	if kid := kidOf(t, tok); kid != jwksKeys(t, cli)[len(jwksKeys(t, cli))-1].Kid {
		t.Fatalf("server signs with %s, not the CLI's new key", kid)
	}
}

// countingKeys counts SigningKeys reads.
type countingKeys struct {
	tollgate.SigningKeyStore
	reads atomic.Int64
}

func (c *countingKeys) SigningKeys(ctx context.Context, purpose string) ([]*tollgate.SigningKey, error) {
	c.reads.Add(1)
	return c.SigningKeyStore.SigningKeys(ctx, purpose)
}

// TestReplicaLearnsRotatedKeyOnMiss: replica A rotates with delay 0 and
// signs with the new key; replica B accepts that token at once, reloading
// on the unknown kid — at most once per interval, however many random
// kids arrive.
func TestReplicaLearnsRotatedKeyOnMiss(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	shared := &memKeys{}
	a := newKeyEnv(t, shared, clock)
	bStore := &countingKeys{SigningKeyStore: shared}
	b := newKeyEnv(t, bStore, clock)
	if err := a.km.RotateAfter(ctx, 0); err != nil {
		t.Fatal(err)
	}
	before := bStore.reads.Load()
	if _, err := b.v.Verify(ctx, a.issue(t)); err != nil {
		t.Fatalf("replica refused a token of the rotated-in key: %v", err)
	}
	if n := bStore.reads.Load() - before; n != 1 {
		t.Fatalf("%d store reads for the unknown kid, want 1", n)
	}
	var wg sync.WaitGroup
	withKID := func(kid string) string {
		_, rest, _ := strings.Cut(a.issue(t), ".")
		return enc([]byte(`{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`"}`)) + "." + rest
	}
	for i := range 32 {
		forged := withKID(fmt.Sprint("rnd-", i))
		wg.Go(func() { _, _ = b.v.Verify(ctx, forged) })
	}
	wg.Wait()
	if n := bStore.reads.Load() - before; n != 1 {
		t.Fatalf("random kids caused %d more store reads within the interval, want 0", n-1)
	}
	clock.Add(6 * time.Second)
	_, err := b.v.Verify(ctx, withKID("rnd-late"))
	wantUnauthorized(t, err)
	if n := bStore.reads.Load() - before; n != 2 {
		t.Fatalf("after the interval: %d store reads in all, want 2", n)
	}
}
