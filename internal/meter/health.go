package meter

import (
	"context"
	"errors"
	"syscall"
	"time"
)

// Budget counter modes reported by Health.
const (
	BudgetsLocal    = "local"    // one node: counters in process
	BudgetsRemote   = "redis"    // cluster: counters in Redis, shared by replicas
	BudgetsRefusing = "refusing" // Redis unreachable: metered calls are refused
)

// Health is what metering tells /readyz: whether a call can be recorded
// and its budgets checked right now.
type Health struct {
	Ledger  LedgerHealth `json:"ledger"`
	Budgets BudgetHealth `json:"budgets"`
}

// LedgerHealth says whether the usage ledger takes records.
type LedgerHealth struct {
	Writable bool `json:"writable"`
	// Error says why not (a short reason; the detail is in the log).
	Error string    `json:"error,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// BudgetHealth says where budgets are checked.
type BudgetHealth struct {
	Mode  string `json:"mode"` // local, redis or refusing
	Error string `json:"error,omitempty"`
}

// Ready reports whether a metered call can be admitted: the ledger writes
// and budgets can be checked.
func (h Health) Ready() bool { return h.Ledger.Writable && h.Budgets.Mode != BudgetsRefusing }

// writableLedger is a ledger that can tell, without a record, whether it
// would take one now (the SQLite journal backs off on a full disk).
type writableLedger interface {
	Writable(ctx context.Context) error
}

// pinger is a shared counter store that can tell whether it answers.
type pinger interface {
	Ping(ctx context.Context) error
}

// Health checks the ledger and the budget counters now: it asks the
// ledger whether it can write, looks at the last settlements, and pings
// shared counters. Detail of a failure is returned in errs for the log.
func (m *Meter) Health(ctx context.Context) (h Health, errs []error) {
	h.Ledger.Writable = true
	if wl, ok := m.ledger.(writableLedger); ok {
		if err := wl.Writable(ctx); err != nil {
			h.Ledger = LedgerHealth{Error: reason(err)}
			errs = append(errs, err)
		}
	}
	if err, since := m.writer.settleFailure(); err != nil && h.Ledger.Writable {
		h.Ledger = LedgerHealth{Error: "settlements fail: " + reason(err), Since: since.UTC()}
		errs = append(errs, err)
	}
	h.Budgets.Mode = BudgetsLocal
	if m.shared {
		h.Budgets.Mode = BudgetsRemote
		if p, ok := m.counters.(pinger); ok {
			if err := p.Ping(ctx); err != nil {
				h.Budgets = BudgetHealth{Mode: BudgetsRefusing, Error: "budget counters unreachable"}
				errs = append(errs, err)
			}
		}
	}
	return h, errs
}

// reason is a short, path-free account of a write failure.
func reason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "no space left on device"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	default:
		return "cannot write"
	}
}
