// Package reqctx carries per-request facts every layer needs — request id, client IP,
// and whether the call arrived through the REST mirror — from the HTTP edge inward.
package reqctx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Headers the REST mirror uses to hand edge facts to the Connect hop. They are
// trusted only on the in-memory listener; on the public port they are stripped.
const (
	HeaderRequestID = "X-Request-Id"
	HeaderClientIP  = "X-Agnes-Client-Ip"
	HeaderVia       = "X-Agnes-Via"
)

// Info is what is known about the request. The edge creates it; inner layers (the
// authenticator, the RPC interceptor, the route adapter, the REST mirror) add who
// called and how the call ended, so the edge writes one complete log line. The
// REST mirror's in-memory hop gets an Info of its own: the mirror records the
// outcome at the edge.
type Info struct {
	RequestID string
	ClientIP  string
	Via       string // "rest" when the call came through the REST mirror

	mu        sync.Mutex
	user      string
	procedure string
	code      string
}

// SetUser records the authenticated caller.
func (i *Info) SetUser(email string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.user = email
}

// SetRPC records the procedure served and its outcome ("ok" or a code).
func (i *Info) SetRPC(procedure, code string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.procedure, i.code = procedure, code
}

// Outcome returns what inner layers recorded.
func (i *Info) Outcome() (user, procedure, code string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.user, i.procedure, i.code
}

type key struct{}

// With attaches info to a context.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, key{}, info)
}

// From returns the request's info (never nil).
func From(ctx context.Context) *Info {
	if i, ok := ctx.Value(key{}).(*Info); ok {
		return i
	}
	return &Info{}
}

// NewID returns a random request id.
func NewID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Edge is the outermost middleware of the public listener: it assigns the request id
// (keeping a sane client-supplied one), decides the client IP, and drops the
// internal headers a client might forge. X-Forwarded-For is read only on a
// connection from a trusted proxy, and the client is the rightmost address in
// it that is not a trusted proxy (what a realip middleware does): everything to
// its left was written by the client itself.
func Edge(trusted []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(HeaderClientIP)
		r.Header.Del(HeaderVia)
		id := r.Header.Get(HeaderRequestID)
		if !validID(id) {
			id = NewID()
			r.Header.Set(HeaderRequestID, id)
		}
		w.Header().Set(HeaderRequestID, id)
		info := &Info{RequestID: id, ClientIP: ClientIP(r, trusted)}
		next.ServeHTTP(w, r.WithContext(With(r.Context(), info)))
	})
}

// Internal is the outermost middleware of the in-memory listener the REST mirror
// dials: the edge facts arrive as headers set by the gateway itself (no client
// reaches this listener).
func Internal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !validID(id) {
			id = NewID()
		}
		info := &Info{RequestID: id, ClientIP: r.Header.Get(HeaderClientIP), Via: r.Header.Get(HeaderVia)}
		next.ServeHTTP(w, r.WithContext(With(r.Context(), info)))
	})
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// ClientIP is the request's client address: the peer, or behind trusted
// proxies the rightmost untrusted X-Forwarded-For entry.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	peer := peerIP(r.RemoteAddr)
	if !isTrusted(peer, trusted) {
		return peer
	}
	client := peer
	for _, h := range slices.Backward(r.Header.Values("X-Forwarded-For")) {
		hops := strings.Split(h, ",")
		for _, hop := range slices.Backward(hops) {
			a, err := netip.ParseAddr(strings.TrimSpace(hop))
			if err != nil {
				return client // a garbled entry: what is left of it is the client's own text
			}
			client = a.Unmap().String()
			if !isTrusted(client, trusted) {
				return client
			}
		}
	}
	return client
}

func isTrusted(ip string, trusted []netip.Prefix) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func peerIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return host
}
