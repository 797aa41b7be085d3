package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/postgres"
	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// ledger is what an engine's usage ledger offers: the records and the
// budget overrides.
type ledger interface {
	tollgate.Ledger
	tollgate.BudgetStore
}

// engines are the chosen store implementations: SQLite on one node, or
// PostgreSQL in cluster mode.
type engines struct {
	tollgate.Store
	Ledger ledger
	Bans   tollgate.BanStore
	Audit  tollgate.AuditStore
	Jobs   tollgate.JobStore
	// Webhooks keeps webhook signing secrets and pending deliveries.
	Webhooks tollgate.WebhookStore
	// Certs keeps ACME certificates in the store, shared by replicas;
	// nil on one node, where they are files under data_dir.
	Certs tollgate.CertStore
	// Cluster is true when the store is shared by replicas (PostgreSQL).
	Cluster bool
}

// openStore opens the configured store (SQLite in data_dir, or PostgreSQL)
// and migrates it. A store that did not exist (a SQLite file, or a
// PostgreSQL schema without tollgate's tables) is created, and notice is
// told so with its path: a command run without the server's
// --config would otherwise work on a store the server never sees.
func openStore(ctx context.Context, cfg *config.Config, notice io.Writer) (*engines, error) {
	if strings.HasPrefix(cfg.Store, "postgres") {
		var opts []postgres.Option
		// A search_path in the URL names the schema tollgate's tables live
		// in (created when missing).
		if u, err := url.Parse(cfg.Store); err == nil && u.Query().Get("search_path") != "" {
			opts = append(opts, postgres.WithSchema(u.Query().Get("search_path")))
		}
		pg, err := postgres.Open(ctx, cfg.Store, opts...)
		if err != nil {
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
		if empty, err := pg.Empty(ctx); err == nil && empty && notice != nil {
			fmt.Fprintf(notice, "tollgate: no store in PostgreSQL schema %q at %s: created a new, empty one\n", pg.Schema(), redactURL(cfg.Store))
		}
		if err := pg.Migrate(ctx); err != nil {
			pg.Close()
			return nil, fmt.Errorf("migrate store: %w", err)
		}
		return &engines{Store: pg, Ledger: pg.Ledger(), Bans: pg.Bans(), Audit: pg.Audit(), Jobs: pg.Jobs(), Webhooks: pg.Webhooks(), Certs: pg.Certs(), Cluster: true}, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data_dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "tollgate.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && notice != nil {
		fmt.Fprintf(notice, "tollgate: no store at %s: created a new, empty one (a gateway or command using another --config or data_dir does not see it)\n", absPath(path))
	}
	lite, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	if err := lite.Migrate(ctx); err != nil {
		lite.Close()
		return nil, fmt.Errorf("migrate store: %w", err)
	}
	return &engines{Store: lite, Ledger: lite.Ledger(), Bans: lite.Bans(), Audit: lite.Audit(), Jobs: lite.Jobs(), Webhooks: lite.Webhooks()}, nil
}

// loadConfig loads the config file named by --config (or TOLLGATE_CONFIG).
// Its errors name the file, the line and the key.
func loadConfig(path string) (*config.Config, error) {
	return config.Load(path)
}

// withStore loads the config, opens the store, and runs fn.
func withStore(ctx context.Context, env Env, cfgPath string, fn func(*config.Config, *engines) error) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	e, err := openStore(ctx, cfg, env.Stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	return fn(cfg, auditCLI(e))
}

func runMigrate(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("migrate", env)
	if err := noPositional(fs, args); err != nil {
		return err
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, _ *engines) error {
		fmt.Fprintf(env.Stdout, "store %s is up to date\n", storeName(cfg))
		return nil
	})
}

func storeName(cfg *config.Config) string {
	if strings.HasPrefix(cfg.Store, "postgres") {
		return "postgres"
	}
	return absPath(filepath.Join(cfg.DataDir, "tollgate.db"))
}

// absPath is path made absolute, or path when that fails.
func absPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	return abs
}

// redactURL is a store URL without its password, for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the configured URL"
	}
	return u.Redacted()
}
