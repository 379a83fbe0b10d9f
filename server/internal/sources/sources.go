// Package sources checks that the configured source instances reach their
// upstream with their credentials, and remembers each one's last outcome for
// the admin API. The server checks every source on start (logged; a failing
// source never stops the start) and an admin can check one on demand.
//
// A check is the cheapest call that proves the credentials: Keboola's token
// verification, a BigQuery dry run of SELECT 1 (no bytes, but it needs the
// job permission on the billing project), Jira's current user. Built-in
// sources (demo, upload) have no upstream and are reported as local.
package sources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/bigquery"
)

// Health statuses.
const (
	OK        = "ok"
	Failing   = "error"
	Unchecked = "unchecked" // no check has finished yet
	Local     = "local"     // nothing upstream to check
)

// Health is a source's last check.
type Health struct {
	Source    string
	Type      string
	Status    string
	Message   string    // what the check found; never a credential
	CheckedAt time.Time // zero while unchecked
}

// Lookup finds source instances (the syncer is one).
type Lookup interface {
	Source(name string) (connectors.Connector, bool)
	SourceNames() []string
}

// Monitor checks sources and keeps their last health. Safe for concurrent use.
type Monitor struct {
	sources Lookup
	log     *slog.Logger
	// Timeout bounds one check (default 30 s): a source that does not answer
	// is reported failing, not waited for.
	Timeout time.Duration
	now     func() time.Time

	mu   sync.Mutex
	last map[string]Health
}

// New returns a Monitor of the sources lookup knows.
func New(sources Lookup, log *slog.Logger) *Monitor {
	return &Monitor{sources: sources, log: log, Timeout: 30 * time.Second, now: time.Now, last: map[string]Health{}}
}

// List returns every source's health, ordered by name.
func (m *Monitor) List() []Health {
	names := m.sources.SourceNames()
	out := make([]Health, 0, len(names))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range names {
		if h, ok := m.last[name]; ok {
			out = append(out, h)
			continue
		}
		conn, _ := m.sources.Source(name)
		h := Health{Source: name, Type: conn.Type(), Status: Unchecked}
		if !checkable(conn) {
			h.Status = Local
		}
		out = append(out, h)
	}
	return out
}

// Verify checks one source now; false when no source has that name.
func (m *Monitor) Verify(ctx context.Context, name string) (Health, bool) {
	conn, ok := m.sources.Source(name)
	if !ok {
		return Health{}, false
	}
	h := Health{Source: name, Type: conn.Type(), Status: Local}
	if checkable(conn) {
		ctx, cancel := context.WithTimeout(ctx, m.Timeout)
		err := check(ctx, conn)
		cancel()
		h.Status, h.CheckedAt = OK, m.now().UTC()
		if err != nil {
			h.Status, h.Message = Failing, Message(err)
			m.log.Warn("source check failed", "source", name, "type", h.Type, "err", err)
		} else {
			m.log.Info("source check passed", "source", name, "type", h.Type)
		}
	}
	m.mu.Lock()
	m.last[name] = h
	m.mu.Unlock()
	return h, true
}

// VerifyAll checks every source that has an upstream, at once, and returns
// when all have answered or timed out (the start calls it in the background).
func (m *Monitor) VerifyAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, name := range m.sources.SourceNames() {
		if conn, _ := m.sources.Source(name); !checkable(conn) {
			continue
		}
		wg.Go(func() { m.Verify(ctx, name) })
	}
	wg.Wait()
}

func checkable(conn connectors.Connector) bool {
	switch conn.(type) {
	case verifier, pinger, *bigquery.Connector:
		return true
	}
	return false
}

type verifier interface{ Verify(context.Context) error }

type pinger interface{ Ping(context.Context) error }

func check(ctx context.Context, conn connectors.Connector) error {
	switch c := conn.(type) {
	case verifier: // Keboola
		return c.Verify(ctx)
	case *bigquery.Connector:
		_, err := c.Remote(0).DryRun(ctx, "SELECT 1")
		return err
	case pinger: // Jira
		return c.Ping(ctx)
	}
	return nil
}

// Message is what an admin is told of a failed upstream call: the
// upstream's own answer when the connector says it is safe to show (it
// never carries a credential), else what kind of failure it was; the
// details are in the server log.
func Message(err error) string {
	var pub connectors.PublicError
	var in *connectors.InputError
	var ue *url.Error
	switch {
	case errors.As(err, &pub):
		return pub.PublicMessage()
	case errors.As(err, &in):
		return in.Msg
	case errors.Is(err, context.DeadlineExceeded):
		return "the source did not answer in time"
	case errors.As(err, &ue):
		host := "the source"
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			host = u.Host
		}
		return fmt.Sprintf("cannot reach %s: %v", host, errors.Unwrap(ue))
	}
	return "the check failed (see the server log)"
}
