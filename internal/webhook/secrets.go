package webhook

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// maxOpened bounds the cache of decrypted secrets; past it the cache starts
// over.
const maxOpened = 4096

// Secrets gives each user (tenant and user ID) its own signing secret,
// created on first use. With a passphrase, secrets are sealed at rest as
// signing keys are (argon2id + AES-256-GCM, bound to the owner); decrypted
// ones are cached by their sealed form, so a rotation on another replica is
// seen at the next read while an unchanged secret is derived only once.
type Secrets struct {
	store      tollgate.WebhookSecretStore
	passphrase string
	now        func() time.Time

	mu     sync.Mutex
	opened map[string]openedSecret // by owner
}

type openedSecret struct {
	sealed [32]byte // SHA-256 of the stored blob
	key    []byte
}

// NewSecrets returns the secrets kept in store. passphrase, when not empty,
// seals new secrets at rest. now defaults to time.Now.
func NewSecrets(store tollgate.WebhookSecretStore, passphrase string, now func() time.Time) *Secrets {
	if now == nil {
		now = time.Now
	}
	return &Secrets{store: store, passphrase: passphrase, now: now, opened: map[string]openedSecret{}}
}

// Key returns the user's signing key, creating it when the user has none.
func (s *Secrets) Key(ctx context.Context, tenantID, userID string) ([]byte, error) {
	if tenantID == "" || userID == "" {
		return nil, tollgate.Errorf(tollgate.EInvalid, "a webhook secret needs a tenant and a user")
	}
	stored, err := s.store.WebhookSecret(ctx, tenantID, userID)
	if tollgate.ErrorCode(err) == tollgate.ENotFound {
		var fresh *tollgate.WebhookSecret
		if fresh, err = s.newSecret(tenantID, userID); err != nil {
			return nil, err
		}
		stored, err = s.store.EnsureWebhookSecret(ctx, fresh)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	return s.open(stored)
}

// Rotate gives the user a new signing key and returns it. Messages sent
// from then on are signed with the new key only.
func (s *Secrets) Rotate(ctx context.Context, tenantID, userID string) ([]byte, error) {
	if tenantID == "" || userID == "" {
		return nil, tollgate.Errorf(tollgate.EInvalid, "a webhook secret needs a tenant and a user")
	}
	fresh, err := s.newSecret(tenantID, userID)
	if err != nil {
		return nil, err
	}
	if err := s.store.PutWebhookSecret(ctx, fresh); err != nil {
		return nil, fmt.Errorf("rotate webhook secret: %w", err)
	}
	return s.open(fresh)
}

func (s *Secrets) newSecret(tenantID, userID string) (*tollgate.WebhookSecret, error) {
	key := make([]byte, secretLen)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	sec := &tollgate.WebhookSecret{TenantID: tenantID, UserID: userID, Secret: key, CreatedAt: s.now()}
	if s.passphrase != "" {
		sealed, err := token.Seal(s.passphrase, sealID(tenantID, userID), key)
		if err != nil {
			return nil, fmt.Errorf("seal webhook secret: %w", err)
		}
		sec.Secret, sec.Encrypted = sealed, true
	}
	return sec, nil
}

// open returns the key of a stored secret, decrypting a sealed one.
func (s *Secrets) open(sec *tollgate.WebhookSecret) ([]byte, error) {
	if !sec.Encrypted {
		return sec.Secret, nil
	}
	if s.passphrase == "" {
		return nil, errors.New("webhook secret is encrypted and no key passphrase is configured")
	}
	owner := sealID(sec.TenantID, sec.UserID)
	sum := sha256.Sum256(sec.Secret)
	s.mu.Lock()
	o, ok := s.opened[owner]
	s.mu.Unlock()
	if ok && o.sealed == sum {
		return o.key, nil
	}
	key, err := token.Open(s.passphrase, owner, sec.Secret)
	if err != nil {
		return nil, fmt.Errorf("open webhook secret: %w", err)
	}
	s.mu.Lock()
	if len(s.opened) >= maxOpened {
		clear(s.opened)
	}
	s.opened[owner] = openedSecret{sealed: sum, key: key}
	s.mu.Unlock()
	return key, nil
}

// sealID binds a sealed secret to its owner.
func sealID(tenantID, userID string) string {
	return "whsec\x00" + tenantID + "\x00" + userID
}
