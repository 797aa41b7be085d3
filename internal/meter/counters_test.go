package meter_test

import (
	"testing"

	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestMemoryCounters(t *testing.T) {
	storetest.RunBudgetCounters(t, func(t *testing.T) tollgate.BudgetCounters { return meter.NewMemoryCounters(nil) })
}
