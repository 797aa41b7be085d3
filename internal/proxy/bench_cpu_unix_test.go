//go:build unix

package proxy_test

import (
	"syscall"
	"testing"
	"time"
)

// cpuClock is the process's CPU time (user and system) at a start.
type cpuClock struct{ start time.Duration }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{start: cpuTime()} }

// report adds the CPU time per operation since start as cpu-µs/op.
func (c cpuClock) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuTime()-c.start)/float64(b.N)/1e3, "cpu-µs/op")
	}
}
