package soak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/agnesdata/agnes/internal/procfs"
)

// runStacked: a client sends unary queries with large answers and never
// reads them. Each answer is held (and counted against the user's
// per_user_concurrency) until written: the user's 5th query is refused
// with 429 and Retry-After, and the server's RSS grows by at most
// per_user_concurrency × max_bytes.
func runStacked(ctx context.Context, e *env) error {
	const perUser = 4
	z := e.Sizes
	config := fmt.Sprintf(`demo: false
query:
  per_user_concurrency: %d
  max_bytes: %d
  max_rows: 100000000
`, perUser, z.AnswerBytes)
	s, err := e.start(ctx, config)
	if err != nil {
		return err
	}
	defer s.Stop()
	_, tokens, err := setup(ctx, s, "hoarder", "other")
	if err != nil {
		return err
	}
	cold, err := s.RSS()
	if err != nil {
		return err
	}
	// Rows of about 220 bytes of JSON: twice what max_bytes lets through.
	rows := 2 * z.AnswerBytes / 200
	sql := fmt.Sprintf("SELECT i, repeat('x', 200) AS pad FROM range(%d) t(i)", rows)
	c := NewClient(s.URL, "")
	// Warm-up, read in full: DuckDB's and Go's first allocations are not
	// what this scenario measures.
	warm, err := c.Query(ctx, tokens["hoarder"], sql, rows)
	if err != nil {
		return err
	}
	if warm.Status != http.StatusOK {
		return fmt.Errorf("warm-up query: HTTP %d %s", warm.Status, warm.Detail())
	}
	var answer struct {
		RowCount  int64 `json:"row_count"`
		Truncated bool  `json:"truncated"`
	}
	if err := json.Unmarshal(warm.Body, &answer); err != nil {
		return fmt.Errorf("warm-up answer: %w", err)
	}
	base, err := s.RSS()
	if err != nil {
		return err
	}
	watch := procfs.WatchRSS(s.Pid(), 20*time.Millisecond)
	defer watch.Stop()

	host := strings.TrimPrefix(s.URL, "http://")
	body := fmt.Sprintf(`{"sql": %q, "limit": %d}`, sql, rows)
	var stalled []net.Conn
	var steps []string // RSS once each answer is held
	defer func() {
		for _, conn := range stalled {
			_ = conn.Close()
		}
	}()
	for i := range perUser {
		conn, err := nonReader(ctx, host)
		if err != nil {
			return err
		}
		stalled = append(stalled, conn)
		req := fmt.Sprintf("POST /api/query HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			host, tokens["hoarder"], len(body), body)
		if _, err := io.WriteString(conn, req); err != nil {
			return err
		}
		// Only the status line is read: the answer is complete and being
		// written; the rest stays with the server.
		status := make([]byte, len("HTTP/1.1 200"))
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		if _, err := io.ReadFull(conn, status); err != nil {
			return fmt.Errorf("non-reading query %d: %w", i+1, err)
		}
		if string(status) != "HTTP/1.1 200" {
			return fmt.Errorf("non-reading query %d: answer %q", i+1, status)
		}
		time.Sleep(500 * time.Millisecond)
		if rss, err := s.RSS(); err == nil {
			steps = append(steps, mib(rss-base))
		}
	}
	e.logf("%d answers held for a client that does not read", perUser)
	fifth, err := c.Query(ctx, tokens["hoarder"], sql, rows)
	if err != nil {
		return err
	}
	other, err := c.Query(ctx, tokens["other"], "SELECT 1", 0)
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // held: the RSS sampler sees what stays
	growth := watch.Stop() - base

	for _, conn := range stalled {
		_ = conn.Close()
	}
	stalled = nil
	start := time.Now()
	var freed time.Duration
	for time.Since(start) < 30*time.Second {
		res, err := c.Query(ctx, tokens["hoarder"], "SELECT 1", 0)
		if err != nil {
			return err
		}
		if res.Status == http.StatusOK {
			freed = time.Since(start)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	t := e.sc.table("Figures", "what", "value")
	t.row("query", sql)
	t.row("one answer (read in full once, as a warm-up)", fmt.Sprintf("%s of JSON, %d rows, truncated at max_bytes: %v", mib(int64(len(warm.Body))), answer.RowCount, answer.Truncated))
	t.row("client receive buffer", "4 KiB (SO_RCVBUF): nearly all of each answer stays with the server")
	t.row("RSS: at start / after the warm-up / peak while 4 answers were held", fmt.Sprintf("%s / %s / %s", mib(cold), mib(base), mib(base+growth)))
	t.row("RSS growth once 1, 2, 3, 4 answers were held", strings.Join(steps, ", "))
	t.row("the 5th query of the same user", fmt.Sprintf("HTTP %d, Retry-After %q: %s", fifth.Status, fifth.Header.Get("Retry-After"), fifth.Detail()))
	t.row("another user's SELECT 1 meanwhile", fmt.Sprintf("HTTP %d", other.Status))
	if freed > 0 {
		t.row("the user's next query once the client closed its connections", fmt.Sprintf("answered 200 after %s", ms(freed)))
	}
	e.sc.target("stacked answers stay within the user's slots", fmt.Sprintf("the %dth query: 429 with Retry-After naming query.per_user_concurrency", perUser+1),
		fmt.Sprintf("HTTP %d, Retry-After %q", fifth.Status, fifth.Header.Get("Retry-After")),
		fifth.Status == http.StatusTooManyRequests && fifth.Header.Get("Retry-After") != "" && strings.Contains(fifth.Detail(), "query.per_user_concurrency"))
	// The held answers are bounded by the slots; RSS also carries Go's heap
	// headroom (at GOGC=100 the heap may reach twice the live data before a
	// collection) and a little of DuckDB's working memory.
	held := perUser * z.AnswerBytes
	bound := 2*held + 16<<20
	e.sc.target("server RSS growth while held", fmt.Sprintf("≤ 2 × (per_user_concurrency %d × max_bytes %s) + 16 MiB = %s", perUser, mib(z.AnswerBytes), mib(bound)),
		mib(growth), growth <= bound)
	e.sc.target("others unaffected; the slots come back", "another user's query 200; the user's next query 200 once the client is gone",
		fmt.Sprintf("other: HTTP %d; next: %s", other.Status, map[bool]string{true: "200 after " + ms(freed), false: "not within 30 s"}[freed > 0]),
		other.Status == http.StatusOK && freed > 0)
	return nil
}

// nonReader dials addr with a 4 KiB receive buffer, so that what the client
// does not read stays with the server rather than in the kernel.
func nonReader(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, errors.Join(errors.New("non-reading client"), err)
	}
	return conn, nil
}
