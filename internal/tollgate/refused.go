package tollgate

import (
	"errors"
	"fmt"
	"net"
)

// ErrRefused marks a backend's error when its upstream was never reached
// with the job: the connection that would have carried it could not be
// made (refused, no route, unknown host). Nothing can have run, so the
// runner may queue the job again (its model's retries).
var ErrRefused = errors.New("the upstream could not be reached")

// RefusedIfDial wraps err with ErrRefused when it is a failure to
// connect, and returns any other error as it is. A request on a
// connection that was made is never a dial error, so a broken-off call
// (which may have started the job) is not marked.
func RefusedIfDial(err error) error {
	var op *net.OpError
	if err != nil && errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return err
}
