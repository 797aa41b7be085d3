package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/internal/admin"
	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func runUser(ctx context.Context, args []string, env Env) error {
	verb, rest, err := sub("user", args, env, "add", "passwd", "disable", "enable", "delete", "list")
	if err != nil {
		return err
	}
	switch verb {
	case "add":
		return userAdd(ctx, rest, env)
	case "passwd":
		return userPasswd(ctx, rest, env)
	case "delete":
		return userDelete(ctx, rest, env)
	case "list":
		return userList(ctx, rest, env)
	default:
		return userSetDisabled(ctx, verb, rest, env)
	}
}

func userAdd(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("user add", env)
	password := fs.String("password", "", "password, at least 8 characters (or TOLLGATE_USER_PASSWORD)")
	tenant := fs.String("tenant", "default", "tenant id; created when missing")
	role := fs.String("role", "user", "role from the config's roles")
	plan := fs.String("plan", "", "plan from the config's plans (default: the default plan)")
	name, err := onePositional(fs, args, "user NAME")
	if err != nil {
		return err
	}
	if *password == "" {
		*password = env.Getenv("TOLLGATE_USER_PASSWORD")
	}
	switch {
	case *password == "":
		return errors.New("user add: --password is missing (or set TOLLGATE_USER_PASSWORD)")
	case len(*password) < 8:
		return errors.New("user add: --password must have at least 8 characters")
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, store *engines) error {
		u, err := admin.CreateUser(ctx, cfg, store, auth.NewHasher(1), name, *password, *tenant, *role, *plan)
		if err != nil {
			return fmt.Errorf("user add: %s", describe(err))
		}
		fmt.Fprintf(env.Stdout, "created user %s (id %s, tenant %s, role %s, plan %s)\n", u.Name, u.ID, u.TenantID, u.Role, cfg.PlanName(u.Plan))
		return nil
	})
}

// userPasswd sets a user's password, from --password or else the first
// line of stdin, and revokes the tokens the user holds.
func userPasswd(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("user passwd", env)
	password := fs.String("password", "", "the new password, at least 8 characters (default: the first line of stdin)")
	name, err := onePositional(fs, args, "user NAME")
	if err != nil {
		return err
	}
	if *password == "" {
		if *password, err = readPassword(env, name); err != nil {
			return err
		}
	}
	if len(*password) < 8 {
		return errors.New("user passwd: the password must have at least 8 characters")
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, store *engines) error {
		u, err := store.Users().UserByName(ctx, name)
		if err != nil {
			return fmt.Errorf("user passwd: %s", describe(err))
		}
		hash, err := auth.NewHasher(1).Hash(ctx, *password)
		if err != nil {
			return fmt.Errorf("user passwd: %w", err)
		}
		// Tokens issued before the change stop working (iat has whole
		// seconds: the mark is the next second).
		after := time.Now().Truncate(time.Second).Add(time.Second)
		if _, err := store.Users().UpdateUser(ctx, u.ID, tollgate.UserUpdate{PasswordHash: &hash, TokensValidAfter: &after}); err != nil {
			return fmt.Errorf("user passwd: %s", describe(err))
		}
		if err := store.RefreshTokens().RevokeUserRefreshTokens(ctx, u.ID); err != nil {
			return fmt.Errorf("revoke refresh tokens: %w", err)
		}
		fmt.Fprintf(env.Stdout, "password of user %s changed; its tokens and sessions are revoked\n", u.Name)
		return nil
	})
}

// userDelete removes a user with its API keys and sessions; its usage
// records stay. The tokens it holds are denied until the longest of them
// has expired, on every gateway within a second.
func userDelete(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("user delete", env)
	name, err := onePositional(fs, args, "user NAME")
	if err != nil {
		return err
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, store *engines) error {
		u, err := store.Users().UserByName(ctx, name)
		if err != nil {
			return fmt.Errorf("user delete: %s", describe(err))
		}
		// The denylist entry first: once the row is gone, its marks are too.
		now := time.Now()
		rev := &tollgate.Revocation{Issuer: cfg.PublicURL, JTI: token.UserJTI(u.ID),
			ExpiresAt: now.Add(max(cfg.Tokens.AccessTTL, maxMintTTL) + cfg.Tokens.Leeway), CreatedAt: now}
		if err := store.Revocations().Revoke(ctx, rev); err != nil {
			return fmt.Errorf("user delete: revoke tokens: %w", err)
		}
		if err := store.Users().DeleteUser(ctx, u.ID); err != nil {
			return fmt.Errorf("user delete: %s", describe(err))
		}
		fmt.Fprintf(env.Stdout, "deleted user %s (id %s) with its API keys and sessions; its usage records stay\n", u.Name, u.ID)
		return nil
	})
}

// readPassword reads the first line of stdin, prompting when it is a
// terminal.
func readPassword(env Env, name string) (string, error) {
	if env.Stdin == nil {
		return "", errors.New("user passwd: --password is missing and there is no stdin to read it from")
	}
	if f, ok := env.Stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintf(env.Stderr, "new password for %s (it is echoed): ", name)
		}
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("user passwd: read stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("user passwd: --password is missing and stdin is empty")
	}
	return line, nil
}

func userSetDisabled(ctx context.Context, verb string, args []string, env Env) error {
	fs, cfgPath := newFlags("user "+verb, env)
	name, err := onePositional(fs, args, "user NAME")
	if err != nil {
		return err
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, store *engines) error {
		u, err := store.Users().UserByName(ctx, name)
		if err != nil {
			return fmt.Errorf("user %s: %s", verb, describe(err))
		}
		disabled := verb == "disable"
		upd := tollgate.UserUpdate{Disabled: &disabled}
		if disabled {
			// Also invalidate every token issued so far, so replicas that
			// miss the fan-out still refuse them.
			now := time.Now()
			upd.TokensValidAfter = &now
			if err := store.RefreshTokens().RevokeUserRefreshTokens(ctx, u.ID); err != nil {
				return fmt.Errorf("revoke refresh tokens: %w", err)
			}
		}
		if _, err := store.Users().UpdateUser(ctx, u.ID, upd); err != nil {
			return fmt.Errorf("user %s: %s", verb, describe(err))
		}
		fmt.Fprintf(env.Stdout, "user %s %sd\n", name, verb)
		return nil
	})
}

func userList(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("user list", env)
	tenant := fs.String("tenant", "", "only this tenant")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, store *engines) error {
		users, err := store.Users().Users(ctx, *tenant)
		if err != nil {
			return fmt.Errorf("list users: %w", err)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tID\tTENANT\tROLE\tPLAN\tSTATUS")
		for _, u := range users {
			status := "active"
			if u.Disabled {
				status = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, u.ID, u.TenantID, u.Role, cfg.PlanName(u.Plan), status)
		}
		return tw.Flush()
	})
}

// describe renders an error for a terminal: the user-safe message of a
// tollgate error, the full chain otherwise.
func describe(err error) string {
	var te *tollgate.Error
	if errors.As(err, &te) {
		return te.Message
	}
	return err.Error()
}
