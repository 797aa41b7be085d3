package meter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// EventBudgetThreshold is the webhook event of a crossed budget alert.
const EventBudgetThreshold = "budget.threshold"

// Alert is the JSON body posted to webhooks when a budget crosses one of
// its alert thresholds; sent once per threshold per period.
type Alert struct {
	Type        string    `json:"type"` // EventBudgetThreshold
	Scope       string    `json:"scope"`
	ID          string    `json:"id"` // user or tenant id
	Percent     int       `json:"percent"`
	Period      string    `json:"period"`
	PeriodStart time.Time `json:"period_start"` // zero for total
	Committed   string    `json:"committed"`    // spent plus in flight
	Limit       string    `json:"limit"`
	Currency    string    `json:"currency"`
	Time        time.Time `json:"time"`
}

// checkAlerts compares counters after a settlement with each budget's
// thresholds and sends the alerts crossed for the first time.
func (m *Meter) checkAlerts(ctx context.Context, bs []budget, vals []tollgate.Money) {
	for i, b := range bs {
		if i >= len(vals) || vals[i] < 0 || b.limit <= 0 {
			continue
		}
		for _, pct := range b.alerts {
			if int64(vals[i])*100 < int64(b.limit)*int64(pct) || m.hooks.seen(b.key, pct) {
				continue
			}
			first := true
			if m.opts.Budgets != nil {
				var err error
				if first, err = m.opts.Budgets.MarkAlert(ctx, b.scope, b.id, b.start, pct); err != nil {
					m.log.Error("budget alert: could not record", "err", err)
					continue
				}
			}
			m.hooks.markSeen(b.key, pct)
			if !first {
				continue
			}
			a := Alert{Type: EventBudgetThreshold, Scope: string(b.scope), ID: b.id, Percent: pct, Period: b.period,
				PeriodStart: b.start, Committed: vals[i].String(), Limit: b.limit.String(), Currency: m.cfg.Currency, Time: m.now().UTC()}
			m.log.Warn("budget alert", "scope", a.Scope, "id", a.ID, "percent", pct, "period", b.period,
				"committed", a.Committed, "limit", a.Limit)
			m.hooks.send(a)
		}
	}
}

// webhooks posts alerts to the configured URLs from one goroutine,
// retrying each with exponential backoff.
type webhooks struct {
	targets []config.Webhook
	client  *http.Client
	log     *slog.Logger
	backoff time.Duration
	queue   chan Alert

	mu   sync.Mutex
	sent map[string]bool // key/percent already handled by this process
}

func newWebhooks(targets []config.Webhook, c *http.Client, log *slog.Logger, backoff time.Duration) *webhooks {
	return &webhooks{targets: targets, client: c, log: log, backoff: backoff,
		queue: make(chan Alert, 1024), sent: map[string]bool{}}
}

func (w *webhooks) seen(key string, pct int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent[fmt.Sprintf("%s/%d", key, pct)]
}

func (w *webhooks) markSeen(key string, pct int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent[fmt.Sprintf("%s/%d", key, pct)] = true
}

// send queues an alert; when the queue is full the alert is only logged.
func (w *webhooks) send(a Alert) {
	if len(w.targets) == 0 {
		return
	}
	select {
	case w.queue <- a:
	default:
		w.log.Error("budget alert webhook queue full; alert only logged", "scope", a.Scope, "id", a.ID, "percent", a.Percent)
	}
}

func (w *webhooks) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-w.queue:
			for _, t := range w.targets {
				if len(t.Events) == 0 || slices.Contains(t.Events, a.Type) {
					w.post(ctx, t.URL, a)
				}
			}
		}
	}
}

// post delivers one alert, retrying up to 6 attempts on errors and 5xx.
func (w *webhooks) post(ctx context.Context, url string, a Alert) {
	body, _ := json.Marshal(a)
	delay := w.backoff
	for attempt := 1; ; attempt++ {
		err := w.postOnce(ctx, url, body)
		if err == nil {
			return
		}
		if attempt == 6 || ctx.Err() != nil {
			w.log.Error("budget alert webhook failed", "url", url, "attempts", attempt, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func (w *webhooks) postOnce(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tollgate")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook post: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook post: status %d", resp.StatusCode)
	}
	return nil
}
