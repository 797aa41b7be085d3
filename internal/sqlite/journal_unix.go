//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// segmentFile is a journal segment mapped MAP_SHARED: an append copies
// its lines into the mapping, no system call. The mapped pages are the
// file's page cache, so what was copied survives a SIGKILL of the process
// as a write(2) would; appends are copied one after the other under the
// journal's mutex, so a kill cuts short at most the last line. The file
// is sized up front (sparse, zero filled); readSegment stops at the
// first zero byte.
type segmentFile struct {
	f    *os.File
	data []byte // the mapping, len(data) bytes of the file
}

// createSegmentFile creates the segment file at path, failing with
// fs.ErrExist when it exists, sized and mapped to hold size bytes.
func createSegmentFile(path string, size int64) (*segmentFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*segmentFile, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, err
	}
	if err := reserve(f, size); err != nil {
		return fail(fmt.Errorf("reserve %s: %w", path, err))
	}
	if err := f.Truncate(size); err != nil {
		return fail(err)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("map %s: %w", path, err))
	}
	return &segmentFile{f: f, data: data}, nil
}

// fits reports whether n more bytes fit after the first off.
func (s *segmentFile) fits(off int64, n int) bool { return off+int64(n) <= int64(len(s.data)) }

// write copies b to the segment at off, the end of its lines; b fits.
// A fault in the mapping (the disk is full, or the file was cut short
// under it) is an error, with usable false: the segment may now end in
// part of b and takes no more lines.
func (s *segmentFile) write(off int64, b []byte) (usable bool, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if _, fault := p.(interface{ Addr() uintptr }); !fault {
				panic(p)
			}
			// The runtime names every fault "invalid memory address or nil
			// pointer dereference"; here it is a page of the file that
			// could not be backed.
			usable, err = false, fmt.Errorf("write %s: the mapped segment could not be written (disk full, or the file was cut short): %v", s.f.Name(), p)
		}
	}()
	copy(s.data[off:], b)
	return true, nil
}

// close unmaps the segment and cuts the file to the used bytes; the
// zeros after them read as its end anyway.
func (s *segmentFile) close(used int64) error {
	err := unix.Munmap(s.data)
	s.data = nil
	return errors.Join(err, s.f.Truncate(used), s.f.Close())
}
