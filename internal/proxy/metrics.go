package proxy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// unmatchedRoute labels requests that matched no route; it cannot collide
// with a route name, which allows no parentheses.
const unmatchedRoute = "(unmatched)"

// metrics are the data plane's Prometheus collectors. Labels are bounded:
// route names from the config and status classes.
type metrics struct {
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	inFlight       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_proxy_requests_total",
			Help: "Requests on configured routes by route and status class.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_proxy_request_duration_seconds",
			Help:    "Time from request to the end of the response, by route.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"route"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_proxy_upstream_errors_total",
			Help: "Upstream connection failures and timeouts by route.",
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_proxy_in_flight_requests",
			Help: "Requests being served on configured routes.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.requests, err = register(reg, m.requests)
	if err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.upstreamErrors, err = register(reg, m.upstreamErrors); err != nil {
		return nil, err
	}
	if m.inFlight, err = register(reg, m.inFlight); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or reuses the collector already registered under
// the same name (a second Proxy on the same registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// routeMetrics are a route's children, resolved once so the hot path does
// no label lookups.
type routeMetrics struct {
	byClass        [6]prometheus.Counter // index status/100; 0 unused
	latency        prometheus.Observer
	upstreamErrors prometheus.Counter
}

func (m *metrics) forRoute(name string) *routeMetrics {
	rm := &routeMetrics{
		latency:        m.latency.WithLabelValues(name),
		upstreamErrors: m.upstreamErrors.WithLabelValues(name),
	}
	for c := 1; c <= 5; c++ {
		rm.byClass[c] = m.requests.WithLabelValues(name, string(rune('0'+c))+"xx")
	}
	return rm
}

func (rm *routeMetrics) observe(status int, seconds float64) {
	c := status / 100
	if c < 1 || c > 5 {
		c = 5
	}
	rm.byClass[c].Inc()
	rm.latency.Observe(seconds)
}
