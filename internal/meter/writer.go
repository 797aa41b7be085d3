package meter

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// writer is the ledger's group commit: every record queued while a commit
// runs goes into the next one, so a request waits for one shared commit,
// never for a disk write of its own. Open records are committed as soon as
// the ledger is free (a request waits on them); a batch of settlements
// alone waits up to interval for company.
type writer struct {
	ledger   tollgate.Ledger
	log      *slog.Logger
	maxBatch int
	interval time.Duration

	in   chan writeOp
	mu   sync.RWMutex // guards stopped against sends after Stop
	stop bool
	done chan struct{}
}

type writeOp struct {
	rec  *tollgate.UsageRecord
	open bool
	done chan error // open only
}

func newWriter(l tollgate.Ledger, log *slog.Logger, maxBatch int, interval time.Duration) *writer {
	return &writer{ledger: l, log: log, maxBatch: maxBatch, interval: interval,
		in: make(chan writeOp, 4*maxBatch), done: make(chan struct{})}
}

// start runs the commit loop until stop.
func (w *writer) start() { go w.run() }

// stopAndFlush refuses new records, commits every queued one and returns.
func (w *writer) stopAndFlush() {
	w.mu.Lock()
	if !w.stop {
		w.stop = true
		close(w.in)
	}
	w.mu.Unlock()
	<-w.done
}

// open queues an open record and waits for its commit.
func (w *writer) open(ctx context.Context, r *tollgate.UsageRecord) error {
	op := writeOp{rec: r, open: true, done: make(chan error, 1)}
	w.mu.RLock()
	if w.stop {
		w.mu.RUnlock()
		return tollgate.Errorf(tollgate.EUnavailable, "the gateway is shutting down")
	}
	select {
	case w.in <- op:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	// Once queued the record will be committed; wait for it even if the
	// client left, so the caller knows whether it exists.
	return <-op.done
}

// settle queues a settlement; it does not wait for the commit. After stop
// it reports false and the record stays open, to be reconciled.
func (w *writer) settle(r *tollgate.UsageRecord) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.stop {
		return false
	}
	w.in <- writeOp{rec: r}
	return true
}

func (w *writer) run() {
	defer close(w.done)
	var pending []*tollgate.UsageRecord // settlements whose commit failed
	backoff := time.Duration(0)
	for {
		first, ok := <-w.in
		if !ok {
			w.flushPending(pending)
			return
		}
		batch := w.gather(first)
		pending = w.commit(batch, pending)
		if len(pending) > 0 {
			backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
			time.Sleep(backoff)
		} else {
			backoff = 0
		}
	}
}

// gather collects what is queued behind first, up to maxBatch; a batch of
// settlements only lingers up to interval for more.
func (w *writer) gather(first writeOp) []writeOp {
	batch := []writeOp{first}
	hasOpen := first.open
	var timer <-chan time.Time
	for len(batch) < w.maxBatch {
		select {
		case op, ok := <-w.in:
			if !ok {
				return batch
			}
			batch, hasOpen = append(batch, op), hasOpen || op.open
			continue
		default:
		}
		if hasOpen || w.interval <= 0 {
			return batch
		}
		if timer == nil {
			timer = time.After(w.interval)
		}
		select {
		case op, ok := <-w.in:
			if !ok {
				return batch
			}
			batch, hasOpen = append(batch, op), hasOpen || op.open
		case <-timer:
			return batch
		}
	}
	return batch
}

// commit writes a batch plus earlier failed settlements in one transaction
// and tells each waiting request. It returns the settlements still to do.
func (w *writer) commit(batch []writeOp, pending []*tollgate.UsageRecord) []*tollgate.UsageRecord {
	var open []*tollgate.UsageRecord
	settled := pending
	for _, op := range batch {
		if op.open {
			open = append(open, op.rec)
		} else {
			settled = append(settled, op.rec)
		}
	}
	ctx := context.Background()
	err := w.ledger.Write(ctx, open, settled)
	if err == nil {
		for _, op := range batch {
			if op.open {
				op.done <- nil
			}
		}
		return nil
	}
	// One bad record must not fail its neighbours: retry one by one.
	for _, op := range batch {
		if op.open {
			op.done <- w.ledger.Write(ctx, []*tollgate.UsageRecord{op.rec}, nil)
		}
	}
	if len(settled) == 0 {
		return nil
	}
	if err := w.ledger.Write(ctx, nil, settled); err != nil {
		w.log.Error("usage ledger: settling failed; will retry", "records", len(settled), "err", err)
		return settled
	}
	return nil
}

// flushPending makes a last attempt at failed settlements at stop; what
// still fails stays open in the ledger and is reconciled at the next start.
func (w *writer) flushPending(pending []*tollgate.UsageRecord) {
	if len(pending) == 0 {
		return
	}
	if err := w.ledger.Write(context.Background(), nil, pending); err != nil {
		w.log.Error("usage ledger: settlements lost at stop; reconciled at next start", "records", len(pending), "err", err)
	}
}
