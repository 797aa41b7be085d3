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

// errHelp marks a --help that was answered: nothing failed.
var errHelp = errors.New("help")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// synopses are the command lines, in the order of the usage text; each
// subcommand's --help starts with its own.
var synopses = []struct{ name, line string }{
	{"serve", "tollgate serve [--config FILE] [--demo] [--pprof 127.0.0.1:6060]"},
	{"config check", "tollgate config check [--config FILE] [--demo]   (validate; print the effective config)"},
	{"migrate", "tollgate migrate"},
	{"user add", "tollgate user add NAME --password P [--tenant default] [--role user] [--plan P]"},
	{"user passwd", "tollgate user passwd NAME [--password P]   (else the first line of stdin)"},
	{"user disable", "tollgate user disable|enable NAME"},
	{"user enable", "tollgate user disable|enable NAME"},
	{"user delete", "tollgate user delete NAME"},
	{"user list", "tollgate user list [--tenant T]"},
	{"tenant list", "tollgate tenant list"},
	{"tenant add", "tollgate tenant add ID [--name NAME]"},
	{"tenant rename", "tollgate tenant rename ID --name NAME"},
	{"tenant disable", "tollgate tenant disable|enable ID   (its users cannot authenticate while disabled)"},
	{"tenant enable", "tollgate tenant disable|enable ID   (its users cannot authenticate while disabled)"},
	{"key create", "tollgate key create --user NAME [--name LABEL]   (prints the key once)"},
	{"key list", "tollgate key list --user NAME"},
	{"key revoke", "tollgate key revoke ID"},
	{"token mint", "tollgate token mint --user NAME [--ttl 15m]   (default: tokens.access_ttl)"},
	{"keys rotate", "tollgate keys rotate [--now] [--purpose access|internal]"},
	{"usage", "tollgate usage [--from 2026-11-01] [--to 2026-11-30] [--group-by user|tenant|route|model|day]\n" +
		"               [--user NAME] [--tenant T] [--route R] [--format table|csv|json]   (--to is inclusive of its day)"},
	{"invoice", "tollgate invoice --tenant T --month 2026-11 [--format json|csv]"},
	{"export", "tollgate export [--after CURSOR] [--limit N]   (CloudEvents JSON lines)"},
	{"budget set", "tollgate budget set --user NAME|--tenant T --amount 5.00 [--period month] [--alerts 80,100]"},
	{"budget clear", "tollgate budget clear --user NAME|--tenant T"},
	{"budget list", "tollgate budget list"},
	{"ban list", "tollgate ban list"},
	{"ban add", "tollgate ban add IP|CIDR [--for 15m] [--reason R]   (default: protection.ban_duration)"},
	{"ban lift", "tollgate ban lift IP|CIDR"},
	{"audit", "tollgate audit [--from D] [--to D] [--actor USER] [--action A] [--limit N] [--cursor C] [--format table|json]"},
	{"jobs list", "tollgate jobs list [--model M] [--status S] [--user NAME] [--limit N] [--format table|json]"},
	{"jobs show", "tollgate jobs show ID"},
	{"jobs cancel", "tollgate jobs cancel ID"},
	{"version", "tollgate version"},
}

// synopsis returns the command lines of a command or of a group of
// subcommands ("user").
func synopsis(name string) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, s := range synopses {
		if (s.name == name || strings.HasPrefix(s.name, name+" ")) && !seen[s.line] {
			seen[s.line] = true
			b.WriteString("  " + s.line + "\n")
		}
	}
	return b.String()
}

func usageText() string {
	var b strings.Builder
	b.WriteString("tollgate — a metered, multi-tenant gateway for AI inference servers\n\nUsage:\n")
	seen := map[string]bool{}
	for _, s := range synopses {
		if !seen[s.line] {
			seen[s.line] = true
			b.WriteString("  " + s.line + "\n")
		}
	}
	b.WriteString(`
Every command takes --config FILE (or TOLLGATE_CONFIG) and works against the
same store as the server; "tollgate COMMAND --help" describes its flags.
`)
	return b.String()
}

// Run runs the command line args (without the program name).
func Run(ctx context.Context, args []string, env Env) error {
	err := run(ctx, args, env)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func run(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usageText())
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, env)
	case "config":
		return runConfig(ctx, rest, env)
	case "migrate":
		return runMigrate(ctx, rest, env)
	case "user":
		return runUser(ctx, rest, env)
	case "tenant":
		return runTenant(ctx, rest, env)
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
	case "audit":
		return runAudit(ctx, rest, env)
	case "jobs":
		return runJobs(ctx, rest, env)
	case "version", "--version":
		fs, _ := newFlags("version", env)
		if err := noPositional(fs, rest); err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, "tollgate", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usageText())
		return nil
	default:
		fmt.Fprintf(env.Stderr, "tollgate: unknown command %q\n\n%s", cmd, usageText())
		return errUsage
	}
}

// flags is a command's flag set with the --config flag every command
// takes; --help prints the command's synopsis and flags on stdout.
type flags struct {
	*flag.FlagSet
	env Env
}

// newFlags returns the flag set of the command name ("user add").
func newFlags(name string, env Env) (*flags, *string) {
	fs := &flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: env}
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage:\n%s\nFlags:\n", synopsis(name))
		fs.PrintDefaults()
	}
	cfg := fs.String("config", env.Getenv("TOLLGATE_CONFIG"), "config file (env TOLLGATE_CONFIG)")
	return fs, cfg
}

// parse parses flags that may stand before and after positional
// arguments, and returns the positional ones. --help answers errHelp.
func parse(fs *flags, args []string) ([]string, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(fs.env.Stdout)
			fs.Usage()
			return nil, errHelp
		}
	}
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
func onePositional(fs *flags, args []string, what string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	switch {
	case len(pos) == 0:
		return "", fmt.Errorf("%s: %s is missing\nUsage:\n%s", fs.Name(), what, synopsis(fs.Name()))
	case len(pos) > 1:
		return "", fmt.Errorf("%s: want one %s, got %d (%s)", fs.Name(), what, len(pos), strings.Join(pos, " "))
	}
	return pos[0], nil
}

// noPositional parses flags and refuses positional arguments.
func noPositional(fs *flags, args []string) error {
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
		fmt.Fprintf(env.Stderr, "tollgate %s: want one of: %s\nUsage:\n%s", cmd, strings.Join(known, ", "), synopsis(cmd))
		return "", nil, errUsage
	}
	for _, k := range known {
		if args[0] == k {
			return k, args[1:], nil
		}
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(env.Stdout, "Usage:\n%s", synopsis(cmd))
		return "", nil, errHelp
	}
	fmt.Fprintf(env.Stderr, "tollgate %s: unknown subcommand %q; want one of: %s\nUsage:\n%s", cmd, args[0], strings.Join(known, ", "), synopsis(cmd))
	return "", nil, errUsage
}
