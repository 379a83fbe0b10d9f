package app

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/config"
)

// The edge's defences against clients that hold the server's resources: what
// is spent before a caller is known, slow bodies, and connections per address.
// docs/security.md lists every limit.

func trustedProxies(cfg config.Config) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(cfg.TrustedProxies))
	for _, p := range cfg.TrustedProxies {
		if prefix, err := config.ParsePrefix(p); err == nil { // validated at load
			out = append(out, prefix)
		}
	}
	return out
}

// bodyDeadline bounds how long reading a request body may take, from the
// handler's first read: a client that trickles its body is cut off and cannot
// hold a connection and a buffer for long. Once the body is read the deadline
// is lifted (a response may stream for as long as it needs). Routes with big
// bodies (uploads) set a longer one themselves.
func bodyDeadline(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(timeout)); err == nil {
				b := &deadlineBody{ReadCloser: r.Body, header: w.Header(), lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
				if r.ProtoMajor == 1 {
					// Until the body is read to its end, an answer (a refusal
					// before the body is read) ends the connection: net/http
					// would otherwise read what is left of the body before
					// answering, and wait for a client that stalls until the
					// deadline. At the end of the body the connection is kept.
					w.Header().Set("Connection", "close")
					b.closeUntilEOF = true
				}
				r.Body = b
				defer func() {
					if b.closeUntilEOF {
						// Answered before the body's end (a refusal): nothing more
						// of it is wanted, so net/http's drain of the rest ends
						// now rather than at the deadline, and the connection with it.
						_ = rc.SetReadDeadline(time.Now())
					}
				}()
			}
		}
		next.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	header        http.Header // the response's
	once          sync.Once
	lift          func()
	closeUntilEOF bool // "Connection: close" was set for want of the body's end
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		b.once.Do(b.lift)
		if b.closeUntilEOF {
			b.closeUntilEOF = false
			b.header.Del("Connection")
		}
	case err != nil:
		// The rest of the body is still on the wire: the connection ends with
		// the answer rather than waiting (up to idle_timeout) for another request.
		b.header.Set("Connection", "close")
	}
	return n, err
}

// Close lifts the deadline only after closing: net/http's Close reads what
// is left of a small unread body (to reuse the connection), and that read
// must still end at the deadline. Lifting it first let a client that stalls
// mid-body hold the connection for ever once the handler gave up on the body
// (connect closes the body after a failed read).
func (b *deadlineBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.lift)
	return err
}

// precheckRPC applies the authentication part of an RPC's policy before
// connect reads and decodes the request (connect decodes a unary request
// before interceptors run), and bounds the body of public methods: an
// anonymous client makes the server read nothing for a protected method and at
// most publicMax bytes for a public one. The interceptor still applies the
// whole policy.
func precheckRPC(policies access.Policies, publicMax int64, next http.Handler) http.Handler {
	errs := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pol, ok := policies[r.URL.Path]
		if !ok || !strings.HasPrefix(r.URL.Path, "/agnes.") {
			next.ServeHTTP(w, r) // reflection, health, unknown paths: connect answers
			return
		}
		if err := access.Precheck(r.Context(), pol); err != nil {
			var ce *connect.Error
			if !errors.As(err, &ce) {
				ce = connect.NewError(connect.CodeInternal, errors.New("internal error"))
			}
			record(r.Context(), r.URL.Path, err)
			if r.ProtoMajor >= 2 {
				discardBody(r) // HTTP/1 ends the connection instead (bodyDeadline)
			}
			_ = errs.Write(w, r, ce)
			return
		}
		if pol.GetAccess() == agnesv1.Access_ACCESS_PUBLIC && r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, publicMax)
		}
		next.ServeHTTP(w, r)
	})
}

// discardBody reads (into nothing) what remains of a small request body before
// a refusal, so an HTTP/2 stream ends cleanly instead of being reset under a
// client still sending; a body beyond refusedBodyDrain is not read at all (the
// server resets or closes instead).
func discardBody(r *http.Request) {
	if r.Body != nil {
		_, _ = io.CopyN(io.Discard, r.Body, refusedBodyDrain)
	}
}

// refusedBodyDrain bounds what is read of a refused request's body: nothing is kept.
const refusedBodyDrain = 64 << 10

// limitConnsPerIP closes a new connection beyond max open from one address
// (trusted proxies are exempt: every client comes through them).
func limitConnsPerIP(ln net.Listener, max int, trusted []netip.Prefix) net.Listener {
	return &perIPListener{Listener: ln, max: max, trusted: trusted, open: map[netip.Addr]int{}}
}

type perIPListener struct {
	net.Listener
	max     int
	trusted []netip.Prefix

	mu   sync.Mutex
	open map[netip.Addr]int
}

func (l *perIPListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, parseErr := netip.ParseAddrPort(c.RemoteAddr().String())
		if parseErr != nil {
			return c, nil //nolint:nilerr // not an IP connection: nothing to count
		}
		addr := ap.Addr().Unmap()
		if l.isTrusted(addr) {
			return c, nil //nolint:nilerr // not an IP connection: nothing to count
		}
		l.mu.Lock()
		if l.open[addr] >= l.max {
			l.mu.Unlock()
			_ = c.Close() // over the limit: the client sees the connection closed
			continue
		}
		l.open[addr]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(addr) }}, nil
	}
}

func (l *perIPListener) isTrusted(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (l *perIPListener) release(a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[a]--; l.open[a] <= 0 {
		delete(l.open, a)
	}
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// CloseWrite lets net/http half-close the connection before it closes it
// (the client then reads the last answer before a reset can discard it).
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the TCP connection's own ReadFrom reachable through the
// wrapper: net/http sends a download with sendfile only through it.
func (c *countedConn) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, src)
}

// machineMemory is the memory this process may use: the machine's, or its
// cgroup's limit when lower (containers). 0 when unknown.
func machineMemory() int64 {
	var total int64
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				total = kb << 10
			}
		}
	}
	if raw, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if limit, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64); err == nil && limit > 0 && (total == 0 || limit < total) {
			total = limit
		}
	}
	return total
}
