// Package pushdown runs users' SELECTs over remote tables (query_mode
// "remote": BigQuery tables that stay in BigQuery) on the source itself.
//
// Remote tables are registry rows only: no extract, no master view. The
// query service's sandbox resolves their ids through Tables (after the
// master's views), checks the query and the user's grants exactly as for
// local tables, and hands a query whose tables are all remote tables of one
// source to Prepare: the DuckDB SELECT is translated to BigQuery SQL
// (bigquery.Translate refuses what the engines would evaluate differently),
// dry-run against the per-query cap (MaxScanBytes) and charged to the user's
// daily byte quota (DailyBytes), then Run streams the result as Arrow.
package pushdown

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/bigquery"
	"github.com/agnesdata/agnes/server/internal/store"
)

// refundTimeout bounds giving a failed query's bytes back to the quota.
const refundTimeout = 10 * time.Second

// ModeRemote is the registry's query_mode of remote tables.
const ModeRemote = "remote"

// Store is what pushdown uses: the registry, re-read only when it changed,
// and the users' daily byte counts.
type Store interface {
	store.Registry
	store.Versions
	store.RemoteQuotas
}

// Sources finds source instances (the syncer is one).
type Sources interface {
	Source(name string) (connectors.Connector, bool)
}

// Limits bound remote queries.
type Limits struct {
	// MaxScanBytes refuses a query BigQuery estimates to scan more (and is
	// sent as maximumBytesBilled, so BigQuery enforces it too); 0: no cap.
	MaxScanBytes int64
	// DailyBytes is what one user's remote queries may scan per UTC day, by
	// their dry-run estimates; 0: no quota.
	DailyBytes int64
}

// Table is a remote table.
type Table struct {
	ID     string // registry id: the name queries use
	Source string // source instance
	Ref    string // BigQuery id, project.dataset.table
}

// Pushdown prepares and runs remote queries. Safe for concurrent use.
type Pushdown struct {
	store   Store
	sources Sources
	parser  *sql.DB // a DuckDB that only parses (Translate)
	limits  Limits
	now     func() time.Time

	mu   sync.Mutex
	snap *snapshot
}

type snapshot struct {
	version uint64
	tables  map[string]Table // by lower-case id
}

// New returns a Pushdown. parser is a DuckDB used for parsing only (the
// sandbox's own is fine).
func New(st Store, sources Sources, parser *sql.DB, limits Limits) *Pushdown {
	return &Pushdown{store: st, sources: sources, parser: parser, limits: limits, now: time.Now}
}

// Limits returns the limits.
func (p *Pushdown) Limits() Limits { return p.limits }

// Tables returns the remote tables by lower-case id. The registry is read
// again only after it changed (its data version moved).
func (p *Pushdown) Tables(ctx context.Context) (map[string]Table, error) {
	v := p.store.DataVersion()
	p.mu.Lock()
	snap := p.snap
	p.mu.Unlock()
	if snap != nil && snap.version == v {
		return snap.tables, nil
	}
	rows, err := p.store.ListTables(ctx)
	if err != nil {
		return nil, err
	}
	snap = &snapshot{version: v, tables: map[string]Table{}}
	for _, t := range rows {
		if t.QueryMode != ModeRemote {
			continue
		}
		conn, ok := p.sources.Source(t.SourceName())
		bq, isBQ := conn.(*bigquery.Connector)
		if !ok || !isBQ {
			continue // validation keeps these out; a source dropped from the config leaves them unqueryable
		}
		ref, err := Ref(bq.Settings().Project, t)
		if err != nil {
			continue
		}
		snap.tables[strings.ToLower(t.ID)] = Table{ID: t.ID, Source: t.SourceName(), Ref: ref}
	}
	p.mu.Lock()
	p.snap = snap
	p.mu.Unlock()
	return snap.tables, nil
}

var (
	projectRE = regexp.MustCompile(`^(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	datasetRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	tableRE   = regexp.MustCompile(`^[\p{L}\p{M}\p{N}\p{Pc}\p{Pd} $]+$`)
)

// Ref is the BigQuery id (project.dataset.table) a registry row of a
// BigQuery source in project names: bucket is the dataset and source_table
// the table, or source_table is dataset.table or project.dataset.table. An
// error is a *connectors.InputError naming the field.
func Ref(project string, t *store.RegisteredTable) (string, error) {
	dataset, table := t.Bucket, t.SourceTable
	bad := func(format string, a ...any) error { return &connectors.InputError{Msg: fmt.Sprintf(format, a...)} }
	if table == "" {
		return "", bad("source_table: is required: the BigQuery table (with bucket as its dataset), or dataset.table")
	}
	if dataset == "" {
		parts := strings.Split(table, ".")
		switch len(parts) {
		case 2:
			dataset, table = parts[0], parts[1]
		case 3:
			project, dataset, table = parts[0], parts[1], parts[2]
		default:
			return "", bad("bucket: is required: the BigQuery dataset of source_table %q (or write source_table as dataset.table)", table)
		}
	}
	switch {
	case !projectRE.MatchString(project):
		return "", bad("source_table: %q is not a Google Cloud project id", project)
	case !datasetRE.MatchString(dataset):
		return "", bad("bucket: %q is not a BigQuery dataset name", dataset)
	case !tableRE.MatchString(table):
		return "", bad("source_table: %q is not a BigQuery table name", table)
	}
	return project + "." + dataset + "." + table, nil
}

// MixedError is a query over local and remote tables, or over remote
// tables of several sources: it would have to run in two places. Its
// message is safe to show.
type MixedError struct {
	Local   []string
	Remote  map[string][]string // source → tables
	sources []string
}

func (e *MixedError) Error() string {
	if len(e.Local) > 0 {
		var remote []string
		for _, src := range e.sources {
			remote = append(remote, e.Remote[src]...)
		}
		sort.Strings(remote)
		return fmt.Sprintf("the query mixes local tables (%s) with remote BigQuery tables (%s): a query runs either in "+
			"Agnes or in BigQuery, not both; query the remote tables on their own, or register them with query_mode "+
			"materialized to join them locally", strings.Join(e.Local, ", "), strings.Join(remote, ", "))
	}
	var parts []string
	for _, src := range e.sources {
		parts = append(parts, src+": "+strings.Join(e.Remote[src], ", "))
	}
	return "the query joins remote tables of different BigQuery sources (" + strings.Join(parts, "; ") +
		"): each source runs its own queries; query them separately"
}

// Split checks that tables (a query's resolved references) run in one
// place: it returns the remote ones (nil when all are local) or a
// *MixedError. isLocal says whether a name is a local view; the first name
// that is neither local nor remote (a table unregistered since the query
// was checked) is returned as missing.
func Split(tables []string, remote map[string]Table, isLocal func(string) bool) (out []Table, missing string, err error) {
	mixed := &MixedError{Remote: map[string][]string{}}
	for _, name := range tables {
		// The registry decides: a table switched to remote may still have a
		// view from its local days until its extract is cleaned.
		t, ok := remote[strings.ToLower(name)]
		if !ok && isLocal(name) {
			mixed.Local = append(mixed.Local, name)
			continue
		}
		if !ok {
			return nil, name, nil
		}
		if mixed.Remote[t.Source] == nil {
			mixed.sources = append(mixed.sources, t.Source)
		}
		mixed.Remote[t.Source] = append(mixed.Remote[t.Source], t.ID)
		out = append(out, t)
	}
	if len(out) > 0 && (len(mixed.Local) > 0 || len(mixed.sources) > 1) {
		sort.Strings(mixed.sources)
		return nil, "", mixed
	}
	return out, "", nil
}

// QuotaError is a remote query over the user's daily byte quota.
type QuotaError struct {
	Used, Estimate, Quota int64
	Reset                 time.Time // the next UTC midnight, when the quota starts over
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("daily BigQuery quota exceeded: this query would scan %s (%d bytes), and %s (%d bytes) of your "+
		"%s (%d bytes) per UTC day are used; it resets at %s", bigquery.HumanBytes(e.Estimate), e.Estimate, bigquery.HumanBytes(e.Used), e.Used,
		bigquery.HumanBytes(e.Quota), e.Quota, e.Reset.Format(time.RFC3339))
}

// UpstreamError is BigQuery failing for another reason than the query
// (credentials, quota, an outage). Msg is safe to show (BigQuery's own
// message, or a generic one); the cause is for the log.
type UpstreamError struct {
	Msg string
	err error
}

func (e *UpstreamError) Error() string { return e.Msg }

// Unwrap gives the cause.
func (e *UpstreamError) Unwrap() error { return e.err }

// Plan is a remote query checked and charged, ready to run.
type Plan struct {
	Source   string
	SQL      string // BigQuery's
	Estimate int64  // bytes, from the dry run
	remote   *bigquery.Remote
	refund   func()
}

// Prepare turns query (a sandboxed, RBAC-checked SELECT over tables, all
// of one source) into a Plan: Translate, dry run (an *bigquery.OverCapError
// over MaxScanBytes), and the user's daily quota (a *QuotaError, nothing
// charged). Other refusals: *bigquery.DialectError and
// *connectors.InputError (BigQuery rejected the query, 400),
// *UpstreamError.
func (p *Pushdown) Prepare(ctx context.Context, user, query string, tables []Table) (*Plan, error) {
	if len(tables) == 0 {
		return nil, errors.New("pushdown: no remote tables")
	}
	src := tables[0].Source
	conn, ok := p.sources.Source(src)
	bq, isBQ := conn.(*bigquery.Connector)
	if !ok || !isBQ {
		return nil, &UpstreamError{Msg: fmt.Sprintf("source %s is not a configured BigQuery source", src), err: errors.New("no such source")}
	}
	refs := map[string]string{}
	for _, t := range tables {
		key := strings.ToLower(t.ID)
		refs[key], refs["main."+key] = t.Ref, t.Ref
	}
	bqSQL, err := bigquery.Translate(ctx, p.parser, query, refs)
	if err != nil {
		return nil, err
	}
	remote := bq.Remote(p.limits.MaxScanBytes)
	estimate, err := remote.DryRun(ctx, bqSQL)
	if err != nil {
		return nil, upstream(err)
	}
	plan := &Plan{Source: src, SQL: bqSQL, Estimate: estimate, remote: remote, refund: func() {}}
	if p.limits.DailyBytes > 0 {
		now := p.now().UTC()
		used, ok, err := p.store.ReserveRemoteBytes(ctx, user, now, estimate, p.limits.DailyBytes)
		if err != nil {
			return nil, err
		}
		if !ok {
			reset := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
			return nil, &QuotaError{Used: used, Estimate: estimate, Quota: p.limits.DailyBytes, Reset: reset}
		}
		plan.refund = func() {
			// The query's own context may be what ended it.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
			defer cancel()
			if err := p.store.RefundRemoteBytes(ctx, user, now, estimate); err != nil {
				slog.WarnContext(ctx, "pushdown: give back reserved bytes", "user", user, "bytes", estimate, "err", err)
			}
		}
	}
	return plan, nil
}

// Run starts the plan's query on BigQuery; the result holds at most
// maxRows rows (0: all). A query that fails to start gives its bytes back
// to the quota (BigQuery bills nothing for it).
func (plan *Plan) Run(ctx context.Context, maxRows int64) (*bigquery.Rows, error) {
	rows, err := plan.remote.Query(ctx, plan.SQL, maxRows)
	if err != nil {
		plan.refund()
		return nil, upstream(err)
	}
	return rows, nil
}

// upstream keeps what callers map to answers (over cap, input errors,
// context errors) and turns other BigQuery failures into *UpstreamError.
func upstream(err error) error {
	var over *bigquery.OverCapError
	var in *connectors.InputError
	var pub connectors.PublicError
	switch {
	case errors.As(err, &over), errors.As(err, &in), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &pub):
		return &UpstreamError{Msg: pub.PublicMessage(), err: err}
	}
	return &UpstreamError{Msg: "BigQuery could not run the query (see the server log)", err: err}
}
