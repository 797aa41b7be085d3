// Package meter turns every call into one billable usage record and holds
// budgets hard: it prices calls in integer micro-units, reserves a call's
// maximum cost against the user's and tenant's budgets before forwarding,
// writes the open record through a group-commit writer, and settles both
// after the response. It also serves usage reports, invoices and
// CloudEvents exports read from the ledger.
package meter
