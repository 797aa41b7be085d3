//go:build !unix

package sqlite

import "time"

// processCPU returns false: there is no portable process CPU clock.
func processCPU() (time.Duration, bool) { return 0, false }
