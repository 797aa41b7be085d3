package token

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Key purposes: one key set each, so a token for upstreams can never pass
// as an access token.
const (
	PurposeAccess   = "access"
	PurposeInternal = "internal"
)

// KeyOptions configure a KeyManager.
type KeyOptions struct {
	// Purpose of the key set. Defaults to PurposeAccess.
	Purpose string
	// Algorithm of newly generated keys: ES256, EdDSA or RS256. Existing
	// keys keep their algorithm until rotated. Defaults to ES256.
	Algorithm string
	// Passphrase encrypts private keys at rest (argon2id + AES-256-GCM).
	// Empty stores them unencrypted. Defaults to "".
	Passphrase string
	// PublishDelay is how long a rotated-in key is published before it
	// signs, so every verifier has fetched it. Defaults to 10 minutes.
	PublishDelay time.Duration
	// TokenTTL is the longest lifetime of a token signed with these keys; a
	// retired key stays published for TokenTTL + Leeway. Defaults to 15 min.
	TokenTTL time.Duration
	// Leeway added to TokenTTL before a retired key is removed. Defaults to
	// 60 seconds.
	Leeway time.Duration
	// RefreshInterval between reloads from the store once started, to pick
	// up rotations by the CLI or another replica. Defaults to 1 minute.
	RefreshInterval time.Duration
	// MissReloadInterval: a token with an unknown kid reloads the key set
	// from the store at most once per interval (a replica may have rotated
	// before this one's periodic reload). Defaults to 5 seconds.
	MissReloadInterval time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger for background reload failures. Defaults to slog.Default().
	Logger *slog.Logger
}

func (o *KeyOptions) fill() error {
	o.Purpose = cmp.Or(o.Purpose, PurposeAccess)
	o.Algorithm = cmp.Or(o.Algorithm, ES256)
	o.PublishDelay = cmp.Or(o.PublishDelay, 10*time.Minute)
	o.TokenTTL = cmp.Or(o.TokenTTL, 15*time.Minute)
	o.Leeway = cmp.Or(o.Leeway, 60*time.Second)
	o.RefreshInterval = cmp.Or(o.RefreshInterval, time.Minute)
	o.MissReloadInterval = cmp.Or(o.MissReloadInterval, 5*time.Second)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch o.Algorithm {
	case ES256, EdDSA, RS256:
	default:
		return fmt.Errorf("signing algorithm %q not supported (want ES256, EdDSA or RS256)", o.Algorithm)
	}
	if o.PublishDelay < 0 || o.TokenTTL < 0 || o.Leeway < 0 || o.RefreshInterval < 0 || o.MissReloadInterval < 0 {
		return fmt.Errorf("key options: durations must not be negative")
	}
	return nil
}

// KeyManager holds one purpose's signing keys in memory, publishes their
// JWKS and rotates them. It is safe for concurrent use.
type KeyManager struct {
	store tollgate.SigningKeyStore
	opts  KeyOptions

	mu   sync.Mutex // serialises Reload and Rotate
	snap atomic.Pointer[keySet]
	// loaded caches decrypted keys by kid so a reload never re-derives a
	// passphrase key for a known key. Guarded by mu.
	loaded map[string]*ownKey

	stop context.CancelFunc
	done chan struct{}

	// lastMiss is the clock's unix nanos of the last reload caused by an
	// unknown kid; missFlight merges concurrent ones.
	lastMiss   atomic.Int64
	missFlight singleflight.Group
}

// ownKey is one of our keys, decrypted.
type ownKey struct {
	kid, alg   string
	method     jwt.SigningMethod
	priv       crypto.Signer
	pub        crypto.PublicKey
	activateAt time.Time
	retired    bool
}

// keySet is an immutable snapshot of the published keys.
type keySet struct {
	keys  []*ownKey // ordered by activateAt
	byKID map[string]*ownKey
	jwks  []byte
}

// NewKeyManager loads the keys of opts.Purpose from store, generating and
// storing the first key when there is none.
func NewKeyManager(ctx context.Context, store tollgate.SigningKeyStore, opts KeyOptions) (*KeyManager, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	m := &KeyManager{store: store, opts: opts, loaded: map[string]*ownKey{}}
	m.lastMiss.Store(-1 << 62)
	if err := m.Reload(ctx); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current(m.opts.Now()) != nil {
		return m, nil
	}
	if _, err := m.create(ctx, tollgate.KeyActive, m.opts.Now()); err != nil {
		return nil, err
	}
	return m, m.reload(ctx)
}

// Purpose returns the purpose of the managed key set.
func (m *KeyManager) Purpose() string { return m.opts.Purpose }

// JWKS returns the published key set as JSON ({"keys":[…]}, each with kid,
// alg and use "sig"). The bytes are shared: do not modify them.
func (m *KeyManager) JWKS() []byte { return m.snap.Load().jwks }

// Algorithms returns the algorithms of the published keys, for the
// discovery document.
func (m *KeyManager) Algorithms() []string {
	var algs []string
	for _, k := range m.snap.Load().keys {
		if !slices.Contains(algs, k.alg) {
			algs = append(algs, k.alg)
		}
	}
	return algs
}

// Rotate creates a new key that is published at once and signs after the
// configured PublishDelay; the key it replaces is then retired.
func (m *KeyManager) Rotate(ctx context.Context) error {
	return m.RotateAfter(ctx, m.opts.PublishDelay)
}

// RotateAfter is Rotate with an explicit publish delay; 0 switches signing
// to the new key immediately (forced rotation from the CLI).
func (m *KeyManager) RotateAfter(ctx context.Context, delay time.Duration) error {
	if delay < 0 {
		return fmt.Errorf("rotate signing key: negative delay")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	state := tollgate.KeyNext
	if delay == 0 {
		state = tollgate.KeyActive
	}
	at := now.Add(delay)
	if delay > 0 {
		// Activation times order keys: the new key comes strictly after
		// every published one, even on a coarse clock.
		for _, k := range m.snap.Load().keys {
			if !at.After(k.activateAt) {
				at = k.activateAt.Add(time.Microsecond)
			}
		}
	}
	if _, err := m.create(ctx, state, at); err != nil {
		return err
	}
	if delay == 0 {
		// Forced: every other key stops signing now.
		if err := m.retireAll(ctx, now); err != nil {
			return err
		}
	}
	return m.reload(ctx)
}

// Reload reads the key set from the store: it picks up keys rotated by the
// CLI or another replica, promotes due "next" keys, retires the keys they
// replace and deletes retired keys whose tokens have all expired.
func (m *KeyManager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reload(ctx)
}

// Start reloads the key set every RefreshInterval until Stop.
func (m *KeyManager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stop != nil {
		return fmt.Errorf("key manager already started")
	}
	ctx, m.stop = context.WithCancel(ctx)
	m.done = make(chan struct{})
	go m.loop(ctx, m.done)
	return nil
}

// Stop ends the background reloads started by Start and waits for them.
func (m *KeyManager) Stop() {
	m.mu.Lock()
	stop, done := m.stop, m.done
	m.stop, m.done = nil, nil
	m.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

func (m *KeyManager) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(m.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.Reload(ctx); err != nil && ctx.Err() == nil {
				m.opts.Logger.WarnContext(ctx, "reload signing keys", "purpose", m.opts.Purpose, "err", err)
			}
		}
	}
}

// signingKey returns the key that signs now.
func (m *KeyManager) signingKey() (*ownKey, error) {
	if k := m.snap.Load().current(m.opts.Now()); k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("no active %s signing key", m.opts.Purpose)
}

// lookup returns the published key with this kid.
func (m *KeyManager) lookup(kid string) *ownKey { return m.snap.Load().byKID[kid] }

// lookupOrReload is lookup that, for an unknown kid, reloads the key set
// first — at most once per MissReloadInterval, concurrent misses merged —
// so a key another replica rotated in is known before the periodic reload.
// Lookups of known kids never wait for it.
func (m *KeyManager) lookupOrReload(ctx context.Context, kid string) *ownKey {
	if k := m.lookup(kid); k != nil {
		return k
	}
	if !m.missAllowed() {
		return nil
	}
	ch := m.missFlight.DoChan("reload", func() (any, error) {
		if !m.missAllowed() {
			return nil, nil
		}
		m.lastMiss.Store(m.opts.Now().UnixNano())
		return nil, m.Reload(context.WithoutCancel(ctx))
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			m.opts.Logger.WarnContext(ctx, "reload signing keys for an unknown kid", "purpose", m.opts.Purpose, "err", res.Err)
		}
	case <-ctx.Done():
		return nil
	}
	return m.lookup(kid)
}

func (m *KeyManager) missAllowed() bool {
	return m.opts.Now().UnixNano()-m.lastMiss.Load() >= int64(m.opts.MissReloadInterval)
}

func (m *KeyManager) current(now time.Time) *ownKey {
	if s := m.snap.Load(); s != nil {
		return s.current(now)
	}
	return nil
}

// current is the key with the latest activation at or before now that is
// not retired.
func (s *keySet) current(now time.Time) *ownKey {
	for _, k := range slices.Backward(s.keys) {
		if !k.retired && !k.activateAt.After(now) {
			return k
		}
	}
	return nil
}

func (m *KeyManager) create(ctx context.Context, state string, activateAt time.Time) (*tollgate.SigningKey, error) {
	priv, err := generateKey(m.opts.Algorithm)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	k := &tollgate.SigningKey{
		ID:         randomID(16),
		Algorithm:  m.opts.Algorithm,
		Purpose:    m.opts.Purpose,
		PrivateKey: der,
		PublicKey:  pub,
		State:      state,
		CreatedAt:  m.opts.Now(),
		ActivateAt: activateAt,
	}
	if m.opts.Passphrase != "" {
		if k.PrivateKey, err = sealKey(m.opts.Passphrase, k.ID, der); err != nil {
			return nil, err
		}
		k.Encrypted = true
	}
	if err := m.store.CreateSigningKey(ctx, k); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	return k, nil
}

// randomID returns n random bytes, base64url-encoded.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b64(b)
}
