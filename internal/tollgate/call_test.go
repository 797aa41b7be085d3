package tollgate_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// step is an admission that records what happens to it.
type step struct {
	name   string
	refuse bool
	log    *[]string
}

func (s step) Admit(context.Context, *tollgate.Call) (func(context.Context, *tollgate.Outcome), error) {
	if s.refuse {
		*s.log = append(*s.log, s.name+" refused")
		return nil, tollgate.Errorf(tollgate.ERateLimited, "%s refuses", s.name)
	}
	*s.log = append(*s.log, s.name+" admitted")
	return func(_ context.Context, o *tollgate.Outcome) { *s.log = append(*s.log, s.name+" released "+o.Result) }, nil
}

// TestAdmissions: admissions run in order; a refusal stops the chain and
// releases, as rejected, the steps that admitted; an admitted call's
// release reaches every step.
func TestAdmissions(t *testing.T) {
	var log []string
	call := &tollgate.Call{Start: time.Now()}
	chain := tollgate.Admissions{step{"limits", false, &log}, step{"budget", true, &log}, step{"ledger", false, &log}}
	if _, err := chain.Admit(t.Context(), call); tollgate.ErrorCode(err) != tollgate.ERateLimited {
		t.Fatalf("a refusing step: %v, want its refusal", err)
	}
	if want := []string{"limits admitted", "budget refused", "limits released rejected"}; !slices.Equal(log, want) {
		t.Errorf("refused chain: %q, want %q", log, want)
	}
	log = nil
	chain[1] = step{"budget", false, &log}
	release, err := chain.Admit(t.Context(), call)
	if err != nil {
		t.Fatal(err)
	}
	release(t.Context(), &tollgate.Outcome{Result: tollgate.ResultOK})
	want := []string{"limits admitted", "budget admitted", "ledger admitted", "limits released ok", "budget released ok", "ledger released ok"}
	if !slices.Equal(log, want) {
		t.Errorf("admitted chain: %q, want %q", log, want)
	}
}
