package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// runJobs lists, shows and cancels jobs in the store:
// tollgate jobs list [--model M] [--status S] [--user NAME] [--limit N] [--format table|json],
// tollgate jobs show ID, tollgate jobs cancel ID.
func runJobs(ctx context.Context, args []string, env Env) error {
	verb, rest, err := sub("jobs", args, env, "list", "show", "cancel")
	if err != nil {
		return err
	}
	fs, cfgPath := newFlags("jobs "+verb, env)
	model := fs.String("model", "", "only this job model (list)")
	status := fs.String("status", "", "only this status: starting, processing, succeeded, failed, canceled (list)")
	userName := fs.String("user", "", "only this user's jobs, by name (list)")
	limit := fs.Int("limit", 100, "at most this many, newest first (list)")
	format := fs.String("format", "table", "table or json (list)")
	var id string
	if verb == "list" {
		err = noPositional(fs, rest)
	} else {
		id, err = onePositional(fs, rest, "job id")
	}
	if err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("jobs: --format must be table or json")
	}
	return withStore(ctx, env, *cfgPath, func(_ *config.Config, e *engines) error {
		var list []*tollgate.Job
		switch verb {
		case "list":
			f := tollgate.JobFilter{Model: *model, Status: tollgate.JobStatus(*status), Limit: *limit}
			if *userName != "" {
				u, err := e.Users().UserByName(ctx, *userName)
				if err != nil {
					return fmt.Errorf("jobs list: %s", describe(err))
				}
				f.TenantID, f.UserID = u.TenantID, u.ID
			}
			if list, err = e.Jobs.AllJobs(ctx, f); err != nil {
				return fmt.Errorf("jobs list: %s", describe(err))
			}
		case "show":
			j, err := e.Jobs.JobByID(ctx, id)
			if err != nil {
				return fmt.Errorf("jobs show: %s", describe(err))
			}
			list, *format = []*tollgate.Job{j}, "json"
		case "cancel":
			j, err := jobs.CancelJob(ctx, e.Jobs, id, time.Now())
			if err != nil {
				return fmt.Errorf("jobs cancel: %s", describe(err))
			}
			list = []*tollgate.Job{j}
		}
		return jobs.WriteJobs(env.Stdout, list, *format)
	})
}
