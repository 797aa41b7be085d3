package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// version is the release, set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Env is what a command may touch of its process: streams and environment.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Ready, when set, is called by serve with the bound address once it
	// accepts connections (used by tests).
	Ready func(addr string)
}

// errUsage marks errors whose usage text was already printed.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

const usage = `tollgate — a metered, multi-tenant gateway for AI inference servers

Usage:
  tollgate serve [--config FILE] [--demo]
  tollgate migrate
  tollgate user add NAME --password P --tenant T --role R [--plan P]
  tollgate user disable|enable NAME
  tollgate user list [--tenant T]
  tollgate key create --user NAME [--name LABEL]
  tollgate key list --user NAME
  tollgate key revoke ID
  tollgate token mint --user NAME [--ttl 1h]
  tollgate keys rotate [--now] [--purpose access|internal]
  tollgate usage [--from D] [--to D] [--group-by user|tenant|route|model|day]
                 [--user NAME] [--tenant T] [--route R] [--format table|csv|json]
  tollgate invoice --tenant T --month 2026-11 [--format json|csv]
  tollgate export [--after CURSOR] [--limit N]   (CloudEvents JSON lines)
  tollgate budget set --user NAME|--tenant T --amount 5.00 [--period day|month|total] [--alerts 80,100]
  tollgate budget clear --user NAME|--tenant T
  tollgate ban list | ban add IP|CIDR [--for 1h] [--reason R] | ban lift IP|CIDR
  tollgate jobs list [--model M] [--status S] [--user NAME] [--limit N] [--format table|json]
  tollgate jobs show ID | jobs cancel ID
  tollgate version

Every command takes --config FILE (or TOLLGATE_CONFIG) and works against the
same store as the server.
`

// Run runs the command line args (without the program name).
func Run(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, env)
	case "migrate":
		return runMigrate(ctx, rest, env)
	case "user":
		return runUser(ctx, rest, env)
	case "key":
		return runKey(ctx, rest, env)
	case "token":
		return runToken(ctx, rest, env)
	case "keys":
		return runKeys(ctx, rest, env)
	case "usage":
		return runUsage(ctx, rest, env)
	case "invoice":
		return runInvoice(ctx, rest, env)
	case "export":
		return runExport(ctx, rest, env)
	case "budget":
		return runBudget(ctx, rest, env)
	case "ban":
		return runBan(ctx, rest, env)
	case "jobs":
		return runJobs(ctx, rest, env)
	case "version", "--version":
		fmt.Fprintln(env.Stdout, "tollgate", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	default:
		fmt.Fprintf(env.Stderr, "tollgate: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// newFlags returns a flag set with the --config flag every command takes.
func newFlags(name string, env Env) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("tollgate "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfg := fs.String("config", env.Getenv("TOLLGATE_CONFIG"), "config file (env TOLLGATE_CONFIG)")
	return fs, cfg
}

// parse parses flags that may stand before and after positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// onePositional parses flags and requires exactly one positional argument
// named what.
func onePositional(fs *flag.FlagSet, args []string, what string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("%s: want exactly one %s, got %d (%s)", fs.Name(), what, len(pos), strings.Join(pos, " "))
	}
	return pos[0], nil
}

// noPositional parses flags and refuses positional arguments.
func noPositional(fs *flag.FlagSet, args []string) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), pos[0])
	}
	return nil
}

// sub splits "user add …" into the subcommand and its arguments.
func sub(cmd string, args []string, env Env, known ...string) (string, []string, error) {
	if len(args) == 0 {
		fmt.Fprintf(env.Stderr, "tollgate %s: want one of: %s\n", cmd, strings.Join(known, ", "))
		return "", nil, errUsage
	}
	for _, k := range known {
		if args[0] == k {
			return k, args[1:], nil
		}
	}
	fmt.Fprintf(env.Stderr, "tollgate %s: unknown subcommand %q; want one of: %s\n", cmd, args[0], strings.Join(known, ", "))
	return "", nil, errUsage
}
