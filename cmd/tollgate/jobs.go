package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/s3"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// mountJobs starts the jobs service (the predictions API) over the
// store's queue, results under data_dir/results, the limiter (a create
// spends the caller's rate limits) and the meter, and registers its
// endpoints. Without job models it does nothing.
func (g *gateway) mountJobs(ctx context.Context, mux *front) error {
	if err := g.newComfyRoutes(); err != nil {
		return err
	}
	if len(g.cfg.Jobs) == 0 && len(g.comfy) == 0 {
		return nil
	}
	blobs, err := openResults(ctx, g.cfg.Results, g.cfg.DataDir)
	if err != nil {
		return err
	}
	key, err := jobs.LoadLinkKey(filepath.Join(g.cfg.DataDir, "results.key"))
	if err != nil {
		return err
	}
	svc, err := jobs.New(g.cfg, jobs.Options{
		Store: g.store.Jobs, Blobs: blobs, LinkKey: key, Admission: g.meter, Limits: g.prot.limiter.Creates(), Cluster: g.store.Cluster, Logger: g.log, Metrics: g.registry,
		Webhooks: g.webhooks, Backends: g.comfyBackends(),
		Principal: func(r *http.Request) *tollgate.Principal { return auth.PrincipalFrom(r.Context()) },
		// A disabled tenant's queued jobs do not start (the denylist holds
		// every replica's view of disabled tenants).
		OwnerDisabled: func(o tollgate.Owner) bool { return g.identity.verifier.Denylist().TenantDisabled(o.TenantID) },
	})
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	g.closers = append(g.closers, svc.Stop) // runs before the meter's Stop
	for _, rt := range g.comfy {
		rt.SetJobs(svc)
		g.closers = append(g.closers, rt.Close) // before the jobs' Stop
		if err := rt.Resume(ctx); err != nil {
			return err
		}
	}
	svc.Register(mux, g.identity.auth.Require)
	g.jobs = svc
	return nil
}

// openResults opens the result store: S3 when results is an s3:// URL,
// else files under dataDir/results.
func openResults(ctx context.Context, results, dataDir string) (tollgate.BlobStore, error) {
	if results == "" {
		return jobs.NewFileBlobs(filepath.Join(dataDir, "results"))
	}
	cfg, err := s3.ParseURL(results, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	return s3.Open(ctx, cfg)
}
