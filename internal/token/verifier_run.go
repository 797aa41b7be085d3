package token

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Start fetches every trusted issuer's key set and keeps refreshing each
// one in the background before it expires (Cache-Control max-age within
// JWKSOptions bounds); it also prunes expired denylist entries. An issuer
// that cannot be reached is logged and retried; Start does not fail for it.
func (v *Verifier) Start(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stop != nil {
		return fmt.Errorf("token verifier already started")
	}
	ctx, v.stop = context.WithCancel(ctx)
	done := make(chan struct{})
	v.done = done
	n := len(v.trusted) + 1
	exited := make(chan struct{}, n)
	for iss, tr := range v.trusted {
		go func() {
			defer func() { exited <- struct{}{} }()
			v.refreshLoop(ctx, iss, tr.keys)
		}()
	}
	go func() {
		defer func() { exited <- struct{}{} }()
		v.pruneLoop(ctx)
	}()
	go func() {
		for range n {
			<-exited
		}
		close(done)
	}()
	return nil
}

// Stop ends the background work started by Start and waits for it.
func (v *Verifier) Stop() {
	v.mu.Lock()
	stop, done := v.stop, v.done
	v.stop, v.done = nil, nil
	v.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// RefreshJWKS fetches every trusted issuer's key set now, unconditionally
// (merged with fetches in flight), and returns the failures joined.
func (v *Verifier) RefreshJWKS(ctx context.Context) error {
	var errs []error
	for iss, tr := range v.trusted {
		if err := tr.keys.refresh(ctx, false); err != nil {
			errs = append(errs, fmt.Errorf("issuer %s: %w", iss, err))
		}
	}
	return errors.Join(errs...)
}

func (v *Verifier) refreshLoop(ctx context.Context, iss string, rk *remoteKeys) {
	for {
		if err := rk.refresh(ctx, false); err != nil && ctx.Err() == nil {
			v.opts.Logger.WarnContext(ctx, "refresh trusted issuer keys", "issuer", iss, "err", err)
		}
		// Until a key set was fetched, retry with back-off rather than
		// after MinRefresh: the issuer's tokens are refused meanwhile.
		wait := max(rk.retryInterval(), time.Second)
		if st := rk.state.Load(); st != nil {
			wait = max(st.refreshAt.Sub(v.opts.Now()), time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (v *Verifier) pruneLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.opts.Denylist.Prune()
			if v.cache != nil {
				v.cache.prune(v.opts.Now())
			}
		}
	}
}
