package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the delivery's Prometheus collectors. Labels are bounded:
// the four events, a few outcomes.
type metrics struct {
	messages *prometheus.CounterVec // by event and outcome
	attempts *prometheus.CounterVec // by result
}

func newMetrics(reg prometheus.Registerer, pending func() float64) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_webhook_messages_total",
			Help: "Webhook messages settled, by event and outcome (delivered, given_up, superseded, dropped).",
		}, []string{"event", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_webhook_attempts_total",
			Help: "Webhook delivery attempts, by result (ok, retryable, final).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_webhook_pending_predictions",
		Help: "Predictions with webhook messages waiting in this process.",
	}, pending)
	for _, c := range []prometheus.Collector{m.messages, m.attempts, gauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register webhook metrics: %w", err)
		}
	}
	return m, nil
}

// outcomeLabel names an outcome in the metrics; "" for one not counted.
func outcomeLabel(o outcome, durable bool) string {
	switch {
	case o == delivered:
		return "delivered"
	case o == givenUp:
		return "given_up"
	case o == superseded:
		return "superseded"
	case o == released && !durable:
		return "dropped"
	}
	return ""
}
