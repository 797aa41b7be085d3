package tollgate

import (
	"context"
	"encoding/json"
)

// InputPreparer is a Backend whose jobs take a whole upstream request as
// their input (a ComfyUI route's API-format workflow) instead of declared
// inputs: it checks and rewrites the input for its owner before the job
// is queued.
type InputPreparer interface {
	// PrepareInput returns the input to store and run for p's job id.
	// EForbidden names what p may not run (a node class); EInputInvalid
	// or EInvalid what is malformed. Nothing is queued on an error.
	PrepareInput(ctx context.Context, p *Principal, jobID string, input json.RawMessage) (json.RawMessage, error)
}
