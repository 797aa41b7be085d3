package proxy

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Start runs the active health checks of routes with a health_check: each
// upstream gets GET <upstream><path> every interval; one that does not
// answer 2xx within the interval (at most 5s) is skipped by its pool until
// it does. Start returns at once; Stop ends the checks.
func (p *Proxy) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	client := &http.Client{Transport: p.transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, rt := range p.routes.all {
		if rt.health == nil {
			continue
		}
		var ups []*backend
		for _, pl := range rt.pools() {
			ups = append(ups, pl.ups...)
		}
		interval := rt.health.Interval
		if interval <= 0 {
			interval = 10 * time.Second
		}
		path := rt.health.Path
		if path == "" {
			path = "/health"
		}
		wg.Go(func() { checkLoop(ctx, client, ups, path, interval) })
	}
	p.stop = func() { cancel(); wg.Wait() }
	return nil
}

// Stop ends the health checks and closes idle upstream connections.
func (p *Proxy) Stop() {
	p.mu.Lock()
	stop := p.stop
	p.stop = nil
	p.mu.Unlock()
	if stop != nil {
		stop()
	}
	if t, ok := p.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

func checkLoop(ctx context.Context, client *http.Client, ups []*backend, path string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, u := range ups {
			wg.Go(func() { u.activeDown.Store(!probe(ctx, client, u, path, interval)) })
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe reports whether the upstream answered the health check with 2xx.
func probe(ctx context.Context, client *http.Client, u *backend, path string, interval time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, min(interval, 5*time.Second))
	defer cancel()
	target := strings.TrimSuffix(u.url.String(), "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false
	}
	res, err := client.Do(req)
	if err != nil {
		return ctx.Err() != nil && ctx.Err() == context.Canceled // stopping: keep the state
	}
	_ = res.Body.Close()
	return res.StatusCode >= 200 && res.StatusCode < 300
}
