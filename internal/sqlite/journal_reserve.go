//go:build unix && !linux

package sqlite

import "os"

// reserve does nothing here: the segment stays sparse, and a full disk
// faults the write into its mapping, which is an error of that append.
func reserve(*os.File, int64) error { return nil }
