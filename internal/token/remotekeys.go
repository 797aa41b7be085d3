package token

import (
	"cmp"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// JWKSOptions tune how external issuers' key sets are fetched.
type JWKSOptions struct {
	// MinRefresh bounds a JWKS's Cache-Control max-age from below, and is
	// the retry interval after a failed refresh. Defaults to 1 minute.
	MinRefresh time.Duration
	// MaxRefresh bounds max-age from above and applies when the response
	// has none. Defaults to 1 hour.
	MaxRefresh time.Duration
	// MaxStale is how long after the last successful fetch keys are still
	// served while the issuer's JWKS cannot be fetched. Defaults to 24 h.
	MaxStale time.Duration
	// RefetchInterval: a token with an unknown kid triggers at most one
	// fetch per issuer per interval. Defaults to 1 minute.
	RefetchInterval time.Duration
	// RetryBackoff is the first wait between fetches of an issuer whose
	// key set has never been fetched (its IdP was down at start), for
	// the background refresh and for tokens alike; it doubles with each
	// failure up to 8 times its value, never beyond RefetchInterval. So
	// its tokens are accepted within seconds of the IdP coming up.
	// Defaults to 1 second.
	RetryBackoff time.Duration
	// Timeout of one fetch. Defaults to 10 seconds.
	Timeout time.Duration
	// MaxBytes of a JWKS response. Defaults to 1 MiB.
	MaxBytes int64
	// HTTPClient fetches key sets. Defaults to a client with Timeout.
	HTTPClient *http.Client
}

func (o *JWKSOptions) fill() error {
	o.MinRefresh = cmp.Or(o.MinRefresh, time.Minute)
	o.MaxRefresh = cmp.Or(o.MaxRefresh, time.Hour)
	o.MaxStale = cmp.Or(o.MaxStale, 24*time.Hour)
	o.RefetchInterval = cmp.Or(o.RefetchInterval, time.Minute)
	o.RetryBackoff = cmp.Or(o.RetryBackoff, time.Second)
	o.Timeout = cmp.Or(o.Timeout, 10*time.Second)
	o.MaxBytes = cmp.Or(o.MaxBytes, 1<<20)
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Timeout}
	}
	if o.MinRefresh > o.MaxRefresh || o.MaxStale < o.MaxRefresh {
		return fmt.Errorf("jwks options: want MinRefresh <= MaxRefresh <= MaxStale")
	}
	if o.RefetchInterval < 0 || o.RetryBackoff < 0 {
		return fmt.Errorf("jwks options: negative interval")
	}
	return nil
}

// maxBackoffSteps bounds the doubling of RetryBackoff: at most 8 times it.
const maxBackoffSteps = 3

// remoteKeys is one external issuer's key set, fetched from its jwks_url.
// Lookups never block on a lock; fetches are merged and rate-limited.
type remoteKeys struct {
	url   string
	algs  []string
	opts  JWKSOptions
	now   func() time.Time
	state atomic.Pointer[remoteState]
	// lastTry is the clock's unix nanos of the last fetch attempt.
	lastTry atomic.Int64
	// failures counts the failed fetches since the last success.
	failures atomic.Int32
	flight   singleflight.Group
}

type remoteState struct {
	keys      map[string]*remoteKey
	fetchedAt time.Time // last successful fetch
	refreshAt time.Time // next background refresh
}

type remoteKey struct {
	alg string // bound algorithm; "" when the JWK has none
	pub crypto.PublicKey
}

// lookup returns the key with kid, fetching the key set first when the kid
// is unknown or the keys are older than MaxStale — at most once per
// RefetchInterval, merged with concurrent lookups.
func (r *remoteKeys) lookup(ctx context.Context, kid string) *remoteKey {
	if k := r.cached(kid); k != nil {
		return k
	}
	if r.mayFetch() {
		_ = r.refresh(ctx, true)
		return r.cached(kid)
	}
	return nil
}

func (r *remoteKeys) cached(kid string) *remoteKey {
	st := r.state.Load()
	if st == nil || !r.now().Before(st.fetchedAt.Add(r.opts.MaxStale)) {
		return nil
	}
	return st.keys[kid]
}

func (r *remoteKeys) mayFetch() bool {
	return r.now().UnixNano()-r.lastTry.Load() >= int64(r.retryInterval())
}

// retryInterval is the least time between two fetches: RefetchInterval
// once a key set was fetched; before that, RetryBackoff doubling with each
// failure (at most 8 times), so an issuer whose IdP was down at start is
// trusted soon after it comes up.
func (r *remoteKeys) retryInterval() time.Duration {
	if r.state.Load() != nil {
		return r.opts.RefetchInterval
	}
	n := r.failures.Load()
	if n <= 0 {
		return 0
	}
	return min(r.opts.RetryBackoff<<min(n-1, maxBackoffSteps), r.opts.RefetchInterval)
}

// refresh fetches the key set, merging concurrent calls into one request.
// When limited, the fetch happens only if RefetchInterval passed since the
// last attempt. The caller may give up when ctx ends; the fetch goes on
// for the others.
func (r *remoteKeys) refresh(ctx context.Context, limited bool) error {
	ch := r.flight.DoChan("jwks", func() (any, error) {
		if limited && !r.mayFetch() {
			return nil, nil
		}
		r.lastTry.Store(r.now().UnixNano())
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.Timeout)
		defer cancel()
		return nil, r.fetch(fctx)
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetch downloads and installs the key set. On failure the previous keys
// stay and a retry is scheduled after MinRefresh.
func (r *remoteKeys) fetch(ctx context.Context) error {
	keys, maxAge, err := r.download(ctx)
	now := r.now()
	if err != nil {
		r.failures.Add(1)
		if old := r.state.Load(); old != nil {
			st := *old
			st.refreshAt = now.Add(r.opts.MinRefresh)
			r.state.Store(&st)
		}
		return err
	}
	life := r.opts.MaxRefresh
	if maxAge >= 0 {
		life = min(max(maxAge, r.opts.MinRefresh), r.opts.MaxRefresh)
	}
	r.state.Store(&remoteState{keys: keys, fetchedAt: now, refreshAt: now.Add(life * 3 / 4)})
	r.failures.Store(0)
	return nil
}

func (r *remoteKeys) download(ctx context.Context) (map[string]*remoteKey, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.opts.MaxBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read jwks: %w", err)
	}
	if int64(len(body)) > r.opts.MaxBytes {
		return nil, 0, fmt.Errorf("read jwks: larger than %d bytes", r.opts.MaxBytes)
	}
	keys, err := parseJWKS(body, r.algs)
	if err != nil {
		return nil, 0, err
	}
	return keys, maxAge(resp.Header.Get("Cache-Control")), nil
}

// parseJWKS keeps the usable signature keys of a JWKS: public, with a
// valid kid, use "sig" or none, and an algorithm among algs. Keys it
// cannot use are skipped; a set with none is an error.
func parseJWKS(body []byte, algs []string) (map[string]*remoteKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	keys := map[string]*remoteKey{}
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(raw) != nil || !k.IsPublic() || !validKID(k.KeyID) || (k.Use != "" && k.Use != "sig") {
			continue
		}
		usable := false
		for _, alg := range algs {
			usable = usable || (k.Algorithm == "" || k.Algorithm == alg) && keyFitsAlg(k.Key, alg)
		}
		if usable {
			keys[k.KeyID] = &remoteKey{alg: k.Algorithm, pub: k.Key}
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("parse jwks: no usable signature key")
	}
	return keys, nil
}

// maxAge reads max-age from a Cache-Control header; -1 when absent or
// malformed.
func maxAge(cc string) time.Duration {
	for d := range strings.SplitSeq(cc, ",") {
		d = strings.TrimSpace(d)
		if v, ok := strings.CutPrefix(strings.ToLower(d), "max-age="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && n < 1<<31 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return -1
}
