package jobs

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// metrics are the jobs' Prometheus collectors. Labels are bounded by the
// config: model names, upstream URLs and the five statuses.
type metrics struct {
	wait     *prometheus.HistogramVec
	finished *prometheus.CounterVec
	queue    *queueCollector
}

func newMetrics(reg prometheus.Registerer, store tollgate.JobStore) (*metrics, error) {
	m := &metrics{
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_jobs_wait_seconds",
			Help:    "Time jobs waited in the queue before they started, by model.",
			Buckets: []float64{.1, .5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"model"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_jobs_finished_total",
			Help: "Jobs that ended, by model and status.",
		}, []string{"model", "status"}),
		queue: &queueCollector{store: store,
			queued:  prometheus.NewDesc("tollgate_jobs_queued", "Jobs waiting to start, by model, over every replica.", []string{"model"}, nil),
			running: prometheus.NewDesc("tollgate_jobs_running", "Jobs running, by upstream, over every replica.", []string{"upstream"}, nil)},
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.wait, m.finished, m.queue} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// queueCollector reads the queue's gauges from the store at each scrape.
type queueCollector struct {
	store           tollgate.JobStore
	queued, running *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queued
	ch <- c.running
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.queued, err)
		return
	}
	for model, n := range st.Queued {
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(n), model)
	}
	for upstream, n := range st.Running {
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(n), upstream)
	}
}
