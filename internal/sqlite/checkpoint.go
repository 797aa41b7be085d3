package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"
)

// checkpointer copies the WAL into the database file every interval on a
// connection of its own (PASSIVE: it never waits for, nor blocks, the
// writer or readers). The writer's automatic checkpoint is off, so no
// commit, and none of the requests waiting on it, pays for a checkpoint
// and its fsyncs.
type checkpointer struct {
	db     *sql.DB
	cancel context.CancelFunc
	done   chan struct{}
}

func startCheckpointer(path string, common url.Values, every time.Duration) (*checkpointer, error) {
	db, err := sql.Open("sqlite", path+"?"+common.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{db: db, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = c.checkpoint(ctx) // retried at the next tick
			}
		}
	}()
	return c, nil
}

func (c *checkpointer) checkpoint(ctx context.Context) error {
	if _, err := c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// stop ends the loop, checkpoints once more and closes the connection.
func (c *checkpointer) stop() error {
	c.cancel()
	<-c.done
	err := c.checkpoint(context.Background())
	if cerr := c.db.Close(); err == nil {
		err = cerr
	}
	return err
}
