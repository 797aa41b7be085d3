package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

const benchYAML = `
plans:
  free: {rate_limit: 1000000/s}
jobs:
  - name: bench/echo
    backend: http
    upstreams: [http://127.0.0.1:9]
    inputs:
      prompt: {type: string, required: true, max: 100}
      size: {type: integer, default: 512, min: 256, max: 1280}
    price: {per_request: "0.01", per_gpu_second: "0.001"}
`

// BenchmarkJobCreate measures predictions created per second through the
// HTTP API (in process: input checks, the rate limits, the meter's
// reservation and usage record, the store's enqueue, the answer with its
// queue_position), with an empty queue and with 10,000 jobs of 1,000
// users already queued, creates spread over those users from 16 clients
// at once. The service only takes jobs (SubmitOnly),
// so the queue keeps growing (go test -run '^$' -bench JobCreate
// ./internal/jobs, with TOLLGATE_TEST_POSTGRES for the PostgreSQL run).
func BenchmarkJobCreate(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, queued := range []int{0, 10_000} {
			b.Run(fmt.Sprintf("%s/queued=%d/users=1000", engine, queued), func(b *testing.B) { benchCreate(b, engine, queued, 1000) })
		}
	}
}

func benchCreate(b *testing.B, engine string, queued, users int) {
	dir := b.TempDir()
	store, led, _ := openEngine(b, engine, dir)
	mux := http.NewServeMux()
	api := httptest.NewServer(mux)
	b.Cleanup(api.Close)
	cfg, err := config.Parse([]byte("public_url: " + api.URL + "\n" + benchYAML))
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	m, err := meter.New(cfg, meter.Options{Ledger: led, Budgets: led, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Stop)
	lim, err := limit.New(cfg, limit.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	blobs, err := jobs.NewFileBlobs(filepath.Join(dir, "results"))
	if err != nil {
		b.Fatal(err)
	}
	key, err := jobs.LoadLinkKey(filepath.Join(dir, "results.key"))
	if err != nil {
		b.Fatal(err)
	}
	principals := make([]*tollgate.Principal, users)
	for i := range principals {
		principals[i] = &tollgate.Principal{UserID: fmt.Sprintf("usr_%04d", i), TenantID: "t", Role: "user", Plan: "free", Scopes: []string{"jobs"}}
	}
	svc, err := jobs.New(cfg, jobs.Options{Store: store, Blobs: blobs, LinkKey: key, SubmitOnly: true, Logger: quiet,
		Admission: m, Limits: lim.Creates(),
		Principal: func(r *http.Request) *tollgate.Principal {
			p, _ := r.Context().Value(principalKey{}).(*tollgate.Principal)
			return p
		}})
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Stop) // before the meter's Stop
	svc.Register(mux, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			i, _ := strconv.Atoi(r.Header.Get("X-Bench-User"))
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principals[i])))
		})
	})
	for i := range queued {
		p := principals[i%users]
		storetest.MustEnqueue(b, store, storetest.NewJob(tollgate.Owner{TenantID: p.TenantID, UserID: p.UserID}, "bench/echo", fmt.Sprintf("seed%06d", i)))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	url := api.URL + "/v1/models/bench/echo/predictions"
	body := []byte(`{"input": {"prompt": "a lighthouse at dusk", "size": 640}}`)
	var next atomic.Int64
	b.SetParallelism(8) // 8 × GOMAXPROCS clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Bench-User", strconv.Itoa(int(next.Add(1))%users))
			resp, err := client.Do(req)
			if err != nil {
				b.Errorf("create: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("create: %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}
