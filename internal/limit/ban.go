package limit

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// BanOptions are the collaborators of Bans. Zero values keep everything in
// process (one node).
type BanOptions struct {
	// Store keeps bans for every replica; nil keeps them in process.
	Store tollgate.BanStore
	// Bus tells every replica about bans and lifted bans; nil is in process.
	Bus tollgate.Bus
	// Rates counts invalid tokens per IP across replicas; nil (or a store
	// that fails) counts in process.
	Rates tollgate.RateStore
	// ResyncInterval: the in-memory set is reloaded from Store this often,
	// in case an event was lost or another process (the command line on
	// one node) changed the store. Defaults to 5s.
	ResyncInterval time.Duration
	// Audit, when set, records the bans made after invalid tokens
	// (best-effort). Bans an admin makes are audited by the admin API.
	Audit  tollgate.AuditStore
	Now    func() time.Time // Defaults to time.Now.
	Logger *slog.Logger     // Defaults to slog.Default().
}

// Bans refuses banned IPs from an in-memory set, so a check costs no store
// round trip. The set follows the store through the bus on every replica.
type Bans struct {
	opts      BanOptions
	threshold tollgate.Rate
	duration  time.Duration
	local     *MemoryRates

	mu       sync.RWMutex
	addrs    map[netip.Addr]tollgate.Ban
	prefixes map[netip.Prefix]tollgate.Ban

	sub *subscription
}

// NewBans returns the ban set for cfg.Protection (ban_threshold invalid
// tokens within ban_window ban an IP for ban_duration).
func NewBans(cfg *config.Config, opts BanOptions) *Bans {
	opts.Now = orNow(opts.Now)
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	opts.ResyncInterval = cmp.Or(opts.ResyncInterval, 5*time.Second)
	if opts.Store == nil {
		opts.Store = NewMemoryBans()
	}
	if opts.Bus == nil {
		opts.Bus = NewMemoryBus()
	}
	p := cfg.Protection
	return &Bans{
		opts:      opts,
		threshold: tollgate.Rate{N: max(1, p.BanThreshold), Period: p.BanWindow},
		duration:  p.BanDuration,
		local:     NewMemoryRates(opts.Now),
		addrs:     map[netip.Addr]tollgate.Ban{},
		prefixes:  map[netip.Prefix]tollgate.Ban{},
	}
}

// Start subscribes to ban events, loads the set and reloads it
// periodically; Stop ends that.
func (b *Bans) Start(ctx context.Context) error {
	b.sub = subscribe(ctx, b.opts.Bus, b.apply, b.resync, b.opts.ResyncInterval)
	return nil
}

// Stop ends what Start began.
func (b *Bans) Stop() {
	b.sub.Stop()
}

func (b *Bans) resync(ctx context.Context) {
	bans, err := b.opts.Store.Bans(ctx, b.opts.Now())
	if err != nil {
		b.opts.Logger.Warn("reload bans", "err", err)
		return
	}
	addrs, prefixes := map[netip.Addr]tollgate.Ban{}, map[netip.Prefix]tollgate.Ban{}
	for _, ban := range bans {
		if p, err := parseTarget(ban.IP); err == nil {
			if p.IsSingleIP() {
				addrs[p.Addr()] = *ban
			} else {
				prefixes[p] = *ban
			}
		}
	}
	b.mu.Lock()
	b.addrs, b.prefixes = addrs, prefixes
	b.mu.Unlock()
}

// apply applies a ban event from any replica to the in-memory set.
func (b *Bans) apply(e tollgate.Event) {
	if e.Kind != tollgate.EventBan && e.Kind != tollgate.EventUnban {
		return
	}
	p, err := parseTarget(e.IP)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ban := tollgate.Ban{IP: e.IP, Reason: e.Reason, Until: e.Until, CreatedAt: e.At}
	switch {
	case e.Kind == tollgate.EventUnban && p.IsSingleIP():
		delete(b.addrs, p.Addr())
	case e.Kind == tollgate.EventUnban:
		delete(b.prefixes, p)
	case p.IsSingleIP():
		b.addrs[p.Addr()] = ban
	default:
		b.prefixes[p] = ban
	}
}

// parseTarget parses an address or a CIDR prefix, normalised.
func parseTarget(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, tollgate.Errorf(tollgate.EInvalid, "%q is not an IP address or CIDR prefix", s)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func targetString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Check returns a 429 with Retry-After when ip is banned, nil otherwise.
func (b *Bans) Check(ip string) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil
	}
	a = a.Unmap()
	now := b.opts.Now()
	b.mu.RLock()
	ban, ok := b.addrs[a]
	if !ok || !ban.Until.After(now) {
		ok = false
		for p, pb := range b.prefixes {
			if p.Contains(a) && pb.Until.After(now) {
				ban, ok = pb, true
				break
			}
		}
	}
	b.mu.RUnlock()
	if !ok {
		return nil
	}
	return &tollgate.Error{
		Code:       tollgate.ERateLimited,
		Message:    "this address is banned for abuse; retry later",
		RetryAfter: ceilSeconds(ban.Until.Sub(now)),
	}
}

// InvalidToken records an invalid token sent from ip; past the threshold
// within the window the IP (for IPv6, its /64) is banned. It returns whether it banned ip.
func (b *Bans) InvalidToken(ctx context.Context, ip string) bool {
	if _, err := netip.ParseAddr(ip); err != nil || b.duration <= 0 {
		return false
	}
	target := clientKey(ip) // an IPv6 client is banned with its /64
	keys := []tollgate.RateKey{{Key: "ban:invalid:" + target, Rate: b.threshold}}
	var d tollgate.RateDecision
	var err error
	if b.opts.Rates != nil {
		d, err = b.opts.Rates.Allow(ctx, keys)
	}
	if b.opts.Rates == nil || err != nil {
		d, _ = b.local.Allow(ctx, keys)
	}
	if d.Allowed {
		return false
	}
	if _, err := b.Ban(ctx, target, b.duration, "too many invalid tokens"); err != nil {
		b.opts.Logger.Warn("ban after invalid tokens", "ip", target, "err", err)
		return false
	}
	b.opts.Logger.Warn("banned an address after invalid tokens", "ip", target, "for", b.duration)
	if b.opts.Audit != nil {
		e := &tollgate.AuditEvent{Action: tollgate.AuditBanAdd, Target: target, Outcome: tollgate.AuditOutcomeOK,
			Reason: "too many invalid tokens", IP: ip, Detail: "for " + b.duration.String()}
		if err := b.opts.Audit.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
			b.opts.Logger.Error("audit event not stored", "action", e.Action, "ip", target, "err", err)
		}
	}
	return true
}

// Ban bans ip (an address or a CIDR prefix) for d on every replica.
func (b *Bans) Ban(ctx context.Context, ip string, d time.Duration, reason string) (*tollgate.Ban, error) {
	ban, commit, err := b.BanIn(ctx, b.opts.Store, ip, d, reason, true)
	if err != nil {
		return nil, err
	}
	commit(ctx)
	return ban, nil
}

// BanIn stores a ban of ip for d in st (the transaction of an audited
// change, or the ban store); the returned function applies it here and on
// every replica once st's transaction commits. With early, the ban applies
// here at once, also when the store cannot be reached.
func (b *Bans) BanIn(ctx context.Context, st tollgate.BanStore, ip string, d time.Duration, reason string, early bool) (*tollgate.Ban, func(context.Context), error) {
	p, err := parseTarget(ip)
	if err != nil {
		return nil, nil, err
	}
	if d <= 0 {
		return nil, nil, tollgate.Errorf(tollgate.EInvalid, "ban duration must be positive")
	}
	now := b.opts.Now()
	ban := &tollgate.Ban{IP: targetString(p), Reason: reason, Until: now.Add(d), CreatedAt: now}
	e := tollgate.Event{Kind: tollgate.EventBan, IP: ban.IP, Reason: reason, Until: ban.Until, At: now}
	if early {
		b.apply(e)
	}
	if err := st.PutBan(ctx, ban); err != nil {
		return nil, nil, fmt.Errorf("store ban: %w", err)
	}
	return ban, func(ctx context.Context) { b.publish(ctx, e) }, nil
}

// Lift removes the ban of ip on every replica. ENotFound if there is none.
func (b *Bans) Lift(ctx context.Context, ip string) error {
	commit, err := b.LiftIn(ctx, b.opts.Store, ip)
	if err != nil {
		return err
	}
	commit(ctx)
	return nil
}

// LiftIn removes the ban of ip from st; the returned function lifts it
// here and on every replica once st's transaction commits. ENotFound if
// there is none.
func (b *Bans) LiftIn(ctx context.Context, st tollgate.BanStore, ip string) (func(context.Context), error) {
	p, err := parseTarget(ip)
	if err != nil {
		return nil, err
	}
	if err := st.DeleteBan(ctx, targetString(p)); err != nil {
		return nil, fmt.Errorf("lift ban: %w", err)
	}
	e := tollgate.Event{Kind: tollgate.EventUnban, IP: targetString(p)}
	return func(ctx context.Context) { b.publish(ctx, e) }, nil
}

// publish applies e here at once, then tells the other replicas; when the
// bus is down they catch up at their next resync.
func (b *Bans) publish(ctx context.Context, e tollgate.Event) {
	b.apply(e)
	if err := b.opts.Bus.Publish(ctx, e); err != nil {
		b.opts.Logger.Warn("publish ban event; other replicas catch up at their next resync", "err", err)
	}
}

// List returns the active bans ordered by IP.
func (b *Bans) List(ctx context.Context) ([]*tollgate.Ban, error) {
	bans, err := b.opts.Store.Bans(ctx, b.opts.Now())
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	slices.SortFunc(bans, func(x, y *tollgate.Ban) int { return cmp.Compare(x.IP, y.IP) })
	return bans, nil
}
