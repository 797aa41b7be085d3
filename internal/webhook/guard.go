package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// errRefusedAddress is returned by the dialer for an address webhooks may
// not reach; a delivery that meets it is given up at once.
var errRefusedAddress = errors.New("webhook address is loopback, private, link-local, unspecified or multicast")

// nonPublic lists ranges beyond what netip's predicates name that a webhook
// must not reach: "this network", shared address space (CGNAT), IETF
// protocol assignments, benchmarking, reserved and broadcast.
var nonPublic = [...]netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// nat64 is the well-known NAT64 prefix; its addresses embed an IPv4 one.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Refused reports whether a webhook may not reach ip unless private
// addresses are allowed: loopback, private, link-local, unspecified,
// multicast, the ranges of nonPublic, and IPv6 forms of such IPv4 addresses.
func Refused(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is6() && nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:16]))
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || !ip.IsValid() {
		return true
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseURL checks the form of a webhook URL: absolute http or https with a
// host.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, tollgate.Errorf(tollgate.EInvalid, "webhook is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, tollgate.Errorf(tollgate.EInvalid, "webhook must be an http or https URL")
	case u.Hostname() == "":
		return nil, tollgate.Errorf(tollgate.EInvalid, "webhook URL has no host")
	}
	return u, nil
}

// CheckURL tells a caller at once whether a webhook URL will be refused:
// not http(s), or, unless allowPrivate, a host that is or resolves to an
// address Refused names. EInvalid then. The check that counts is made again
// on every connection, on the address actually dialed.
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := parseURL(raw)
	if err != nil || allowPrivate {
		return err
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if Refused(ip) {
			return tollgate.Errorf(tollgate.EInvalid, "webhook host %s is not a public address", host)
		}
		return nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "webhook host %s does not resolve", host)
	}
	for _, ip := range ips {
		if Refused(ip) {
			return tollgate.Errorf(tollgate.EInvalid, "webhook host %s resolves to an address that is not public", host)
		}
	}
	return nil
}

// guardControl is the dialer's Control func: it runs after name resolution,
// on the very address about to be connected, so a name that resolves to a
// public address at check time and a private one later is still refused.
func guardControl(allowPrivate bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if allowPrivate {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", errRefusedAddress, address)
		}
		if Refused(ap.Addr()) {
			return fmt.Errorf("%w: %s", errRefusedAddress, ap.Addr())
		}
		return nil
	}
}

// newClient returns the HTTP client of webhook deliveries: no proxy (the
// guard must see the receiver's own address), no redirects followed, the
// guard on every dial, and a new connection per attempt (webhooks are few
// per prediction, and no idle connection outlives the address it was
// checked for).
func newClient(allowPrivate bool, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: -1, Control: guardControl(allowPrivate)}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		DisableKeepAlives:     true,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
