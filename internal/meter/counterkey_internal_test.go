package meter

import (
	"fmt"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestCounterKey: budget counter keys keep their format (Redis keys of
// running clusters and rebuilt counters depend on it).
func TestCounterKey(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2026, time.November, 23, 2, 40, 0, 0, time.UTC),
		time.Date(2027, time.January, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, time.December, 31, 23, 59, 59, 0, time.UTC),
	} {
		for _, period := range []string{tollgate.PeriodDay, tollgate.PeriodMonth, tollgate.PeriodTotal} {
			start, _ := periodBounds(period, at)
			label := "total"
			switch period {
			case tollgate.PeriodDay:
				label = start.Format(time.DateOnly)
			case tollgate.PeriodMonth:
				label = start.Format("2006-01")
			}
			for _, scope := range []tollgate.BudgetScope{tollgate.ScopeUser, tollgate.ScopeTenant} {
				want := fmt.Sprintf("budget:%s:%s:%s:%s", scope, "usr_7", period, label)
				if got := counterKey(scope, "usr_7", period, start); got != want {
					t.Errorf("counterKey(%s, %s, %s) = %q, want %q", scope, period, at, got, want)
				}
			}
		}
	}
}
