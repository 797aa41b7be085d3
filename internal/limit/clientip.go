package limit

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIPFunc returns a function that finds a request's client address.
// Forwarding headers are believed only when the peer is in one of the
// trusted proxy CIDRs (server.trusted_proxies, validated by config;
// entries that do not parse are ignored): then the client is the right-most
// hop of Forwarded (RFC 7239), or else X-Forwarded-For, that is not itself a
// trusted proxy. A client cannot choose its address by sending the headers
// itself, since everything left of the first untrusted hop is ignored.
func ClientIPFunc(trusted []string) func(*http.Request) string {
	var nets []netip.Prefix
	for _, s := range trusted {
		if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
			nets = append(nets, p.Masked())
		} else if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
			nets = append(nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range nets {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		peer, ok := parseHop(r.RemoteAddr)
		if !ok {
			return r.RemoteAddr
		}
		if !isTrusted(peer) {
			return peer.String()
		}
		hops := forwardedFor(r.Header)
		if hops == nil {
			hops = xForwardedFor(r.Header)
		}
		client := peer
		for i := len(hops) - 1; i >= 0; i-- {
			a, ok := parseHop(hops[i])
			if !ok {
				break // unknown or garbled: the last address we can vouch for
			}
			client = a
			if !isTrusted(a) {
				break
			}
		}
		return client.String()
	}
}

// parseHop parses "1.2.3.4", "1.2.3.4:80", "[::1]:80", "::1" or a quoted
// form of these, returning the address unmapped from IPv4-in-IPv6.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return a.Unmap().WithZone(""), true
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func xForwardedFor(h http.Header) []string {
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops
}

// forwardedFor returns the for= values of every Forwarded element, in
// order, or nil when the header is absent.
func forwardedFor(h http.Header) []string {
	vals := h.Values("Forwarded")
	if len(vals) == 0 {
		return nil
	}
	hops := []string{}
	for _, v := range vals {
		for _, elem := range strings.Split(v, ",") {
			hop := "unknown"
			for _, pair := range strings.Split(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					hop = val
				}
			}
			hops = append(hops, hop)
		}
	}
	return hops
}

// clientKey is the unit limits and bans count a client by: its IPv4
// address, or the /64 prefix of its IPv6 address (one subscriber's
// network, which a client can rotate addresses within at will).
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Unmap().Is6() {
		return ip
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
