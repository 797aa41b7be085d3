package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/postgres"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// cutProxy forwards a local port to the database until cut: then the port
// is closed and every connection through it dropped.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
		}
	})
	t.Cleanup(func() { p.cut(); p.wg.Wait() })
	return p
}

func (p *cutProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestUnreachableIsUnavailable: once the database cannot be reached, the
// stores answer EUnavailable with a Retry-After (so callers get 503 and
// retry), for single reads, reads row by row, writes and transactions.
func TestUnreachableIsUnavailable(t *testing.T) {
	ctx := context.Background()
	dbURL, schema := newSchema(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	db, err := postgres.Open(ctx, u.String(), postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Users().UserByName(ctx, "nobody"); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Fatalf("UserByName with the database up = %v, want not found", err)
	}
	p.cut()

	now := time.Now()
	for name, op := range map[string]func() error{
		"UserByName": func() error { _, err := db.Users().UserByName(ctx, "alice"); return err },
		"Tenants":    func() error { _, err := db.Tenants().Tenants(ctx); return err },
		"CreateTenant": func() error {
			return db.Tenants().CreateTenant(ctx, &tollgate.Tenant{Name: "acme"})
		},
		"LedgerWrite": func() error {
			return db.Ledger().Write(ctx, []*tollgate.UsageRecord{{RequestID: "r1", Start: now, UserID: "u1", Route: "chat"}}, nil)
		},
		"Committed": func() error {
			_, err := db.Ledger().Committed(ctx, tollgate.ScopeUser, "u1", now.Add(-time.Hour))
			return err
		},
		"CreateRefreshToken": func() error {
			return db.RefreshTokens().CreateRefreshToken(ctx, &tollgate.RefreshToken{Hash: []byte("h"), FamilyID: "f", UserID: "u1",
				IssuedAt: now, ExpiresAt: now.Add(time.Hour), FamilyExpiresAt: now.Add(time.Hour)})
		},
	} {
		err := op()
		var e *tollgate.Error
		if tollgate.ErrorCode(err) != tollgate.EUnavailable || !errors.As(err, &e) || e.RetryAfter < 1 {
			t.Errorf("%s with the database unreachable = %v; want %s with a Retry-After", name, err, tollgate.EUnavailable)
		}
	}
}
