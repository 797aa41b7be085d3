package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Webhook events a prediction may name in webhook_events_filter.
var webhookEvents = []string{"start", "output", "logs", "completed"}

// webhookThrottle is the least time between two output or logs events of
// one job.
const webhookThrottle = 500 * time.Millisecond

// webhookAttempts bounds the deliveries of one event.
const webhookAttempts = 6

// webhookSecret returns the caller's webhook signing secret, derived from
// the link key, so no secret is stored and rotating the key rotates them.
func webhookSecret(key []byte, o tollgate.Owner) string {
	h := hmac.New(sha256.New, key)
	fmt.Fprintf(h, "tollgate-webhook-secret-v1\n%s\n%s", o.TenantID, o.UserID)
	return "whsec_" + base64.StdEncoding.EncodeToString(h.Sum(nil)[:24])
}

// signWebhook signs a message per Standard Webhooks: HMAC-SHA256 with the
// secret's bytes over "id.timestamp.body", as "v1,<base64>".
func signWebhook(secret, id string, ts int64, body []byte) string {
	raw, _ := base64.StdEncoding.DecodeString(secret[len("whsec_"):])
	h := hmac.New(sha256.New, raw)
	fmt.Fprintf(h, "%s.%d.", id, ts)
	h.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// checkWebhook validates a webhook URL and events filter at submit. URLs
// that resolve to loopback, private or link-local addresses are refused
// unless allowPrivate; the dialer checks again at each delivery, so a
// name that later resolves elsewhere is refused too.
func checkWebhook(ctx context.Context, raw string, events []string, allowPrivate bool) ([]string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, tollgate.Errorf(tollgate.EInputInvalid, "webhook: want an http(s) URL")
	}
	for _, e := range events {
		if !slices.Contains(webhookEvents, e) {
			return nil, tollgate.Errorf(tollgate.EInputInvalid, "webhook_events_filter: %q is not one of start, output, logs, completed", e)
		}
	}
	if len(events) == 0 {
		events = webhookEvents
	}
	if !allowPrivate {
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
		if err != nil || len(addrs) == 0 {
			return nil, tollgate.Errorf(tollgate.EInputInvalid, "webhook: the host does not resolve")
		}
		for _, a := range addrs {
			if !publicAddr(a) {
				return nil, tollgate.Errorf(tollgate.EInputInvalid, "webhook: loopback and private addresses are refused")
			}
		}
	}
	return slices.Clone(events), nil
}

func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast()
}

// webhookClient is an HTTP client whose dialer refuses non-public
// addresses unless allowPrivate.
func webhookClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !publicAddr(ap.Addr()) {
				return errors.New("webhook address is not public")
			}
			return nil
		}
	}
	tr := &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second, MaxIdleConnsPerHost: 4}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// delivery is one webhook event to send.
type delivery struct {
	url    string
	secret string
	body   []byte
}

// webhooks sends events from a bounded queue on a few workers, with
// retries and back-off, so a slow receiver never delays scheduling.
type webhooks struct {
	client  *http.Client
	log     *slog.Logger
	backoff time.Duration
	queue   chan delivery

	mu   sync.Mutex
	last map[string]time.Time // last output/logs event per job
}

func newWebhooks(client *http.Client, log *slog.Logger, backoff time.Duration) *webhooks {
	return &webhooks{client: client, log: log, backoff: backoff, queue: make(chan delivery, 1024), last: map[string]time.Time{}}
}

// run delivers until ctx ends.
func (w *webhooks) run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case d := <-w.queue:
					w.deliver(ctx, d)
				}
			}
		})
	}
	wg.Wait()
}

// send queues event of j if its filter names it; output and logs events
// are throttled per job. A full queue drops the event (logged).
func (w *webhooks) send(j *tollgate.Job, event string, secret string, body func() []byte, now time.Time) {
	if j.Webhook == "" || !slices.Contains(j.WebhookEvents, event) {
		return
	}
	if event == "output" || event == "logs" {
		w.mu.Lock()
		if now.Sub(w.last[j.ID]) < webhookThrottle {
			w.mu.Unlock()
			return
		}
		w.last[j.ID] = now
		w.mu.Unlock()
	}
	if event == "completed" {
		w.mu.Lock()
		delete(w.last, j.ID)
		w.mu.Unlock()
	}
	select {
	case w.queue <- delivery{url: j.Webhook, secret: secret, body: body()}:
	default:
		w.log.Warn("jobs: webhook queue full; event dropped", "job", j.ID, "event", event)
	}
}

// deliver posts one event, retrying with doubling back-off on errors and
// on 5xx or 429 answers.
func (w *webhooks) deliver(ctx context.Context, d delivery) {
	id := "msg_" + rand.Text()
	wait := w.backoff
	for attempt := 1; ; attempt++ {
		ts := time.Now().Unix()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", signWebhook(d.secret, id, ts, d.body))
		resp, err := w.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 || (resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests) {
				return
			}
		}
		if attempt == webhookAttempts {
			w.log.Warn("jobs: webhook not delivered", "url_host", req.URL.Host, "attempts", attempt)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// notify sends a job's event to its webhook with the prediction as body.
func (s *Service) notify(j *tollgate.Job, event string) {
	if j.Webhook == "" {
		return
	}
	s.hooks.send(j, event, webhookSecret(s.opts.LinkKey, j.Owner), func() []byte {
		b, _ := json.Marshal(s.render(j))
		return b
	}, s.now())
}
