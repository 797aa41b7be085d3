package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// runTenant lists, adds, renames, disables and enables tenants. A
// disabled tenant's users cannot log in, and their tokens, API keys and
// sessions are refused by running gateways from their next reload of
// the store (within a second).
func runTenant(ctx context.Context, args []string, env Env) error {
	verb, rest, err := sub("tenant", args, env, "list", "add", "rename", "disable", "enable")
	if err != nil {
		return err
	}
	fs, cfgPath := newFlags("tenant "+verb, env)
	name := new(string)
	if verb == "add" || verb == "rename" {
		name = fs.String("name", "", "the tenant's display name")
	}
	var id string
	if verb == "list" {
		err = noPositional(fs, rest)
	} else {
		id, err = onePositional(fs, rest, "tenant ID")
	}
	if err != nil {
		return err
	}
	*name = strings.TrimSpace(*name)
	if verb == "rename" && *name == "" {
		return fmt.Errorf("tenant rename: --name is missing")
	}
	return withStore(ctx, env, *cfgPath, func(_ *config.Config, e *engines) error {
		tenants := e.Tenants()
		switch verb {
		case "list":
			return tenantList(ctx, e, env)
		case "add":
			t := &tollgate.Tenant{ID: id, Name: *name}
			if t.Name == "" {
				t.Name = id
			}
			if err := tenants.CreateTenant(ctx, t); err != nil {
				return fmt.Errorf("tenant add: %s", describe(err))
			}
			fmt.Fprintf(env.Stdout, "created tenant %s (%s)\n", t.ID, t.Name)
			return nil
		}
		t, err := tenants.Tenant(ctx, id)
		if err != nil {
			return fmt.Errorf("tenant %s: %s", verb, describe(err))
		}
		upd := tollgate.TenantUpdate{Name: name}
		if verb != "rename" {
			disabled := verb == "disable"
			upd = tollgate.TenantUpdate{Disabled: &disabled}
		}
		if t, err = tenants.UpdateTenant(ctx, t.ID, upd); err != nil {
			return fmt.Errorf("tenant %s: %s", verb, describe(err))
		}
		if verb == "rename" {
			fmt.Fprintf(env.Stdout, "tenant %s renamed %s\n", t.ID, t.Name)
		} else {
			fmt.Fprintf(env.Stdout, "tenant %s %sd\n", t.ID, verb)
		}
		return nil
	})
}

func tenantList(ctx context.Context, e *engines, env Env) error {
	ts, err := e.Tenants().Tenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	users, err := e.Users().Users(ctx, "")
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	count := map[string]int{}
	for _, u := range users {
		count[u.TenantID]++
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tUSERS\tSTATUS")
	for _, t := range ts {
		status := "active"
		if t.Disabled {
			status = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", t.ID, t.Name, count[t.ID], status)
	}
	return tw.Flush()
}
