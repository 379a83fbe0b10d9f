// Package bigquery is the BigQuery source, through the official client
// (cloud.google.com/go/bigquery) over the REST API; the Storage Read API is
// never enabled, so an endpoint override (an emulator, the bqfake test
// fake) serves everything.
//
// Mapping to the registry: a discovered table has Bucket = its dataset and
// SourceTable = its table id in the settings' Project; SourceTable may also
// be "dataset.table" or "project.dataset.table" (Bucket empty). A table
// with a SourceQuery (query_mode "materialized") runs that BigQuery SQL
// instead; one without is exported as SELECT * FROM `project.dataset.table`.
//
// Extract dry-runs the query first and refuses it with *OverCapError when
// BigQuery estimates more bytes than max_bytes_per_materialize (the same cap
// is sent as maximumBytesBilled, so BigQuery enforces it too); a failing dry
// run fails the extract (the Python system let it through). The result is
// paged from BigQuery and streamed into Parquet through extract.Writer,
// with the types in types.go. Nested and repeated fields stay nested:
// RECORD becomes STRUCT, REPEATED a LIST.
//
// Remote (remote.go) is the building block for query_mode "remote": dry
// run, query streamed as Arrow, and Translate (translate.go) to turn a
// DuckDB SELECT over the master views into BigQuery SQL or refuse it.
package bigquery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"

	bq "cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
)

// Type is the connector's source type.
const Type = "bigquery"

// minBilledBytes is what BigQuery bills at least per query (on-demand
// pricing rounds up to 10 MB), so a maximumBytesBilled below it fails
// every query.
const minBilledBytes int64 = 10 << 20

// Connector is a BigQuery source instance.
type Connector struct {
	name     string
	settings Settings

	mu     sync.Mutex
	client *bq.Client
}

var _ connectors.Connector = (*Connector)(nil)

// Open returns the source named name (its extract folder) from its raw
// settings (see Settings). It checks them without calling BigQuery.
func Open(name string, raw map[string]any) (connectors.Connector, error) {
	return New(name, raw)
}

// New is Open returning the concrete type, for callers that also want
// Remote.
func New(name string, raw map[string]any) (*Connector, error) {
	if !extract.ValidName(name) {
		return nil, fmt.Errorf("bigquery source %q: not a valid source name", name)
	}
	s, err := decode(name, raw)
	if err != nil {
		return nil, err
	}
	return &Connector{name: name, settings: s}, nil
}

// Type implements connectors.Connector.
func (c *Connector) Type() string { return Type }

// Name is the source instance's name.
func (c *Connector) Name() string { return c.name }

// Settings returns the instance's settings.
func (c *Connector) Settings() Settings { return c.settings }

// Close releases the client.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		return nil
	}
	err := c.client.Close()
	c.client = nil
	return err
}

// bigQuery returns the client, creating it on first use: creating it may
// look up credentials (files, the metadata server), which Open must not do.
func (c *Connector) bigQuery(ctx context.Context) (*bq.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	client, err := bq.NewClient(context.WithoutCancel(ctx), c.settings.BillingProject, c.settings.clientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("bigquery source %s: client: %w", c.name, err)
	}
	client.Location = c.settings.Location
	c.client = client
	return client, nil
}

// Discover lists the tables and views of every dataset of the project,
// with columns, rows and bytes from tables.get.
func (c *Connector) Discover(ctx context.Context) ([]connectors.Discovered, error) {
	client, err := c.bigQuery(ctx)
	if err != nil {
		return nil, err
	}
	datasets := client.Datasets(ctx)
	datasets.ProjectID = c.settings.Project
	var out []connectors.Discovered
	used := map[string]bool{}
	for {
		ds, err := datasets.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, c.upstream("list datasets", err)
		}
		tables := ds.Tables(ctx)
		for {
			t, err := tables.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				return nil, c.upstream("list tables of "+ds.DatasetID, err)
			}
			md, err := t.Metadata(ctx)
			if err != nil {
				return nil, c.upstream("describe "+ds.DatasetID+"."+t.TableID, err)
			}
			d := connectors.Discovered{
				ID: suggestID(ds.DatasetID, t.TableID, used), Name: t.TableID, Bucket: ds.DatasetID,
				SourceTable: t.TableID, Description: md.Description, Rows: int64(md.NumRows), SizeBytes: md.NumBytes,
			}
			for _, f := range md.Schema {
				d.Columns = append(d.Columns, f.Name)
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// suggestID is a registry id for a table: its name as the registry would
// slug it, else with the dataset in front when two datasets share a table
// name, else a cleaned-up form.
func suggestID(dataset, table string, used map[string]bool) string {
	for _, name := range []string{table, dataset + "_" + table} {
		if id, err := connectors.TableID(name); err == nil && !used[id] {
			used[id] = true
			return id
		}
	}
	clean := strings.Trim(regexp.MustCompile(`[^a-z0-9_]+`).ReplaceAllString(strings.ToLower(dataset+"_"+table), "_"), "_")
	if clean == "" || clean[0] >= '0' && clean[0] <= '9' {
		clean = "t_" + clean
	}
	clean = clean[:min(len(clean), 60)]
	id := clean
	for i := 2; used[id] || extract.Reserved(id); i++ {
		id = fmt.Sprintf("%s_%d", clean, i)
	}
	used[id] = true
	return id
}

// Extract materializes a table or a source query into the Parquet of
// spec.ID (see the package comment).
func (c *Connector) Extract(ctx context.Context, spec connectors.TableSpec, w *extract.Writer) (extract.Table, error) {
	if err := ctx.Err(); err != nil {
		return extract.Table{}, fmt.Errorf("bigquery extract %s: %w", spec.ID, err)
	}
	if !extract.ValidName(spec.ID) || extract.Reserved(spec.ID) {
		return extract.Table{}, &connectors.InputError{Msg: fmt.Sprintf("%q is not a valid table id", spec.ID)}
	}
	query := strings.TrimSpace(spec.SourceQuery)
	if query == "" {
		ref, err := c.tableRef(spec)
		if err != nil {
			return extract.Table{}, fmt.Errorf("bigquery extract %s: %w", spec.ID, err)
		}
		query = "SELECT * FROM " + ref
	}
	client, err := c.bigQuery(ctx)
	if err != nil {
		return extract.Table{}, err
	}
	limit := c.settings.MaxBytesPerMaterialize
	if limit > 0 {
		bytes, err := c.dryRun(ctx, query)
		if err != nil {
			return extract.Table{}, fmt.Errorf("bigquery extract %s: dry run: %w", spec.ID, err)
		}
		if bytes > limit {
			return extract.Table{}, &OverCapError{What: "materializing " + spec.ID, Estimate: bytes, Cap: limit}
		}
	}
	q := c.query(client, query)
	if limit > 0 {
		q.MaxBytesBilled = max(limit, minBilledBytes)
	}
	it, err := q.Read(ctx)
	if err != nil {
		return extract.Table{}, fmt.Errorf("bigquery extract %s: %w", spec.ID, c.upstream("query", err))
	}
	// The schema of a jobs.query result arrives with its first page.
	var first []bq.Value
	err = it.Next(&first)
	if err != nil && !errors.Is(err, iterator.Done) {
		return extract.Table{}, fmt.Errorf("bigquery extract %s: %w", spec.ID, c.upstream("read results", err))
	}
	done := errors.Is(err, iterator.Done)
	schema := it.Schema
	if len(schema) == 0 {
		return extract.Table{}, fmt.Errorf("bigquery extract %s: the result has no columns", spec.ID)
	}
	f, err := w.WriteRows(ctx, spec.ID, columns(schema), func(emit func(values ...any) error) error {
		row := first
		vals := make([]any, len(schema))
		for !done {
			for i, field := range schema {
				v, err := duckValue(field, row[i])
				if err != nil {
					return err
				}
				vals[i] = v
			}
			if err := emit(vals...); err != nil {
				return err
			}
			row = nil
			if err := it.Next(&row); errors.Is(err, iterator.Done) {
				done = true
			} else if err != nil {
				return c.upstream("read results", err)
			}
		}
		return nil
	})
	if err != nil {
		return extract.Table{}, fmt.Errorf("bigquery extract %s: %w", spec.ID, err)
	}
	desc := spec.Description
	if desc == "" {
		desc = "BigQuery " + strings.Trim(strings.TrimPrefix(query, "SELECT * FROM "), "`")
		if spec.SourceQuery != "" {
			desc = "BigQuery query result"
		}
	}
	return extract.Table{Meta: f.Meta(desc)}, nil
}

// query is a query job of these settings: GoogleSQL, no cached estimate.
func (c *Connector) query(client *bq.Client, sql string) *bq.Query {
	q := client.Query(sql)
	q.Location = c.settings.Location
	q.DisableQueryCache = true // a cached result would dry-run as 0 bytes
	return q
}

// dryRun returns the bytes BigQuery estimates sql processes.
func (c *Connector) dryRun(ctx context.Context, sql string) (int64, error) {
	client, err := c.bigQuery(ctx)
	if err != nil {
		return 0, err
	}
	q := c.query(client, sql)
	q.DryRun = true
	job, err := q.Run(ctx)
	if err != nil {
		return 0, c.upstream("dry run", err)
	}
	st := job.LastStatus()
	if st == nil || st.Statistics == nil {
		return 0, fmt.Errorf("bigquery source %s: the dry run returned no statistics", c.name)
	}
	if err := st.Err(); err != nil {
		return 0, c.upstream("dry run", err)
	}
	return st.Statistics.TotalBytesProcessed, nil
}

var (
	datasetRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	// BigQuery table ids: letters, marks, digits, connectors, dashes and
	// spaces; nothing that could leave the backtick quotes.
	tableRE = regexp.MustCompile(`^[\p{L}\p{M}\p{N}\p{Pc}\p{Pd} $]+$`)
)

// tableRef is the quoted `project.dataset.table` of a spec without a query.
func (c *Connector) tableRef(spec connectors.TableSpec) (string, error) {
	project, dataset, table := c.settings.Project, spec.Bucket, spec.SourceTable
	if table == "" {
		table = spec.ID
	}
	if dataset == "" {
		parts := strings.Split(table, ".")
		switch len(parts) {
		case 2:
			dataset, table = parts[0], parts[1]
		case 3:
			project, dataset, table = parts[0], parts[1], parts[2]
		default:
			return "", fmt.Errorf("no dataset for table %q (set the bucket or use dataset.table): %w", table, connectors.ErrNotFound)
		}
	}
	switch {
	case !projectRE.MatchString(project):
		return "", &connectors.InputError{Msg: fmt.Sprintf("%q is not a Google Cloud project id", project)}
	case !datasetRE.MatchString(dataset):
		return "", &connectors.InputError{Msg: fmt.Sprintf("%q is not a BigQuery dataset name", dataset)}
	case !tableRE.MatchString(table):
		return "", &connectors.InputError{Msg: fmt.Sprintf("%q is not a BigQuery table name", table)}
	}
	return "`" + project + "." + dataset + "." + table + "`", nil
}

// OverCapError is a query BigQuery estimates to process more bytes than a
// cap allows; nothing was run.
type OverCapError struct {
	What     string // e.g. "materializing orders", "the query"
	Estimate int64  // bytes; for a refusal by BigQuery itself, the bytes it said were required
	Cap      int64
}

func (e *OverCapError) Error() string {
	return fmt.Sprintf("BigQuery would process %s (%d bytes) for %s, over the cap of %s (%d bytes)",
		HumanBytes(e.Estimate), e.Estimate, e.What, HumanBytes(e.Cap), e.Cap)
}

// PublicMessage implements connectors.PublicError.
func (e *OverCapError) PublicMessage() string { return e.Error() }

// HumanBytes is a byte count in binary units ("1.5 GiB"), as the cap and
// quota messages write it.
func HumanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// Error is BigQuery refusing a request. errors.Is(err,
// connectors.ErrNotFound) holds for 404s, and errors.As finds a
// *connectors.InputError (safe to show) for invalid queries.
type Error struct {
	Source  string // the source instance
	Op      string // what was being done, e.g. "query", "list datasets"
	Code    int    // HTTP status, 0 for a job's own error
	Reason  string // Google's reason, e.g. notFound, accessDenied, invalidQuery
	Message string // Google's message
	err     error
}

func (e *Error) Error() string {
	code := ""
	if e.Code != 0 {
		code = fmt.Sprintf("HTTP %d ", e.Code)
	}
	return fmt.Sprintf("bigquery source %s: %s: %s (%s%s)", e.Source, e.Op, e.Message, code, e.Reason)
}

// PublicMessage implements connectors.PublicError: BigQuery's own message.
func (e *Error) PublicMessage() string { return e.Error() }

// Unwrap gives the client's error and the sentinel callers match.
func (e *Error) Unwrap() []error {
	errs := []error{e.err}
	switch {
	case e.Code == http.StatusNotFound || e.Reason == "notFound":
		errs = append(errs, connectors.ErrNotFound)
	case e.Reason == "invalidQuery" || e.Reason == "invalid":
		errs = append(errs, &connectors.InputError{Msg: "BigQuery rejected the query: " + e.Message})
	}
	return errs
}

var requiredBytesRE = regexp.MustCompile(`bytes billed: (\d+)\. (\d+) or higher required`)

// upstream wraps a client error as *Error (or *OverCapError when BigQuery
// enforced maximumBytesBilled); context errors pass through.
func (c *Connector) upstream(op string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	e := &Error{Source: c.name, Op: op, Message: err.Error(), err: err}
	var gerr *googleapi.Error
	var jerr *bq.Error
	switch {
	case errors.As(err, &gerr):
		e.Code, e.Message = gerr.Code, gerr.Message
		if len(gerr.Errors) > 0 {
			e.Reason = gerr.Errors[0].Reason
			if e.Message == "" {
				e.Message = gerr.Errors[0].Message
			}
		}
	case errors.As(err, &jerr):
		e.Reason, e.Message = jerr.Reason, jerr.Message
	default:
		return fmt.Errorf("bigquery source %s: %s: %w", c.name, op, err)
	}
	if e.Reason == "bytesBilledLimitExceeded" {
		if m := requiredBytesRE.FindStringSubmatch(e.Message); m != nil {
			var limit, need int64
			_, _ = fmt.Sscan(m[1], &limit)
			_, _ = fmt.Sscan(m[2], &need)
			return &OverCapError{What: "the query (refused by BigQuery)", Estimate: need, Cap: limit}
		}
	}
	return e
}
