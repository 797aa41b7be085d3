// Command relay is the floor for any proxy on the benchmark machine: it
// copies bytes between each client connection and a connection of its own
// to the upstream, with no HTTP parsing, authentication or metering at
// all. run.sh measures it with FLOOR=1, once as is and once with -work,
// a busy loop of that much CPU time per client read, to show how the
// latency a proxy adds on a shared machine grows with the CPU each request
// costs it, whatever that CPU is spent on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", 0, "TCP port to listen on, on 127.0.0.1")
	upstream := flag.String("upstream", "", "upstream address, host:port (required)")
	work := flag.Duration("work", 0, "CPU time to burn per read from a client, e.g. 40us")
	flag.Parse()
	if err := run(*port, *upstream, *work); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run(port int, upstream string, work time.Duration) error {
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return fmt.Errorf("--upstream %q is not host:port: %w", upstream, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go relay(c, upstream, work)
	}
}

// relay copies both ways until either side ends, then closes both.
func relay(c net.Conn, upstream string, work time.Duration) {
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(c, u)
		_ = c.Close()
	})
	_, _ = io.Copy(u, &busyReader{r: c, work: work})
	_ = u.Close()
	wg.Wait()
}

// busyReader spends work of CPU time after every read that returned data.
type busyReader struct {
	r    io.Reader
	work time.Duration
}

func (b *busyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 && b.work > 0 {
		for start := time.Now(); time.Since(start) < b.work; {
		}
	}
	if errors.Is(err, net.ErrClosed) {
		err = io.EOF
	}
	return n, err
}
