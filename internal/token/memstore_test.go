package token_test

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// memKeys is an in-memory tollgate.SigningKeyStore, standing in for an
// engine so key tests run without one.
type memKeys struct {
	mu   sync.Mutex
	keys []*tollgate.SigningKey
}

var _ tollgate.SigningKeyStore = (*memKeys)(nil)

func (s *memKeys) CreateSigningKey(_ context.Context, k *tollgate.SigningKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.keys {
		if o.ID == k.ID {
			return tollgate.Errorf(tollgate.EConflict, "key exists")
		}
	}
	c := *k
	s.keys = append(s.keys, &c)
	return nil
}

func (s *memKeys) SigningKeys(_ context.Context, purpose string) ([]*tollgate.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*tollgate.SigningKey
	for _, k := range s.keys {
		if k.Purpose == purpose {
			c := *k
			out = append(out, &c)
		}
	}
	slices.SortStableFunc(out, func(a, b *tollgate.SigningKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

func (s *memKeys) UpdateSigningKey(_ context.Context, k *tollgate.SigningKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.keys {
		if o.ID == k.ID {
			o.State, o.ActivateAt, o.RetiredAt, o.RemoveAfter = k.State, k.ActivateAt, k.RetiredAt, k.RemoveAfter
			return nil
		}
	}
	return tollgate.Errorf(tollgate.ENotFound, "key not found")
}

func (s *memKeys) DeleteSigningKey(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.keys {
		if o.ID == id {
			s.keys = slices.Delete(s.keys, i, i+1)
			return nil
		}
	}
	return tollgate.Errorf(tollgate.ENotFound, "key not found")
}

func (s *memKeys) all() []*tollgate.SigningKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*tollgate.SigningKey
	for _, k := range s.keys {
		c := *k
		out = append(out, &c)
	}
	return out
}

// fakeClock is a settable clock for expiry tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
