package meter

import (
	"context"
	"sync"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// live holds the calls admitted and not yet released, so that Stop can
// settle those a drain cut off instead of leaving their records open.
type live struct {
	mu      sync.Mutex
	calls   map[*settlement]struct{}
	stopped bool
	busy    sync.WaitGroup // releases under way
}

// add registers an admitted call; false once Stop began.
func (l *live) add(s *settlement) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	if l.calls == nil {
		l.calls = map[*settlement]struct{}{}
	}
	l.calls[s] = struct{}{}
	return true
}

// take removes a call being released and counts its release as under
// way (the caller calls busy.Done); false when Stop settled it already.
func (l *live) take(s *settlement) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.calls[s]; !ok {
		return false
	}
	delete(l.calls, s)
	l.busy.Add(1)
	return true
}

// stop refuses further calls, waits for the releases under way and
// returns the calls still running.
func (l *live) stop() []*settlement {
	l.mu.Lock()
	l.stopped = true
	cut := make([]*settlement, 0, len(l.calls))
	for s := range l.calls {
		cut = append(cut, s)
	}
	clear(l.calls)
	l.mu.Unlock()
	l.busy.Wait()
	return cut
}

// settleCutOff settles, as cancelled, the calls still running when Stop
// began (a drain that ran out of time): each is charged as its route
// charges a call the client cancelled, with the units known so far, and
// its unspent reservation is released.
func (m *Meter) settleCutOff() {
	cut := m.live.stop()
	if len(cut) == 0 {
		return
	}
	end := m.now()
	for _, s := range cut {
		s.settle(context.Background(), &tollgate.Outcome{Status: statusCutOff, Result: tollgate.ResultCancelled, End: end})
	}
	m.log.Warn("usage ledger: settled calls cut off at shutdown", "records", len(cut), "outcome", tollgate.ResultCancelled)
}

// statusCutOff is the status recorded for a call cut off at shutdown:
// 499, as for a call whose client went away before it ended.
const statusCutOff = 499
