package limit_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/tollgate"
)

const planYAML = `
plans:
  free: {rate_limit: 10/s, concurrency: 2}
protection: {ip_rate_limit: 1000/s, replicas: 2}
server: {trusted_proxies: [127.0.0.0/8]}
`

func TestMemoryRatesBurstThenSustained(t *testing.T) {
	clock := newClock()
	m := limit.NewMemoryRates(clock.Now)
	key := []tollgate.RateKey{{Key: "k", Rate: tollgate.Rate{N: 3, Period: time.Second}}}
	ctx := context.Background()
	for i := range 3 {
		d, _ := m.Allow(ctx, key)
		if !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("burst request %d: %+v, want admitted with %d remaining", i, d, 2-i)
		}
	}
	d, _ := m.Allow(ctx, key)
	if d.Allowed || d.RetryAfter != time.Second/3 {
		t.Fatalf("over the burst: %+v, want refused with retry 333ms", d)
	}
	clock.Advance(time.Second / 3)
	if d, _ := m.Allow(ctx, key); !d.Allowed {
		t.Fatalf("after one emission interval: %+v, want admitted", d)
	}
}

func TestMemoryRatesAllOrNothing(t *testing.T) {
	m := limit.NewMemoryRates(newClock().Now)
	ctx := context.Background()
	tight := tollgate.RateKey{Key: "tight", Rate: tollgate.Rate{N: 1, Period: time.Hour}}
	wide := tollgate.RateKey{Key: "wide", Rate: tollgate.Rate{N: 2, Period: time.Hour}}
	if d, _ := m.Allow(ctx, []tollgate.RateKey{tight, wide}); !d.Allowed || d.Key != "tight" {
		t.Fatalf("first: %+v, want admitted, tightest key reported", d)
	}
	if d, _ := m.Allow(ctx, []tollgate.RateKey{tight, wide}); d.Allowed || d.Key != "tight" {
		t.Fatalf("second: %+v, want refused by tight", d)
	}
	// The refused call did not count against wide: one more fits there.
	if d, _ := m.Allow(ctx, []tollgate.RateKey{wide}); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("wide alone: %+v, want admitted with 0 remaining", d)
	}
}

func TestMemoryRatesForgetsIdleKeys(t *testing.T) {
	clock := newClock()
	m := limit.NewMemoryRates(clock.Now)
	ctx := context.Background()
	for i := range 200_000 {
		m.Allow(ctx, []tollgate.RateKey{{Key: "ip:" + strconv.Itoa(i), Rate: tollgate.Rate{N: 10, Period: time.Second}}})
		clock.Advance(100 * time.Microsecond) // 10k new clients per second, each idle after
	}
	if n := m.Len(); n > 50_000 {
		t.Fatalf("%d keys held after 200k one-off clients; idle keys are not evicted", n)
	}
}

// hammer sends 500 requests at 100/s (5s), alternating over
// urls, and counts the admitted ones. advance moves a fake clock and sends
// one request at a time; nil paces by the wall clock and sends each
// request from a small pool of clients, so a slow response does not lower
// the offered rate.
func hammer(t *testing.T, urls []string, user string, advance func(time.Duration)) (admitted, sent int, others map[int]int) {
	t.Helper()
	others = map[int]int{}
	var mu sync.Mutex
	record := func(code int, retry string) {
		mu.Lock()
		defer mu.Unlock()
		sent++
		switch {
		case code == http.StatusOK:
			admitted++
		case code == http.StatusTooManyRequests && retry != "":
		default:
			others[code]++ // also a 429 without Retry-After
		}
	}
	send := func(url string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			record(-1, "")
			return
		}
		resp.Body.Close()
		record(resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if advance != nil {
		for i := range 500 {
			send(urls[i%len(urls)])
			advance(10 * time.Millisecond)
		}
		return admitted, sent, others
	}
	work := make(chan string, 500)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for url := range work {
				send(url)
			}
		})
	}
	// Send on a schedule (request i at i×10ms), catching up after a late
	// wake-up, so a loaded machine still offers 100/s.
	start := time.Now()
	for i := 0; i < 500; {
		due := int(time.Since(start)/(10*time.Millisecond)) + 1
		for ; i < min(due, 500); i++ {
			work <- urls[i%len(urls)]
		}
		time.Sleep(time.Millisecond)
	}
	close(work)
	wg.Wait()
	return admitted, sent, others
}

func TestRateLimitHammer(t *testing.T) {
	t.Run("one node", func(t *testing.T) {
		clock := newClock()
		r := setup(t, MustConfig(t, planYAML), nil, clock.Now)
		admitted, _, others := hammer(t, []string{r.srv.URL}, "alice.j1", clock.Advance)
		if admitted < 50 || admitted > 61 || len(others) > 0 {
			t.Fatalf("10/s hammered at 100/s for 5s admitted %d (others %v), want 50-61", admitted, others)
		}
	})
	t.Run("two replicas sharing redis", func(t *testing.T) {
		da, db := redisReplicas(t, redisURL(t))
		cfg := MustConfig(t, planYAML)
		a, b := setup(t, cfg, da, nil), setup(t, cfg, db, nil)
		admitted, sent, others := hammer(t, []string{a.srv.URL, b.srv.URL}, "bob.j1", nil)
		t.Logf("admitted %d of %d sent in 5s across two replicas", admitted, sent)
		if admitted < 50 || admitted > 61 || len(others) > 0 {
			t.Fatalf("10/s hammered for 5s admitted %d of %d sent (others %v), want 50-61", admitted, sent, others)
		}
	})
}

func TestRateLimitHeaders(t *testing.T) {
	clock := newClock()
	r := setup(t, MustConfig(t, planYAML), nil, clock.Now)
	first := get(t, r.srv.URL, "carol.j1")
	if first.Header.Get("RateLimit-Limit") != "10" || first.Header.Get("RateLimit-Remaining") != "9" {
		t.Fatalf("first response headers %v, want the user's limit 10 with 9 remaining", first.Header)
	}
	for range 9 {
		get(t, r.srv.URL, "carol.j1")
	}
	refused := get(t, r.srv.URL, "carol.j1")
	if refused.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("11th request in the same instant: %d, want 429", refused.StatusCode)
	}
	for _, h := range []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if refused.Header.Get(h) == "" {
			t.Errorf("429 lacks %s", h)
		}
	}
	if refused.Header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("429 RateLimit-Remaining %q, want 0", refused.Header.Get("RateLimit-Remaining"))
	}
	// Another user is not affected.
	if resp := get(t, r.srv.URL, "dave.j1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("another user: %d, want 200", resp.StatusCode)
	}
}

func TestIPLimitBeforeAuthentication(t *testing.T) {
	cfg := MustConfig(t, `
protection: {ip_rate_limit: 5/m, login_rate_limit: 2/m}
server: {trusted_proxies: [127.0.0.0/8]}
`)
	r := setup(t, cfg, nil, newClock().Now)
	codes := map[int]int{}
	for range 7 {
		codes[get(t, r.srv.URL+"/v1/x", "", "X-Forwarded-For", "198.51.100.7").StatusCode]++
	}
	if codes[http.StatusUnauthorized] != 5 || codes[http.StatusTooManyRequests] != 2 {
		t.Fatalf("7 unauthenticated requests from one IP at 5/m: %v, want five 401 then 429s", codes)
	}
	login := map[int]int{}
	for range 3 {
		login[get(t, r.srv.URL+"/auth/login", "", "X-Forwarded-For", "198.51.100.8").StatusCode]++
	}
	if login[http.StatusTooManyRequests] != 1 {
		t.Fatalf("3 logins from one IP at 2/m: %v, want one 429", login)
	}
}

func TestConcurrencyCap(t *testing.T) {
	cfg := MustConfig(t, planYAML)
	t.Run("one node", func(t *testing.T) {
		r := setup(t, cfg, nil, nil)
		testConcurrency(t, r, r)
	})
	t.Run("two replicas sharing redis", func(t *testing.T) {
		da, db := redisReplicas(t, redisURL(t))
		testConcurrency(t, setup(t, cfg, da, nil), setup(t, cfg, db, nil))
	})
}

// testConcurrency holds the plan's two slots open on a, sees b refuse a
// third call, then drops one client and sees its slot come back.
func testConcurrency(t *testing.T, a, b *replica) {
	user := fmt.Sprintf("erin%d.j1", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.srv.URL+"?block", nil)
			req.Header.Set("Authorization", "Bearer "+user)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	for range 2 {
		<-a.inside
	}
	if resp := get(t, b.srv.URL, user); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third call while two are in flight: %d, want 429", resp.StatusCode)
	}
	cancel() // both clients disconnect
	wg.Wait()
	eventually(t, time.Second, "slots released after client disconnects", func() bool {
		return get(t, b.srv.URL, user).StatusCode == http.StatusOK
	})
}

func TestUnknownPlanGetsDefaultLimits(t *testing.T) {
	lim, err := limit.New(MustConfig(t, planYAML), limit.Options{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := &tollgate.Call{Principal: &tollgate.Principal{UserID: "ext", Plan: "platinum-from-idp"}}
	for range 10 {
		release, err := lim.Admit(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		release(ctx, &tollgate.Outcome{})
	}
	if _, err := lim.Admit(ctx, c); tollgate.ErrorCode(err) != tollgate.ERateLimited {
		t.Fatalf("11th call under an unconfigured plan: %v, want the default plan's 10/s", err)
	}
}
