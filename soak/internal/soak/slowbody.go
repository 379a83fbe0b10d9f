package soak

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agnesdata/agnes/internal/procfs"
)

// slowTarget is where a slow-body connection sends its request. A public
// method reads the body (and waits for it until the deadline); a protected
// one refuses an anonymous caller before reading anything.
type slowTarget struct {
	name, path string
	refused    bool // answered 401 at once, the connection closed
}

var slowTargets = []slowTarget{
	{"REST sign-in (public)", "/auth/token", false},
	{"Connect sign-in (public)", "/agnes.v1.AuthService/CreateSessionToken", false},
	{"REST query (protected, no token)", "/api/query", true},
}

// refusedWithin bounds how soon a refused slow connection is answered and closed.
const refusedWithin = 2 * time.Second

// slowConn is one connection that sends its headers and a few body bytes,
// then stalls.
type slowConn struct {
	target int
	sent   time.Time
	took   time.Duration // from the stall to the server closing the connection
	status string        // the answer's status line, if any
	open   bool          // still open when the harness gave up waiting
	err    error
}

// runSlowBody: slow-body anonymous connections from several addresses; the
// body deadline must close every one, the per-IP cap must refuse more, RSS
// must stay flat and the server must keep answering a signed-in user.
func runSlowBody(ctx context.Context, e *env) error {
	z := e.Sizes
	config := fmt.Sprintf(`demo: false
limits:
  body_timeout: %s
  max_conns_per_ip: %d
`, z.BodyTimeout, z.ConnCap)
	s, err := e.start(ctx, config)
	if err != nil {
		return err
	}
	defer s.Stop()
	_, tokens, err := setup(ctx, s, "bystander")
	if err != nil {
		return err
	}
	sources := (z.SlowConns + z.SlowPerIP - 1) / z.SlowPerIP
	if sources > 200 {
		return fmt.Errorf("%d connections at %d per address need too many source addresses", z.SlowConns, z.SlowPerIP)
	}
	by := startBystander(ctx, NewClient(s.URL, "127.0.0.250"), tokens["bystander"])
	defer by.stop()
	time.Sleep(200 * time.Millisecond) // the bystander's first answers, before the baseline
	base, err := s.RSS()
	if err != nil {
		return err
	}
	watch := procfs.WatchRSS(s.Pid(), 20*time.Millisecond)
	defer watch.Stop()

	host := strings.TrimPrefix(s.URL, "http://")
	conns := make([]*slowConn, z.SlowConns)
	var wg sync.WaitGroup
	giveUp := z.BodyTimeout + 30*time.Second
	for i := range conns {
		c := &slowConn{target: i % len(slowTargets)}
		conns[i] = c
		src := fmt.Sprintf("127.0.0.%d", 2+i/z.SlowPerIP)
		conn, err := dialFrom(ctx, src, host)
		if err != nil {
			return fmt.Errorf("connection %d from %s: %w", i, src, err)
		}
		req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"em",
			slowTargets[c.target].path, host)
		if _, err := conn.Write([]byte(req)); err != nil {
			_ = conn.Close()
			return fmt.Errorf("connection %d: %w", i, err)
		}
		c.sent = time.Now()
		wg.Go(func() {
			defer conn.Close()
			_ = conn.SetReadDeadline(c.sent.Add(giveUp))
			line, err := readAll(conn)
			c.took, c.status = time.Since(c.sent), line
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.open = true
			} else if err != nil && !isReset(err) {
				c.err = err
			}
		})
	}
	e.logf("%d slow connections stalled", len(conns))
	// The per-IP cap: more connections from the address that opened the last
	// slow ones (still held) than the cap allows. Those beyond it are closed
	// at once; the others wait for headers, and the harness closes them.
	capSrc := fmt.Sprintf("127.0.0.%d", 2+(len(conns)-1)/z.SlowPerIP)
	heldThere := 0 // the public targets' connections from capSrc: held until the deadline
	for i := (len(conns) - 1) / z.SlowPerIP * z.SlowPerIP; i < len(conns); i++ {
		if !slowTargets[conns[i].target].refused {
			heldThere++
		}
	}
	extra := z.ConnCap - heldThere + 20
	// The refused ones are answered at once, but net/http keeps a connection it
	// has half-closed for another 500 ms before closing it: wait them out.
	time.Sleep(750 * time.Millisecond)
	refused, accepted, err := probeCap(ctx, capSrc, host, extra)
	if err != nil {
		return err
	}
	heldPeak := watch.Peak()
	wg.Wait()
	growth := watch.Stop() - base
	bys := by.stop()

	perTarget := e.sc.table(fmt.Sprintf("%d slow-body connections (%d per source address, Content-Length 4096, 5 bytes sent, then nothing)",
		len(conns), z.SlowPerIP), "target", "connections", "answers", "closed after: min", "median", "max", "still open after "+giveUp.String())
	var worst, worstRefused time.Duration
	var stillOpen, broken int
	for ti, t := range slowTargets {
		var took []time.Duration
		answers := map[string]int{}
		n, open := 0, 0
		for _, c := range conns {
			if c.target != ti {
				continue
			}
			n++
			switch {
			case c.open:
				open++
			case c.err != nil:
				broken++
				e.sc.note("%s: %v", t.name, c.err)
			default:
				took = append(took, c.took)
				worst = max(worst, c.took)
				if t.refused {
					worstRefused = max(worstRefused, c.took)
				}
			}
			answers[cmp.Or(c.status, "(closed without an answer)")]++
		}
		stillOpen += open
		perTarget.row(t.name, fmt.Sprint(n), summarize(answers), ms(quantile(took, 0)), ms(quantile(took, 0.5)), ms(quantile(took, 1)), fmt.Sprint(open))
	}
	bound := z.BodyTimeout + 3*time.Second
	e.sc.target("every slow connection closed by the body deadline", fmt.Sprintf("all closed within body_timeout %s + 3 s", z.BodyTimeout),
		fmt.Sprintf("%d of %d closed, slowest after %s", len(conns)-stillOpen-broken, len(conns), ms(worst)),
		stillOpen == 0 && broken == 0 && worst <= bound)
	e.sc.target("refused before the body is read: answered and closed at once",
		fmt.Sprintf("every anonymous request to a protected route: 401, closed within %s", refusedWithin),
		fmt.Sprintf("slowest closed after %s", ms(worstRefused)), worstRefused <= refusedWithin && stillOpen == 0)
	e.sc.target("per-IP connection cap visible", fmt.Sprintf("of %d more connections from %s (holding %d), those beyond max_conns_per_ip %d closed at once",
		extra, capSrc, heldThere, z.ConnCap), fmt.Sprintf("%d closed at once, %d accepted", refused, accepted),
		refused > 0 && accepted <= z.ConnCap-heldThere)
	e.sc.target("server RSS growth", "≤ 64 MiB", fmt.Sprintf("%s (peak while all were held: %s; from %s)", mib(growth), mib(heldPeak-base), mib(base)),
		growth <= 64<<20)
	bys.report(e.sc, "meanwhile, a signed-in user from another address")
	return nil
}

// dialFrom opens a TCP connection to addr from the loopback address src.
func dialFrom(ctx context.Context, src, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.DialContext(ctx, "tcp", addr)
}

// readAll reads until the server closes, and returns the answer's status line.
func readAll(conn net.Conn) (string, error) {
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return strings.TrimSpace(line), err
}

// isReset: the server closed with unread data in its buffer (an RST rather
// than a FIN), which is a close too.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// probeCap opens n idle connections from src and counts those the server
// closes at once (refused by the per-IP cap) and those it keeps.
func probeCap(ctx context.Context, src, addr string, n int) (refused, accepted int, err error) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range n {
		c, err := dialFrom(ctx, src, addr)
		if err != nil {
			return 0, 0, err
		}
		conns = append(conns, c)
	}
	// All at once: an accepted connection is closed too once the server's
	// read_header_timeout passes.
	kept := make([]bool, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			kept[i] = errors.As(err, &ne) && ne.Timeout()
		})
	}
	wg.Wait()
	for _, k := range kept {
		if k {
			accepted++
		} else {
			refused++
		}
	}
	return refused, accepted, nil
}

func summarize(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d× %s", m[k], k)
	}
	return strings.Join(parts, "; ")
}

// bystander is a signed-in user who keeps sending SELECT 1 and a health
// check while a scenario attacks the server.
type bystander struct {
	cancel context.CancelFunc
	done   chan struct{}
	stats  bystanderStats
}

type bystanderStats struct {
	took     []time.Duration
	failures map[string]int
}

func startBystander(ctx context.Context, c *Client, token string) *bystander {
	ctx, cancel := context.WithCancel(ctx)
	b := &bystander{cancel: cancel, done: make(chan struct{}), stats: bystanderStats{failures: map[string]int{}}}
	go func() {
		defer close(b.done)
		for ctx.Err() == nil {
			start := time.Now()
			q, err := c.Query(ctx, token, "SELECT 1", 0)
			var status string
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				status = err.Error()
			case q.Status != http.StatusOK:
				status = fmt.Sprintf("query: HTTP %d %s", q.Status, q.Detail())
			}
			if h, err := c.Do(ctx, http.MethodGet, "/api/health", "", nil, nil); ctx.Err() == nil && (err != nil || h.Status != http.StatusOK) {
				status = fmt.Sprintf("health: %v %v", err, h)
			}
			if status != "" {
				b.stats.failures[status]++
			} else {
				b.stats.took = append(b.stats.took, time.Since(start))
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return b
}

// stop ends the loop and returns what it saw (stop may be called again).
func (b *bystander) stop() bystanderStats {
	b.cancel()
	<-b.done
	return b.stats
}

func (s bystanderStats) report(sc *Scenario, who string) {
	failed := 0
	for _, n := range s.failures {
		failed += n
	}
	sc.target("the server answers others", who+": every SELECT 1 and health check answered 200",
		fmt.Sprintf("%d answered (p50 %s, p99 %s, max %s), %d failed %s", len(s.took), ms(quantile(s.took, 0.5)),
			ms(quantile(s.took, 0.99)), ms(quantile(s.took, 1)), failed, summarize(s.failures)),
		failed == 0 && len(s.took) > 0)
}
