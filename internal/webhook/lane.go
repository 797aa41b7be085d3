package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// A lane holds the messages of one prediction waiting to go out, in
// order, and the goroutine that sends them one at a time.
type lane struct {
	id    string
	queue []*message    // waiting; guarded by Service.mu
	wake  chan struct{} // signalled when queue changes
	// lastThrottled is when the last output or logs message went out.
	lastThrottled time.Time
	done          bool // the completed message was taken
}

// message is one webhook message and its delivery row.
type message struct {
	row     *tollgate.WebhookDelivery
	durable bool // row is in the store

	// mu orders the updates of the stored row (row.Attempts included), so
	// that a lease renewal never revives a row already settled.
	mu         sync.Mutex
	leaseUntil time.Time // when this process's lease on the row ends
	settled    bool
}

// throttled reports whether an event is coalesced and throttled.
func throttled(event string) bool {
	return event == tollgate.WebhookOutput || event == tollgate.WebhookLogs
}

// outcome says what became of a message taken off a lane.
type outcome int

const (
	delivered  outcome = iota // the receiver answered 2xx
	superseded                // a newer message of its prediction replaced it
	givenUp                   // out of attempts or time, or refused
	released                  // the service stopped; a stored one waits for the next
)

// enqueue puts m on its prediction's lane, starting the lane when needed.
func (s *Service) enqueue(m *message) {
	var drop []*message
	var why outcome
	s.mu.Lock()
	drop, why = s.enqueueLocked(m)
	s.mu.Unlock()
	for _, d := range drop {
		s.settle(d, why, nil)
	}
}

func (s *Service) enqueueLocked(m *message) ([]*message, outcome) {
	pid := m.row.PredictionID
	if m.durable {
		s.held[m.row.ID] = m
		m.leaseUntil = m.row.LeaseUntil
	}
	if _, ok := s.finished[pid]; ok {
		return []*message{m}, superseded // nothing after completed
	}
	l := s.lanes[pid]
	if l == nil {
		if s.ctx == nil || len(s.lanes) >= s.cfg.MaxPending {
			if !m.durable {
				s.cfg.Logger.Warn("webhook dropped: service stopped or full", "prediction", pid, "event", m.row.Event)
			}
			return []*message{m}, released
		}
		l = &lane{id: pid, wake: make(chan struct{}, 1)}
		s.lanes[pid] = l
		ctx := s.ctx
		s.wg.Go(func() { s.run(ctx, l) })
	}
	var drop []*message
	switch ev := m.row.Event; {
	case throttled(ev):
		if n := len(l.queue); n > 0 && throttled(l.queue[n-1].row.Event) {
			drop = append(drop, l.queue[n-1])
			l.queue[n-1] = m
		} else {
			l.queue = append(l.queue, m)
		}
	case ev == tollgate.WebhookCompleted:
		keep := l.queue[:0]
		for _, q := range l.queue {
			if throttled(q.row.Event) {
				drop = append(drop, q)
			} else {
				keep = append(keep, q)
			}
		}
		l.queue = append(keep, m)
		l.done = true
		s.finished[pid] = s.cfg.Now()
	default:
		l.queue = append(l.queue, m)
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return drop, superseded
}

// run sends a lane's messages until it is empty and its throttle window
// has passed, or ctx ends.
func (s *Service) run(ctx context.Context, l *lane) {
	for {
		s.mu.Lock()
		now := s.cfg.Now()
		open := l.lastThrottled.Add(s.cfg.Throttle).Sub(now)
		if len(l.queue) == 0 {
			if l.done || open <= 0 {
				delete(s.lanes, l.id)
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			// Stay for the window, so the next output still waits for it.
			if !s.sleep(ctx, l, open) {
				s.abandon(l)
				return
			}
			continue
		}
		m := l.queue[0]
		if throttled(m.row.Event) && open > 0 {
			s.mu.Unlock()
			if !s.sleep(ctx, l, open) {
				s.abandon(l)
				return
			}
			continue
		}
		l.queue = l.queue[1:]
		if throttled(m.row.Event) {
			l.lastThrottled = now
		}
		s.mu.Unlock()
		if !s.deliver(ctx, l, m) {
			s.abandon(l)
			return
		}
	}
}

// sleep waits d, or less when the lane changes. false when ctx ended.
func (s *Service) sleep(ctx context.Context, l *lane, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-l.wake:
	}
	return true
}

// newer reports whether the lane holds a message waiting.
func (s *Service) newer(l *lane) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(l.queue) > 0
}

// abandon closes a lane whose context ended, releasing what it held.
func (s *Service) abandon(l *lane) {
	s.mu.Lock()
	if s.lanes[l.id] == l {
		delete(s.lanes, l.id)
	}
	rest := l.queue
	l.queue = nil
	s.mu.Unlock()
	for _, m := range rest {
		s.settle(m, released, nil)
	}
}
