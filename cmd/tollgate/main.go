// Command tollgate is a metered, multi-tenant gateway for AI inference
// servers. main handles signals and the exit code; Run does the rest and is
// reused by the end-to-end tests.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := Run(ctx, os.Args[1:], env); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "tollgate:", err)
		}
		os.Exit(exitCode(err))
	}
}
