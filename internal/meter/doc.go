// Package meter turns every call into one billable usage record and holds
// budgets hard: it prices calls in integer micro-units, reserves a call's
// maximum cost against the user's and tenant's budgets before forwarding,
// writes the open record through a group-commit writer, and settles both
// after the response. It also serves usage reports, invoices and
// CloudEvents exports read from the ledger.
//
// # Wiring
//
// cmd/tollgate chooses the engines:
//
//	l := db.Ledger()                          // sqlite.DB or postgres.DB
//	o := meter.Options{Ledger: l, Budgets: l, Principal: principalOf}
//	if cfg.Redis != "" {                      // cluster mode
//		o.Counters, o.Cluster = rdb.BudgetCounters(), true
//	}
//	m, err := meter.New(cfg, o)
//	err = m.Start(ctx)                        // reconciles, starts the writer
//	p, err := proxy.New(cfg, proxy.Options{Auth: auth, Admissions: []tollgate.Admission{limits, m}})
//	mux.Handle("GET /v1/me/usage", httpx.Handle(log, m.MeUsageHandler()))
//	mux.Handle("GET /admin/v1/usage", httpx.Handle(log, m.AdminUsageHandler()))
//	mux.Handle("GET /admin/v1/budgets", httpx.Handle(log, m.ListBudgetsHandler()))
//	mux.Handle("PUT /admin/v1/budgets/{scope}/{id}", httpx.Handle(log, m.PutBudgetHandler()))
//	mux.Handle("DELETE /admin/v1/budgets/{scope}/{id}", httpx.Handle(log, m.DeleteBudgetHandler()))
//	...
//	srv.Shutdown(ctx); m.Stop()               // HTTP first, then the ledger
//
// Put the meter after rate and concurrency limits, so a refused call holds
// no reservation. The CLI uses WriteUsage, WriteInvoice, Export and
// SetBudgetCommand against the same store, without a Meter (a Meter
// reconciles at Start, which the CLI must not do while a server runs).
//
// # Failure behaviour
//
// Metering fails closed: when the ledger cannot take the open record, or
// the budget counters (Redis) cannot be reached, the call is refused (500
// or 503) rather than forwarded unrecorded or over budget. Settlements
// that fail are retried with backoff. Calls still running at Stop (a
// drain that ran out of time) are settled as cancelled. A record left
// open by a process that died is reconciled as outcome unknown, charged
// per metering.unknown_charge: on one node at the next start; in a
// cluster by another replica's heartbeat once the dead replica's lease
// has expired. Until then usage reports count it in flight.
//
// A job's call is held (tollgate.Call.Held): its record stays open while
// the job waits or runs, through restarts and both reconciliations, and
// SettleHeld settles it from the stored record, in whichever process ends
// the job; the ledger lets one settlement through, and only that one
// moves the budget counters. Stop leaves held calls open.
package meter
