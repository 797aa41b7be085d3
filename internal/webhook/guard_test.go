package webhook_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

func TestRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ip      string
		refused bool
	}{
		{"127.0.0.1", true},
		{"127.8.9.10", true},
		{"::1", true},
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"192.168.1.1", true},
		{"169.254.169.254", true}, // cloud metadata
		{"fe80::1", true},
		{"fc00::1", true},
		{"0.0.0.0", true},
		{"::", true},
		{"224.0.0.1", true},
		{"ff02::1", true},
		{"100.64.0.1", true},
		{"255.255.255.255", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"64:ff9b::a9fe:a9fe", true}, // NAT64 of 169.254.169.254
		{"93.184.216.34", false},
		{"2606:4700::1111", false},
		{"8.8.8.8", false},
	} {
		if got := webhook.Refused(netip.MustParseAddr(tc.ip)); got != tc.refused {
			t.Errorf("Refused(%s) = %v, want %v", tc.ip, got, tc.refused)
		}
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://93.184.216.34/hook", false, true},
		{"http://93.184.216.34:8080/hook?token=x", false, true},
		{"http://127.0.0.1:9000/hook", false, false},
		{"http://[::1]/hook", false, false},
		{"http://10.0.0.5/hook", false, false},
		{"http://169.254.169.254/latest/meta-data", false, false},
		{"http://localhost:9000/hook", false, false},
		{"http://127.0.0.1:9000/hook", true, true},
		{"http://localhost:9000/hook", true, true},
		{"ftp://93.184.216.34/hook", true, false},
		{"file:///etc/passwd", true, false},
		{"javascript:alert(1)", true, false},
		{"/relative/hook", true, false},
		{"http:///nohost", true, false},
		{"://bad", true, false},
	} {
		err := webhook.CheckURL(t.Context(), tc.url, tc.allowPrivate)
		switch {
		case tc.ok && err != nil:
			t.Errorf("CheckURL(%q, allowPrivate=%v) = %v, want nil", tc.url, tc.allowPrivate, err)
		case !tc.ok && tollgate.ErrorCode(err) != tollgate.EInvalid:
			t.Errorf("CheckURL(%q, allowPrivate=%v) = %v, want EInvalid", tc.url, tc.allowPrivate, err)
		}
	}
}

func TestPrivateAddresses(t *testing.T) {
	t.Run("RefusedAtDial", func(t *testing.T) {
		r := newReceiver(t)
		f := setupGuarded(t, nil, webhook.Config{})
		// By address, and by a name that resolves to loopback: the dialer
		// checks the address it connects to, whatever the name said.
		byName := strings.Replace(r.URL, "127.0.0.1", "localhost", 1)
		mustSend(t, f.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 1))
		mustSend(t, f.svc, event(byName, "p2", tollgate.WebhookCompleted, 1))
		f.logs.waitFor(t, "prediction=p1")
		f.logs.waitFor(t, "prediction=p2")
		for _, p := range []string{"p1", "p2"} {
			line := logLine(f.logs.String(), "prediction="+p)
			if !strings.Contains(line, "webhook given up") || !strings.Contains(line, "attempts=1") || !strings.Contains(line, "loopback") {
				t.Errorf("%s: log %q, want given up after 1 attempt for a loopback address", p, line)
			}
		}
		if n := len(r.Hits()); n != 0 {
			t.Errorf("the loopback receiver got %d requests, want 0", n)
		}
		err := f.svc.Send(t.Context(), event("ftp://93.184.216.34/x", "p3", tollgate.WebhookCompleted, 1))
		if tollgate.ErrorCode(err) != tollgate.EInvalid {
			t.Errorf("Send to an ftp URL = %v, want EInvalid", err)
		}
	})
	t.Run("AllowedByConfig", func(t *testing.T) {
		r := newReceiver(t)
		f := setupGuarded(t, nil, webhook.Config{AllowPrivate: true})
		mustSend(t, f.svc, event(strings.Replace(r.URL, "127.0.0.1", "localhost", 1), "p1", tollgate.WebhookCompleted, 1))
		h := r.waitHits(t, 1)
		wantSigned(t, f.key(t), h[0], time.Now())
	})
}

// logLine returns the first line of logs containing s.
func logLine(logs, s string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func TestSlowReceiverDelaysNobody(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server sees the client go
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	fast := newReceiver(t)
	f := setup(t, nil, webhook.Config{Concurrency: 2})
	mustSend(t, f.svc, event(slow.URL, "p1", tollgate.WebhookCompleted, 1))
	<-arrived // the slow receiver holds its request
	// Sends return while it hangs, and other predictions' webhooks go out.
	for i := range 5 {
		mustSend(t, f.svc, event(slow.URL, "p1", tollgate.WebhookOutput, i))
		mustSend(t, f.svc, event(fast.URL, "p"+string(rune('2'+i)), tollgate.WebhookCompleted, i))
	}
	fast.waitHits(t, 5)
}
