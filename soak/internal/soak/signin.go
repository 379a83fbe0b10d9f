package soak

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agnesdata/agnes/internal/procfs"
)

// accountFailures is the server's per-account throttle: failed sign-ins
// for one account before further attempts get 429 (access.AccountFailures).
const accountFailures = 10

// burstResult counts a burst's answers.
type burstResult struct {
	status     map[int]int
	retryAfter int // 429s with a Retry-After header
	errors     int
}

// burst sends n sign-ins (POST /auth/token), 50 at a time, through the
// harness's connection from 127.0.0.1, which the server trusts as a proxy:
// the client address is the X-Forwarded-For the attempt names.
func burst(ctx context.Context, c *Client, n int, attempt func(i int) (xff, email, password string)) burstResult {
	r := burstResult{status: map[int]int{}}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				xff, email, password := attempt(i)
				res, err := c.Do(ctx, http.MethodPost, "/auth/token", "", map[string]string{"email": email, "password": password},
					http.Header{"X-Forwarded-For": {xff}})
				mu.Lock()
				if err != nil {
					r.errors++
				} else {
					r.status[res.Status]++
					if res.Status == http.StatusTooManyRequests && res.Header.Get("Retry-After") != "" {
						r.retryAfter++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return r
}

func (r burstResult) String() string {
	s := ""
	for _, code := range []int{200, 401, 429, 503} {
		if n := r.status[code]; n > 0 {
			s += fmt.Sprintf("%d× %d, ", n, code)
		}
	}
	for code, n := range r.status {
		if code != 200 && code != 401 && code != 429 && code != 503 {
			s += fmt.Sprintf("%d× %d, ", n, code)
		}
	}
	if r.errors > 0 {
		s += fmt.Sprintf("%d transport errors, ", r.errors)
	}
	return s + fmt.Sprintf("%d of the 429s with Retry-After", r.retryAfter)
}

// runSignIn: wrong-password bursts against one account from one address and
// from many (X-Forwarded-For through a trusted proxy), and a spray of
// unknown accounts from many addresses.
func runSignIn(ctx context.Context, e *env) error {
	n := e.Sizes.Burst
	config := `demo: false
rate_limit: true
trusted_proxies: ["127.0.0.1"]
`
	s, err := e.start(ctx, config)
	if err != nil {
		return err
	}
	defer s.Stop()
	c := NewClient(s.URL, "")
	admin, err := c.Bootstrap(ctx, "admin@example.com", adminPassword)
	if err != nil {
		return err
	}
	for _, u := range []string{"victim1", "victim2", "bystander"} {
		if err := c.CreateUser(ctx, admin, u+"@example.com", userPassword); err != nil {
			return err
		}
	}
	base, err := s.RSS()
	if err != nil {
		return err
	}
	watch := procfs.WatchRSS(s.Pid(), 20*time.Millisecond)
	defer watch.Stop()

	oneIP := burst(ctx, c, n, func(int) (string, string, string) {
		return "198.51.100.7", "victim1@example.com", "wrong-password"
	})
	manyIPs := burst(ctx, c, n, func(i int) (string, string, string) {
		return fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), "victim2@example.com", "wrong-password"
	})
	spray := burst(ctx, c, n, func(i int) (string, string, string) {
		return fmt.Sprintf("10.2.%d.%d", i/250, i%250+1), fmt.Sprintf("nobody-%d@example.com", i), "wrong-password"
	})
	growth := watch.Stop() - base

	fresh := http.Header{"X-Forwarded-For": {"192.0.2.77"}}
	bystander, err := c.Do(ctx, http.MethodPost, "/auth/token", "", map[string]string{"email": "bystander@example.com", "password": userPassword}, fresh)
	if err != nil {
		return err
	}
	victim, err := c.Do(ctx, http.MethodPost, "/auth/token", "", map[string]string{"email": "victim2@example.com", "password": userPassword},
		http.Header{"X-Forwarded-For": {"192.0.2.78"}})
	if err != nil {
		return err
	}

	t := e.sc.table(fmt.Sprintf("Bursts of %d sign-ins (POST /auth/token), 50 at a time", n), "burst", "answers")
	t.row("one address (X-Forwarded-For 198.51.100.7), one account, wrong password", oneIP.String())
	t.row("a new address each time (10.1.x.y), one account, wrong password", manyIPs.String())
	t.row("a new address and an unknown account each time (10.2.x.y)", spray.String())
	t.row("afterwards: another user, right password, another address", fmt.Sprintf("HTTP %d", bystander.Status))
	t.row("afterwards: the many-address burst's account, right password", fmt.Sprintf("HTTP %d %s", victim.Status, victim.Detail()))
	e.sc.note("401 is a password checked and wrong, 429 a refusal before any check (per-address limit: 10 a minute; per-account: %d failures per 15 minutes), "+
		"503 a check that waited too long for one of the server's bounded argon2 slots", accountFailures)

	e.sc.target("one address: 429s appear", "429 with Retry-After; at most 10 passwords checked (rate_per_minute 10)",
		fmt.Sprintf("%d× 429 (%d with Retry-After), %d checked", oneIP.status[429], oneIP.retryAfter, oneIP.status[401]),
		oneIP.status[429] > 0 && oneIP.retryAfter == oneIP.status[429] && oneIP.status[401] <= 10)
	e.sc.target("many addresses, one account: 429s appear", "429 with Retry-After from the per-account throttle",
		fmt.Sprintf("%d× 429 (%d with Retry-After)", manyIPs.status[429], manyIPs.retryAfter),
		manyIPs.status[429] > 0 && manyIPs.retryAfter == manyIPs.status[429])
	e.sc.target("many addresses, one account: passwords checked", fmt.Sprintf("≤ %d (the per-account throttle)", accountFailures),
		fmt.Sprintf("%d", manyIPs.status[401]), manyIPs.status[401] <= accountFailures)
	// The server hashes in max(2, GOMAXPROCS) slots of argon2id's 64 MiB each;
	// Go's collector lets the heap reach twice what is live before it runs
	// (as the stacked scenario's bound allows for held answers).
	slots := int64(max(2, runtime.GOMAXPROCS(0)))
	bound := 2*slots*64<<20 + 16<<20
	e.sc.target("server RSS growth", fmt.Sprintf("≤ 2 × (%d hashing slots × 64 MiB) + 16 MiB = %s", slots, mib(bound)),
		fmt.Sprintf("%s (from %s)", mib(growth), mib(base)), growth <= bound)
	e.sc.target("others can still sign in", "another user from another address: 200", fmt.Sprintf("HTTP %d", bystander.Status),
		bystander.Status == http.StatusOK)
	return nil
}
