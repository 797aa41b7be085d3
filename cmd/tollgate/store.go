package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/postgres"
	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// migrator is a store whose schema can be brought up to date.
type migrator interface {
	tollgate.Store
	Migrate(ctx context.Context) error
}

// openStore opens the configured store (SQLite in data_dir, or PostgreSQL)
// and migrates it.
func openStore(ctx context.Context, cfg *config.Config) (tollgate.Store, error) {
	var db migrator
	if strings.HasPrefix(cfg.Store, "postgres") {
		pg, err := postgres.Open(ctx, cfg.Store)
		if err != nil {
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
		db = pg
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data_dir: %w", err)
		}
		lite, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "tollgate.db"))
		if err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
		db = lite
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate store: %w", err)
	}
	return db, nil
}

// loadConfig loads the config file named by --config (or TOLLGATE_CONFIG).
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// withStore loads the config, opens the store, and runs fn.
func withStore(ctx context.Context, cfgPath string, fn func(*config.Config, tollgate.Store) error) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(cfg, store)
}

func runMigrate(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("migrate", env)
	if err := noPositional(fs, args); err != nil {
		return err
	}
	return withStore(ctx, *cfgPath, func(cfg *config.Config, _ tollgate.Store) error {
		fmt.Fprintf(env.Stdout, "store %s is up to date\n", storeName(cfg))
		return nil
	})
}

func storeName(cfg *config.Config) string {
	if strings.HasPrefix(cfg.Store, "postgres") {
		return "postgres"
	}
	return filepath.Join(cfg.DataDir, "tollgate.db")
}
