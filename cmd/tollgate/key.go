package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/token"
)

func runKey(ctx context.Context, args []string, env Env) error {
	verb, rest, err := sub("key", args, env, "create", "list", "revoke")
	if err != nil {
		return err
	}
	fs, cfgPath := newFlags("key "+verb, env)
	switch verb {
	case "create":
		userName := fs.String("user", "", "the key's user (required)")
		label := fs.String("name", "", "a label for the key")
		if err := noPositional(fs, rest); err != nil {
			return err
		}
		if *userName == "" {
			return fmt.Errorf("key create: --user is required")
		}
		return withStore(ctx, env, *cfgPath, func(_ *config.Config, store *engines) error {
			u, err := store.Users().UserByName(ctx, *userName)
			if err != nil {
				return fmt.Errorf("key create: %s", describe(err))
			}
			raw, key := token.NewAPIKey(u.ID, *label, time.Now())
			if err := store.APIKeys().CreateAPIKey(ctx, key); err != nil {
				return fmt.Errorf("key create: %w", err)
			}
			fmt.Fprintf(env.Stderr, "API key %s for user %s (shown once; store it now):\n", key.ID, u.Name)
			fmt.Fprintln(env.Stdout, raw)
			return nil
		})
	case "list":
		userName := fs.String("user", "", "the keys' user (required)")
		if err := noPositional(fs, rest); err != nil {
			return err
		}
		if *userName == "" {
			return fmt.Errorf("key list: --user is required")
		}
		return withStore(ctx, env, *cfgPath, func(_ *config.Config, store *engines) error {
			u, err := store.Users().UserByName(ctx, *userName)
			if err != nil {
				return fmt.Errorf("key list: %s", describe(err))
			}
			keys, err := store.APIKeys().APIKeys(ctx, u.ID)
			if err != nil {
				return fmt.Errorf("key list: %w", err)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCREATED\tLAST USED\tSTATUS")
			for _, k := range keys {
				status, used := "active", "never"
				if k.Revoked {
					status = "revoked"
				}
				if !k.LastUsedAt.IsZero() {
					used = k.LastUsedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.CreatedAt.UTC().Format(time.RFC3339), used, status)
			}
			return tw.Flush()
		})
	default: // revoke
		id, err := onePositional(fs, rest, "key ID")
		if err != nil {
			return err
		}
		return withStore(ctx, env, *cfgPath, func(_ *config.Config, store *engines) error {
			if err := store.APIKeys().RevokeAPIKey(ctx, id); err != nil {
				return fmt.Errorf("key revoke: %s", describe(err))
			}
			fmt.Fprintf(env.Stdout, "API key %s revoked\n", id)
			return nil
		})
	}
}
