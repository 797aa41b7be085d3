package limit

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// subscription follows a bus: handle gets every event, and resync runs
// once subscribed, after every reconnect and every interval, until Stop.
type subscription struct {
	stop func()
	done chan struct{}
}

func subscribe(ctx context.Context, bus tollgate.Bus, handle func(tollgate.Event), resync func(context.Context), every time.Duration) *subscription {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	unsub := bus.Subscribe(handle, func() { resync(ctx) })
	s := &subscription{stop: func() { cancel(); unsub() }, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				resync(ctx)
			}
		}
	}()
	return s
}

// Stop ends the subscription and waits for its loop; a nil subscription
// (never started) is fine.
func (s *subscription) Stop() {
	if s != nil {
		s.stop()
		<-s.done
	}
}
