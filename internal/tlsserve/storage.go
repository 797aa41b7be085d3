package tlsserve

import (
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Lock timing of StoreStorage: a held lock is extended every lockRefresh
// and expires lockLease after its last extension, so the lock of a
// replica that died frees itself.
const (
	lockLease   = 2 * time.Minute
	lockRefresh = 30 * time.Second
	lockPoll    = time.Second
)

// StoreStorage is certmagic's Storage on the gateway's store, so that the
// replicas of a cluster share ACME accounts, certificates and challenge
// tokens, and one of them at a time obtains a certificate.
type StoreStorage struct {
	store tollgate.CertStore
	owner string
	now   func() time.Time

	mu   sync.Mutex
	held map[string]func() // lock name → stops its extension and waits
}

var _ certmagic.Storage = (*StoreStorage)(nil)

// NewStoreStorage returns certmagic storage on store; now defaults to
// time.Now.
func NewStoreStorage(store tollgate.CertStore, now func() time.Time) *StoreStorage {
	if now == nil {
		now = time.Now
	}
	return &StoreStorage{store: store, owner: rand.Text(), now: now, held: map[string]func(){}}
}

func clean(key string) string { return strings.Trim(path.Clean("/"+key), "/") }

// Store puts value at key.
func (s *StoreStorage) Store(ctx context.Context, key string, value []byte) error {
	return s.store.PutCert(ctx, clean(key), value, s.now())
}

// Load returns the value at key, fs.ErrNotExist when there is none.
func (s *StoreStorage) Load(ctx context.Context, key string) ([]byte, error) {
	v, _, err := s.store.Cert(ctx, clean(key))
	if tollgate.ErrorCode(err) == tollgate.ENotFound {
		return nil, fs.ErrNotExist
	}
	return v, err
}

// Delete removes key and the keys below it; a missing key is no error.
func (s *StoreStorage) Delete(ctx context.Context, key string) error {
	if err := s.store.DeleteCert(ctx, clean(key)); err != nil && tollgate.ErrorCode(err) != tollgate.ENotFound {
		return err
	}
	return nil
}

// Exists reports whether key holds a value or has keys below it.
func (s *StoreStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List returns the keys below prefix: all of them with recursive, else
// its direct children (files and "directories").
func (s *StoreStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	p := clean(prefix)
	keys, err := s.store.CertKeys(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fs.ErrNotExist
	}
	if recursive {
		return keys, nil
	}
	var out []string
	for _, k := range keys {
		rest := strings.TrimPrefix(k, p)
		rest = strings.TrimPrefix(rest, "/")
		child, _, _ := strings.Cut(rest, "/")
		name := child
		if p != "" {
			name = p + "/" + child
		}
		if len(out) == 0 || out[len(out)-1] != name {
			out = append(out, name)
		}
	}
	return slices.Compact(out), nil
}

// Stat describes key: a value, or a "directory" of keys below it.
func (s *StoreStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	k := clean(key)
	v, mod, err := s.store.Cert(ctx, k)
	if err == nil {
		return certmagic.KeyInfo{Key: k, Modified: mod, Size: int64(len(v)), IsTerminal: true}, nil
	}
	if tollgate.ErrorCode(err) != tollgate.ENotFound {
		return certmagic.KeyInfo{}, err
	}
	keys, err := s.store.CertKeys(ctx, k)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(keys) == 0 {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: k}, nil
}

// Lock takes the lock name, waiting while another replica holds it, and
// keeps extending it until Unlock.
func (s *StoreStorage) Lock(ctx context.Context, name string) error {
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		now := s.now()
		ok, err := s.store.LockCert(ctx, name, s.owner, now.Add(lockLease), now)
		if err != nil {
			return fmt.Errorf("lock %s: %w", name, err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	kctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.keep(kctx, name)
	}()
	s.mu.Lock()
	old := s.held[name]
	s.held[name] = func() { cancel(); <-done }
	s.mu.Unlock()
	if old != nil {
		old()
	}
	return nil
}

// keep extends a held lock until ctx ends.
func (s *StoreStorage) keep(ctx context.Context, name string) {
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := s.now()
			_, _ = s.store.LockCert(ctx, name, s.owner, now.Add(lockLease), now)
		}
	}
}

// Unlock releases the lock name.
func (s *StoreStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	stop := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if stop != nil {
		stop() // no extension can land after the release below
	}
	return s.store.UnlockCert(ctx, name, s.owner)
}
