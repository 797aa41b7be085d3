package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Bus is the cluster Bus: Redis pub/sub on the channel <prefix>events.
type Bus struct {
	db  *DB
	url string
}

func (b *Bus) channel() string { return b.db.key("events") }

// Publish sends e to every replica.
func (b *Bus) Publish(ctx context.Context, e tollgate.Event) error {
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if err := b.db.rdb.Publish(ctx, b.channel(), v).Err(); err != nil {
		return fmt.Errorf("redis publish: %w", err)
	}
	return nil
}

// Subscribe calls handle for every event and resync whenever the
// subscription is (re)established, since events sent while it was down are
// lost. It reconnects on its own until stop is called.
func (b *Bus) Subscribe(handle func(tollgate.Event), resync func()) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ps := b.db.rdb.Subscribe(ctx) // subscribes in receive, so the confirmation is seen
	done, ready := make(chan struct{}), make(chan struct{})
	first := sync.OnceFunc(func() { close(ready) })
	go func() {
		defer close(done)
		b.receive(ctx, ps, handle, func() {
			if resync != nil {
				resync()
			}
			first()
		})
	}()
	// Wait for the first subscription, so no event published after
	// Subscribe returns is missed; a Redis that is down does not hold up
	// the start for more than a second (the resync catches up later).
	select {
	case <-ready:
	case <-time.After(time.Second):
	}
	return func() {
		cancel()
		_ = ps.Close()
		<-done
	}
}

func (b *Bus) receive(ctx context.Context, ps *goredis.PubSub, handle func(tollgate.Event), resync func()) {
	backoff := 50 * time.Millisecond
	subscribed := false
	for ctx.Err() == nil {
		if !subscribed {
			if err := ps.Subscribe(ctx, b.channel()); err != nil {
				sleep(ctx, backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			subscribed = true
		}
		msg, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			if isTimeout(err) {
				if perr := ps.Ping(ctx); perr == nil {
					continue
				}
			}
			// go-redis reconnects and resubscribes on the next receive; the
			// confirmation (a *Subscription) triggers the resync.
			sleep(ctx, backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				resync()
			}
		case *goredis.Message:
			var e tollgate.Event
			if json.Unmarshal([]byte(m.Payload), &e) == nil {
				handle(e)
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
