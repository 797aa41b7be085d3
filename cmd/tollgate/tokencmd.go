package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/token"
)

// maxMintTTL bounds minted tokens: signing keys stay published this long
// after they retire.
const maxMintTTL = 24 * time.Hour

func runToken(ctx context.Context, args []string, env Env) error {
	_, args, err := sub("token", args, env, "mint")
	if err != nil {
		return err
	}
	fs, cfgPath := newFlags("token mint", env)
	userName := fs.String("user", "", "the token's user (required)")
	ttl := fs.Duration("ttl", 0, "lifetime (default: tokens.access_ttl; at most 24h)")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	if *userName == "" {
		return fmt.Errorf("token mint: --user is required")
	}
	if *ttl < 0 || *ttl > maxMintTTL {
		return fmt.Errorf("token mint: --ttl must be between 1s and %s", maxMintTTL)
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, store *engines) error {
		u, err := store.Users().UserByName(ctx, *userName)
		if err != nil {
			return fmt.Errorf("token mint: %s", describe(err))
		}
		if u.Disabled {
			return fmt.Errorf("token mint: user %s is disabled", u.Name)
		}
		pass, err := passphrase(cfg, env)
		if err != nil {
			return err
		}
		access, _, err := keyManagers(ctx, cfg, store, pass, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		iss, err := token.NewIssuer(access, nil, token.IssuerOptions{Issuer: cfg.PublicURL, Audience: cfg.Tokens.Audience, TTL: cfg.Tokens.AccessTTL})
		if err != nil {
			return err
		}
		tok, exp, err := iss.Issue(ctx, token.AccessClaims{
			Subject: u.ID, TenantID: u.TenantID, Role: u.Role, Scopes: cfg.Scopes(u.Role, u.Plan), Plan: cfg.PlanName(u.Plan), TTL: *ttl,
		})
		if err != nil {
			return fmt.Errorf("token mint: %w", err)
		}
		fmt.Fprintf(env.Stderr, "access token for %s, expires %s\n", u.Name, exp.UTC().Format(time.RFC3339))
		fmt.Fprintln(env.Stdout, tok)
		return nil
	})
}

func runKeys(ctx context.Context, args []string, env Env) error {
	_, args, err := sub("keys", args, env, "rotate")
	if err != nil {
		return err
	}
	fs, cfgPath := newFlags("keys rotate", env)
	now := fs.Bool("now", false, "sign with the new key at once instead of after tokens.rotation_delay")
	purpose := fs.String("purpose", token.PurposeAccess, "key set: access or internal")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	if *purpose != token.PurposeAccess && *purpose != token.PurposeInternal {
		return fmt.Errorf("keys rotate: --purpose must be %s or %s", token.PurposeAccess, token.PurposeInternal)
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, store *engines) error {
		pass, err := passphrase(cfg, env)
		if err != nil {
			return err
		}
		access, internal, err := keyManagers(ctx, cfg, store, pass, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		km := access
		if *purpose == token.PurposeInternal {
			km = internal
		}
		delay := cfg.Tokens.RotationDelay
		if *now {
			delay = 0
		}
		if err := km.RotateAfter(ctx, delay); err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		fmt.Fprintf(env.Stdout, "rotated the %s keys: the new key is published now and signs from %s; the old one stays published until its tokens expire\n",
			*purpose, time.Now().Add(delay).UTC().Format(time.RFC3339))
		return nil
	})
}
