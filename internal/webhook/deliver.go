package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// attemptResult is what one attempt learned.
type attemptResult struct {
	err        error         // nil when delivered
	permanent  bool          // retrying cannot help
	retryAfter time.Duration // the receiver's Retry-After, when it sent one
}

// label names the result in the metrics.
func (r attemptResult) label() string {
	switch {
	case r.err == nil:
		return "ok"
	case r.permanent:
		return "final"
	}
	return "retryable"
}

// deliver makes the attempts of m, waiting with back-off between them.
// false when ctx ended (m is then released).
func (s *Service) deliver(ctx context.Context, l *lane, m *message) bool {
	deadline := m.row.CreatedAt.Add(s.cfg.MaxElapsed)
	var last error
	for {
		if m.row.Attempts >= s.cfg.MaxAttempts {
			s.settle(m, givenUp, last)
			return true
		}
		s.extend(m, s.cfg.Now().Add(s.cfg.Lease))
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			s.settle(m, released, nil)
			return false
		}
		res := s.attempt(ctx, m)
		<-s.sem
		m.mu.Lock()
		m.row.Attempts++
		m.mu.Unlock()
		s.metrics.attempts.WithLabelValues(res.label()).Inc()
		switch {
		case res.err == nil:
			s.settle(m, delivered, nil)
			return true
		case ctx.Err() != nil:
			s.settle(m, released, nil)
			return false
		case res.permanent:
			s.settle(m, givenUp, res.err)
			return true
		}
		last = res.err
		wait := s.backoff(m.row.Attempts)
		if res.retryAfter > 0 {
			wait = min(res.retryAfter, s.cfg.MaxBackoff)
		}
		now := s.cfg.Now()
		if m.row.Attempts >= s.cfg.MaxAttempts || now.Add(wait).After(deadline) {
			s.settle(m, givenUp, last)
			return true
		}
		if s.newer(l) {
			s.settle(m, superseded, last)
			return true
		}
		s.extend(m, now.Add(wait+s.cfg.Lease))
		switch s.wait(ctx, l, wait) {
		case waitCanceled:
			s.settle(m, released, nil)
			return false
		case waitSuperseded:
			s.settle(m, superseded, last)
			return true
		}
	}
}

type waitEnd int

const (
	waitDone waitEnd = iota
	waitCanceled
	waitSuperseded
)

// wait waits d before a retry; a newer message of the lane ends it early.
func (s *Service) wait(ctx context.Context, l *lane, d time.Duration) waitEnd {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return waitCanceled
		case <-t.C:
			return waitDone
		case <-l.wake:
			if s.newer(l) {
				return waitSuperseded
			}
		}
	}
}

// backoff is the wait after the nth failed attempt: InitialBackoff doubled
// per attempt, capped at MaxBackoff, of which a random half is taken off.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.InitialBackoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	half := d / 2
	return d - half + rand.N(half+1)
}

// attempt sends m once.
func (s *Service) attempt(ctx context.Context, m *message) attemptResult {
	key, err := s.cfg.Secrets.Key(ctx, m.row.TenantID, m.row.UserID)
	if err != nil {
		return attemptResult{err: err}
	}
	actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, m.row.URL, bytes.NewReader(m.row.Body))
	if err != nil {
		return attemptResult{err: fmt.Errorf("webhook request: %w", err), permanent: true}
	}
	now := s.cfg.Now()
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "tollgate-webhook")
	h.Set(HeaderID, m.row.ID)
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, Sign(key, m.row.ID, now, m.row.Body))
	resp, err := s.client.Do(req)
	if err != nil {
		return attemptResult{err: err, permanent: errors.Is(err, errRefusedAddress)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return attemptResult{}
	case c == http.StatusTooManyRequests || c == http.StatusRequestTimeout || c >= 500:
		return attemptResult{err: fmt.Errorf("receiver answered %d", c), retryAfter: retryAfter(resp.Header.Get("Retry-After"), now)}
	default:
		return attemptResult{err: fmt.Errorf("receiver answered %d", c), permanent: true}
	}
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(n)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// extend keeps a stored message leased to this process until until.
func (s *Service) extend(m *message, until time.Time) {
	if !m.durable {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.settled {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.ExtendWebhookDelivery(ctx, m.row.ID, m.row.Attempts, until); err != nil {
		s.cfg.Logger.Warn("extend stored webhook", "id", m.row.ID, "err", err)
		return
	}
	m.leaseUntil = until
}

// settle records what became of m: a stored message is removed, or, when
// released, left for the next process at once.
func (s *Service) settle(m *message, o outcome, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.settled {
		return
	}
	log := s.cfg.Logger.With("id", m.row.ID, "prediction", m.row.PredictionID, "event", m.row.Event,
		"host", host(m.row.URL), "attempts", m.row.Attempts)
	if l := outcomeLabel(o, m.durable); l != "" {
		s.metrics.messages.WithLabelValues(m.row.Event, l).Inc()
	}
	switch o {
	case givenUp:
		log.Warn("webhook given up", "err", err)
	case superseded:
		log.Debug("webhook superseded by a newer one")
	case delivered:
		log.Debug("webhook delivered")
	}
	if !m.durable {
		return
	}
	m.settled = true
	s.mu.Lock()
	if s.held[m.row.ID] == m {
		delete(s.held, m.row.ID)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var serr error
	if o == released {
		serr = s.cfg.Store.ExtendWebhookDelivery(ctx, m.row.ID, m.row.Attempts, s.cfg.Now())
	} else {
		serr = s.cfg.Store.DeleteWebhookDelivery(ctx, m.row.ID)
	}
	if serr != nil {
		log.Warn("update stored webhook", "err", serr)
	}
}

// host returns the host of a webhook URL for logs (its path and query may
// hold a receiver's token).
func host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
