package main

import (
	"context"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/redis"
)

// runBan lists, adds and lifts IP bans in the store; running gateways
// apply them at once through Redis in cluster mode, and within their
// resync interval (5 s) on one node.
func runBan(ctx context.Context, args []string, env Env) error {
	verb, rest, err := sub("ban", args, env, "list", "add", "lift")
	if err != nil {
		return err
	}
	fs, cfgPath := newFlags("ban "+verb, env)
	dur, reason := new(time.Duration), new(string)
	if verb == "add" {
		dur = fs.Duration("for", 0, "how long (default: protection.ban_duration)")
		reason = fs.String("reason", "banned by an operator", "why")
	}
	var ip string
	if verb == "list" {
		err = noPositional(fs, rest)
	} else {
		ip, err = onePositional(fs, rest, "IP address or CIDR prefix")
	}
	if err != nil {
		return err
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, e *engines) error {
		opts := limit.BanOptions{Store: e.Bans, Logger: slog.New(slog.DiscardHandler)}
		if cfg.Redis != "" {
			db, err := redis.Open(cfg.Redis, redis.Options{Prefix: cfg.RedisPrefix})
			if err != nil {
				return fmt.Errorf("redis: %w", err)
			}
			defer db.Close()
			opts.Bus = db.Bus()
		}
		bans := limit.NewBans(cfg, opts)
		switch verb {
		case "add":
			d := *dur
			if d == 0 {
				d = cfg.Protection.BanDuration
			}
			b, err := bans.Ban(ctx, ip, d, *reason)
			if err != nil {
				return fmt.Errorf("ban add: %s", describe(err))
			}
			fmt.Fprintf(env.Stdout, "banned %s until %s\n", b.IP, b.Until.UTC().Format(time.RFC3339))
		case "lift":
			if err := bans.Lift(ctx, ip); err != nil {
				return fmt.Errorf("ban lift: %s", describe(err))
			}
			fmt.Fprintf(env.Stdout, "lifted the ban of %s\n", ip)
		default:
			list, err := bans.List(ctx)
			if err != nil {
				return fmt.Errorf("ban list: %w", err)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IP\tUNTIL\tREASON")
			for _, b := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", b.IP, b.Until.UTC().Format(time.RFC3339), b.Reason)
			}
			return tw.Flush()
		}
		return nil
	})
}
