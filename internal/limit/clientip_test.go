package limit_test

import (
	"net/http/httptest"
	"testing"

	"github.com/tollgate/tollgate/internal/limit"
)

func TestClientIP(t *testing.T) {
	trusted := []string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"}
	for _, c := range []struct {
		name, peer, xff, fwd, want string
	}{
		{"no headers", "203.0.113.5:4000", "", "", "203.0.113.5"},
		{"untrusted peer's XFF is ignored", "203.0.113.5:4000", "1.2.3.4", "", "203.0.113.5"},
		{"untrusted peer's Forwarded is ignored", "203.0.113.5:4000", "", "for=1.2.3.4", "203.0.113.5"},
		{"trusted proxy, one hop", "10.0.0.2:4000", "198.51.100.7", "", "198.51.100.7"},
		{"right-most untrusted hop wins over spoofed left ones", "10.0.0.2:4000", "6.6.6.6, 198.51.100.7, 10.1.1.1", "", "198.51.100.7"},
		{"single trusted address", "192.0.2.1:80", "198.51.100.8", "", "198.51.100.8"},
		{"all hops trusted: left-most", "10.0.0.2:4000", "10.9.9.9, 10.1.1.1", "", "10.9.9.9"},
		{"trusted proxy without headers", "10.0.0.2:4000", "", "", "10.0.0.2"},
		{"garbage hop stops the walk", "10.0.0.2:4000", "198.51.100.7, garbage, 10.1.1.1", "", "10.1.1.1"},
		{"XFF hop with a port", "10.0.0.2:4000", "198.51.100.7:5555", "", "198.51.100.7"},
		{"Forwarded wins over XFF", "10.0.0.2:4000", "6.6.6.6", "for=198.51.100.9;proto=https", "198.51.100.9"},
		{"Forwarded, quoted IPv6 with port", "10.0.0.2:4000", "", `for="[2001:db8::7]:4711", for=10.2.2.2`, "2001:db8::7"},
		{"Forwarded unknown hop stops the walk", "10.0.0.2:4000", "", "for=1.1.1.1, for=unknown", "10.0.0.2"},
		{"Forwarded obfuscated hop stops the walk", "10.0.0.2:4000", "", "for=_hidden", "10.0.0.2"},
		{"IPv6 trusted proxy", "[2001:db8:ffff::1]:443", "2001:db8:1::5", "", "2001:db8:1::5"},
		{"IPv4-mapped IPv6 peer", "[::ffff:203.0.113.5]:80", "1.2.3.4", "", "203.0.113.5"},
		{"IPv4-mapped trusted peer", "[::ffff:10.0.0.2]:80", "198.51.100.7", "", "198.51.100.7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.peer
			if c.xff != "" {
				r.Header.Set("X-Forwarded-For", c.xff)
			}
			if c.fwd != "" {
				r.Header.Set("Forwarded", c.fwd)
			}
			if got := limit.ClientIPFunc(trusted)(r); got != c.want {
				t.Fatalf("client ip %q, want %q", got, c.want)
			}
		})
	}
	t.Run("several XFF lines are one list", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.0.0.2:1"
		r.Header.Add("X-Forwarded-For", "198.51.100.7")
		r.Header.Add("X-Forwarded-For", "10.3.3.3")
		if got := limit.ClientIPFunc(trusted)(r); got != "198.51.100.7" {
			t.Fatalf("client ip %q, want 198.51.100.7", got)
		}
	})
}
