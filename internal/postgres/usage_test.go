package postgres_test

import (
	"testing"

	"github.com/tollgate/tollgate/internal/storetest"
)

func TestLedger(t *testing.T) {
	storetest.RunLedger(t, func(t *testing.T) storetest.LedgerStore { return MustOpen(t).Ledger() })
}
