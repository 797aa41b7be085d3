package meter

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// writer is the ledger's group commit, in two independent parts. Open
// records: a request that finds no write running writes its own record and
// every record queued meanwhile (it leads); one that finds a write running
// queues its record and waits, and the first waiting request leads the
// next write. So a request waits for at most one write before its own,
// never for a disk write of its own per record, never behind a batch of
// settlements, and an open record costs no hand-off to another goroutine
// when nothing else is being written. Settlements: queued and not waited
// for; a loop writes them in batches that linger up to interval for
// company, and retries a failed batch with back-off.
type writer struct {
	ledger   tollgate.Ledger
	log      *slog.Logger
	now      func() time.Time
	maxBatch int
	interval time.Duration

	settles chan *tollgate.UsageRecord
	dones   sync.Pool    // of chan openResult (buffered 1), reused by open
	mu      sync.RWMutex // held shared by every open; stopAndFlush takes it
	stop    bool
	wg      sync.WaitGroup

	qmu     sync.Mutex // guards the open queue
	queue   []openOp   // open records waiting for the next write
	writing bool       // a request leads a write

	fmu       sync.Mutex // guards the settlement failure
	settleErr error      // why the last settlement batch failed; nil once one succeeds
	failSince time.Time  // when settlements started failing
}

// settleFailure returns why settlements fail and since when, or nil.
func (w *writer) settleFailure() (error, time.Time) {
	w.fmu.Lock()
	defer w.fmu.Unlock()
	return w.settleErr, w.failSince
}

func (w *writer) settled(err error) {
	w.fmu.Lock()
	defer w.fmu.Unlock()
	if err != nil && w.settleErr == nil {
		w.failSince = w.now()
	}
	w.settleErr = err
}

type openOp struct {
	rec  *tollgate.UsageRecord
	done chan openResult
}

// openResult is what a waiting open receives: the outcome of the write
// that held its record, or lead: write the queue yourself.
type openResult struct {
	err  error
	lead bool
}

func newWriter(l tollgate.Ledger, log *slog.Logger, maxBatch int, interval time.Duration) *writer {
	return &writer{ledger: l, log: log, now: time.Now, maxBatch: maxBatch, interval: interval,
		settles: make(chan *tollgate.UsageRecord, 4*maxBatch)}
}

// start runs the settlement loop until stopAndFlush.
func (w *writer) start() {
	w.wg.Go(w.runSettles)
}

// stopAndFlush refuses new records, waits for the open records being
// written, writes every queued settlement and returns.
func (w *writer) stopAndFlush() {
	w.mu.Lock()
	if !w.stop {
		w.stop = true
		close(w.settles)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// open writes an open record, in a shared write, and returns once it is
// in the ledger (or the write failed). Once queued the record is written
// even if the client left, so the caller knows whether it exists.
func (w *writer) open(_ context.Context, r *tollgate.UsageRecord) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.stop {
		return tollgate.Errorf(tollgate.EUnavailable, "the gateway is shutting down")
	}
	done, _ := w.dones.Get().(chan openResult)
	if done == nil {
		done = make(chan openResult, 1)
	}
	defer w.dones.Put(done) // drained: every op gets exactly one result
	w.qmu.Lock()
	w.queue = append(w.queue, openOp{rec: r, done: done})
	if w.writing {
		w.qmu.Unlock()
		res := <-done
		if !res.lead {
			return res.err
		}
		w.qmu.Lock()
	}
	w.writing = true
	n := min(len(w.queue), w.maxBatch)
	batch := make([]openOp, n)
	copy(batch, w.queue)
	w.queue = append(w.queue[:0], w.queue[n:]...)
	w.qmu.Unlock()

	w.writeOpens(batch)

	w.qmu.Lock()
	if len(w.queue) > 0 {
		w.queue[0].done <- openResult{lead: true} // the next write's leader
	} else {
		w.writing = false
	}
	w.qmu.Unlock()
	return (<-done).err
}

// writeOpens writes a batch of open records and tells each its outcome.
func (w *writer) writeOpens(batch []openOp) {
	ctx := context.Background()
	recs := make([]*tollgate.UsageRecord, len(batch))
	for i, op := range batch {
		recs[i] = op.rec
	}
	if err := w.ledger.Write(ctx, recs, nil); err == nil {
		for _, op := range batch {
			op.done <- openResult{}
		}
		return
	}
	// One bad record must not fail its neighbours: retry one by one.
	for _, op := range batch {
		op.done <- openResult{err: w.ledger.Write(ctx, []*tollgate.UsageRecord{op.rec}, nil)}
	}
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

// runSettles writes settlements in batches, retrying failed ones with
// back-off; at stop it makes a last attempt, and what still fails stays
// open in the ledger, to be reconciled at the next start.
func (w *writer) runSettles() {
	ctx := context.Background()
	var pending []*tollgate.UsageRecord
	backoff := time.Duration(0)
	for {
		var first *tollgate.UsageRecord
		ok := true
		if len(pending) == 0 {
			first, ok = <-w.settles
		} else {
			// Retry what failed now (the back-off was slept below), with
			// or without new company: a replica out of traffic while its
			// store was down must still settle once the store is back.
			select {
			case first, ok = <-w.settles:
			default:
			}
		}
		if !ok {
			if len(pending) > 0 {
				if err := w.ledger.Write(ctx, nil, pending); err != nil {
					w.log.Error("usage ledger: settlements lost at stop; reconciled at next start", "records", len(pending), "err", err)
				}
			}
			return
		}
		var batch []*tollgate.UsageRecord
		closed := false
		if first != nil {
			batch, closed = w.gather(first)
		}
		batch = append(pending, batch...)
		err := w.ledger.Write(ctx, nil, batch)
		w.settled(err)
		if err != nil {
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
