package meter

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// writer is the ledger's group commit, in two independent loops. Open
// records: every record queued while a write runs goes into the next
// one, so a request waits for one shared write, never for a disk write of
// its own, and never behind a batch of settlements. Settlements: queued
// and not waited for; a batch lingers up to interval for company, and a
// failed batch is retried with back-off.
type writer struct {
	ledger   tollgate.Ledger
	log      *slog.Logger
	maxBatch int
	interval time.Duration

	opens   chan openOp
	settles chan *tollgate.UsageRecord
	dones   sync.Pool    // of chan error (buffered 1), reused by open
	mu      sync.RWMutex // guards stop against sends after stopAndFlush
	stop    bool
	wg      sync.WaitGroup
}

type openOp struct {
	rec  *tollgate.UsageRecord
	done chan error
}

func newWriter(l tollgate.Ledger, log *slog.Logger, maxBatch int, interval time.Duration) *writer {
	return &writer{ledger: l, log: log, maxBatch: maxBatch, interval: interval,
		opens: make(chan openOp, 4*maxBatch), settles: make(chan *tollgate.UsageRecord, 4*maxBatch)}
}

// start runs both loops until stopAndFlush.
func (w *writer) start() {
	w.wg.Add(2)
	go func() { defer w.wg.Done(); w.runOpens() }()
	go func() { defer w.wg.Done(); w.runSettles() }()
}

// stopAndFlush refuses new records, writes every queued one and returns.
func (w *writer) stopAndFlush() {
	w.mu.Lock()
	if !w.stop {
		w.stop = true
		close(w.opens)
		close(w.settles)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// open queues an open record and waits for its write.
func (w *writer) open(ctx context.Context, r *tollgate.UsageRecord) error {
	done, _ := w.dones.Get().(chan error)
	if done == nil {
		done = make(chan error, 1)
	}
	op := openOp{rec: r, done: done}
	w.mu.RLock()
	if w.stop {
		w.mu.RUnlock()
		return tollgate.Errorf(tollgate.EUnavailable, "the gateway is shutting down")
	}
	select {
	case w.opens <- op:
	case <-ctx.Done():
		w.mu.RUnlock()
		w.dones.Put(done)
		return ctx.Err()
	}
	w.mu.RUnlock()
	// Once queued the record will be written; wait for it even if the
	// client left, so the caller knows whether it exists. The writer sends
	// once, so the drained channel can serve the next record.
	err := <-done
	w.dones.Put(done)
	return err
}

// settle queues a settlement; it does not wait for the write. After stop
// it reports false and the record stays open, to be reconciled.
func (w *writer) settle(r *tollgate.UsageRecord) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.stop {
		return false
	}
	w.settles <- r
	return true
}

// runOpens writes open records as soon as they come, batching what queued
// up meanwhile.
func (w *writer) runOpens() {
	ctx := context.Background()
	for first := range w.opens {
		batch := []openOp{first}
	gather:
		for len(batch) < w.maxBatch {
			select {
			case op, ok := <-w.opens:
				if !ok {
					break gather
				}
				batch = append(batch, op)
			default:
				break gather
			}
		}
		recs := make([]*tollgate.UsageRecord, len(batch))
		for i, op := range batch {
			recs[i] = op.rec
		}
		if err := w.ledger.Write(ctx, recs, nil); err == nil {
			for _, op := range batch {
				op.done <- nil
			}
			continue
		}
		// One bad record must not fail its neighbours: retry one by one.
		for _, op := range batch {
			op.done <- w.ledger.Write(ctx, []*tollgate.UsageRecord{op.rec}, nil)
		}
	}
}

// runSettles writes settlements in batches, retrying failed ones with
// back-off; at stop it makes a last attempt, and what still fails stays
// open in the ledger, to be reconciled at the next start.
func (w *writer) runSettles() {
	ctx := context.Background()
	var pending []*tollgate.UsageRecord
	backoff := time.Duration(0)
	for {
		first, ok := <-w.settles
		if !ok {
			if len(pending) > 0 {
				if err := w.ledger.Write(ctx, nil, pending); err != nil {
					w.log.Error("usage ledger: settlements lost at stop; reconciled at next start", "records", len(pending), "err", err)
				}
			}
			return
		}
		batch, closed := w.gather(first)
		batch = append(pending, batch...)
		if err := w.ledger.Write(ctx, nil, batch); err != nil {
			w.log.Error("usage ledger: settling failed; will retry", "records", len(batch), "err", err)
			pending = batch
			backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
			if !closed {
				time.Sleep(backoff)
			}
		} else {
			pending, backoff = nil, 0
		}
		if closed {
			if len(pending) > 0 {
				if err := w.ledger.Write(ctx, nil, pending); err != nil {
					w.log.Error("usage ledger: settlements lost at stop; reconciled at next start", "records", len(pending), "err", err)
				}
			}
			return
		}
	}
}

// gather collects the settlements queued behind first, up to maxBatch,
// waiting up to interval for more; closed reports the queue was closed.
func (w *writer) gather(first *tollgate.UsageRecord) (batch []*tollgate.UsageRecord, closed bool) {
	batch = []*tollgate.UsageRecord{first}
	var timer <-chan time.Time
	if w.interval > 0 {
		timer = time.After(w.interval)
	}
	for len(batch) < w.maxBatch {
		if timer == nil {
			select {
			case r, ok := <-w.settles:
				if !ok {
					return batch, true
				}
				batch = append(batch, r)
				continue
			default:
				return batch, false
			}
		}
		select {
		case r, ok := <-w.settles:
			if !ok {
				return batch, true
			}
			batch = append(batch, r)
		case <-timer:
			return batch, false
		}
	}
	return batch, false
}
