package main

import (
	"context"
	"fmt"
)

// runConfig validates a config without starting anything and prints the
// effective config: tollgate config check [--config FILE] [--demo].
func runConfig(_ context.Context, args []string, env Env) error {
	if _, _, err := sub("config", args, env, "check"); err != nil {
		return err
	}
	fs, cfgPath := newFlags("config check", env)
	demoMode := fs.Bool("demo", false, "add the demo's routes, as serve --demo does")
	if err := noPositional(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *demoMode {
		// The demo backends listen on loopback ports chosen at start.
		if err := addDemoRoutes(cfg, "http://127.0.0.1:0", "http://127.0.0.1:0", "http://127.0.0.1:0"); err != nil {
			return err
		}
	}
	out, err := cfg.EffectiveYAML()
	if err != nil {
		return err
	}
	source := "no config file: the built-in defaults"
	if *cfgPath != "" {
		source = *cfgPath
	}
	fmt.Fprintf(env.Stdout, "# the effective config of %s, defaults filled, secrets masked\n", source)
	if *demoMode {
		fmt.Fprintln(env.Stdout, "# with the demo's routes; their backends listen on loopback ports chosen at start (shown as :0)")
	}
	fmt.Fprintf(env.Stdout, "%s", out)
	fmt.Fprintf(env.Stderr, "config %s is valid\n", source)
	return nil
}
