//go:build !unix

package sqlite

import "os"

// segmentFile is a journal segment written with one write(2) per append:
// what the kernel accepted survives a SIGKILL of the process.
type segmentFile struct{ f *os.File }

// createSegmentFile creates the segment file at path, failing with
// fs.ErrExist when it exists. It grows as lines are written; size is
// unused.
func createSegmentFile(path string, size int64) (*segmentFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &segmentFile{f: f}, nil
}

// fits reports true: the file grows.
func (s *segmentFile) fits(off int64, n int) bool { return true }

// write appends b at off, the end of the file. On a failed write the file
// is cut back to off; when that fails too, usable is false: the segment
// may end in part of b and takes no more lines.
func (s *segmentFile) write(off int64, b []byte) (usable bool, err error) {
	n, err := s.f.Write(b)
	if err == nil {
		return true, nil
	}
	if n > 0 {
		if terr := s.f.Truncate(off); terr != nil {
			return false, err
		}
	}
	return true, err
}

// close closes the file.
func (s *segmentFile) close(used int64) error { return s.f.Close() }
