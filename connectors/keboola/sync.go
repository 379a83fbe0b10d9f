package keboola

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
)

// Extract exports spec's Keboola table and writes it as spec.ID with the
// spec's strategy:
//
//   - full_refresh: one export of the whole table, one Parquet file.
//   - incremental: the first time like full_refresh; afterwards only the
//     rows Keboola changed since the watermark minus
//     incremental_window_days (changedSince, on Keboola's own _timestamp
//     of each row, so incremental_column is not used), merged by primary
//     key into the Parquet file. Deleted rows are never seen (Keboola
//     does not export them).
//   - partitioned: one Parquet file per day, month or year of the
//     partition_by column; the first load exports the table in chunks of
//     initial_load_chunk_days of changes, later loads only the changes,
//     and only the partitions they touch are rewritten.
//
// The watermark is the creation time of the export job (Keboola's
// clock); it is returned in Meta.Watermark, so the pipeline commits it
// with the data, and a crash before that commit only makes the next run
// fetch the same changes again.
func (c *Connector) Extract(ctx context.Context, spec connectors.TableSpec, w *extract.Writer) (extract.Table, error) {
	if err := ctx.Err(); err != nil {
		return extract.Table{}, fmt.Errorf("source %s: extract %s: %w", c.name, spec.ID, err)
	}
	if !extract.ValidName(spec.ID) || extract.Reserved(spec.ID) {
		return extract.Table{}, &connectors.InputError{Msg: fmt.Sprintf("%q is not a valid table id", spec.ID)}
	}
	id, err := c.tableID(spec)
	if err != nil {
		return extract.Table{}, err
	}
	t, err := c.api.table(ctx, id)
	if err != nil {
		return extract.Table{}, tableError(err, id)
	}
	r := &run{c: c, spec: spec, w: w, id: id, table: t, cols: columns(t)}
	if r.filters, err = c.whereFilters(spec, r.cols); err != nil {
		return extract.Table{}, err
	}
	r.desc = cmpOr(spec.Description, t.description())
	r.scratch, err = os.MkdirTemp(w.Dir(), ".keboola-"+spec.ID+"-")
	if err != nil {
		return extract.Table{}, fmt.Errorf("source %s: extract %s: %w", c.name, spec.ID, err)
	}
	defer r.close()

	var tbl extract.Table
	switch spec.Strategy {
	case "", connectors.StrategyFullRefresh:
		tbl, err = r.fullRefresh(ctx)
	case connectors.StrategyIncremental:
		tbl, err = r.incremental(ctx)
	case connectors.StrategyPartitioned:
		tbl, err = r.partitioned(ctx)
	default:
		err = &connectors.InputError{Msg: fmt.Sprintf("table %s: unknown sync strategy %q", spec.ID, spec.Strategy)}
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("source %s: extract %s: %w", c.name, spec.ID, context.Cause(ctx))
	}
	return tbl, err
}

// run is one Extract: the table, where its downloads go, and a private
// DuckDB for staging changes and diagnosing casts.
type run struct {
	c       *Connector
	spec    connectors.TableSpec
	w       *extract.Writer
	id      string // Keboola table id
	table   *table
	cols    []column
	filters []whereFilter
	desc    string
	scratch string // temp folder inside the extract folder, removed at the end
	db      *sql.DB
	exports int
}

func (r *run) close() {
	if r.db != nil {
		_ = r.db.Close()
	}
	os.RemoveAll(r.scratch)
}

// exported is a finished export downloaded into the scratch folder.
type exported struct {
	files   []string // in manifest order
	parquet bool
	created time.Time // the job's creation, Keboola's clock
}

// export runs one export job of the table and downloads its result.
func (r *run) export(ctx context.Context, since, until time.Time) (*exported, error) {
	r.exports++
	dir := filepath.Join(r.scratch, fmt.Sprintf("export-%d", r.exports))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	names := make([]string, len(r.cols))
	for i, col := range r.cols {
		names[i] = col.Name
	}
	req := exportRequest{Columns: strings.Join(names, ","), WhereFilters: r.filters, Gzip: true, Format: "rfc", FileType: r.c.s.FileType}
	if !since.IsZero() {
		req.ChangedSince = since.UTC().Unix()
	}
	if !until.IsZero() {
		req.ChangedUntil = until.UTC().Unix()
	}
	asked := r.c.now()
	j, err := r.c.api.startExport(ctx, r.id, req)
	if err != nil {
		return nil, tableError(err, r.id)
	}
	if j, err = r.c.waitJob(ctx, r.id, j); err != nil {
		return nil, err
	}
	files, err := r.c.download(ctx, j.Results.File.ID, dir)
	if err != nil {
		return nil, err
	}
	created := j.CreatedTime.Time
	if created.IsZero() {
		created = asked
	}
	return &exported{files: files, parquet: r.c.s.FileType == "parquet", created: created.UTC()}, nil
}

// JobError is an export job that ended in status error: Keboola's message
// and the exceptionId its support asks for.
type JobError struct {
	Source, TableID, JobID     string
	Code, Message, ExceptionID string
}

func (e *JobError) Error() string {
	msg := fmt.Sprintf("source %s: Keboola's export of %s failed (job %s): %s", e.Source, e.TableID, e.JobID, e.Message)
	if e.ExceptionID != "" {
		msg += " (exceptionId " + e.ExceptionID + ")"
	}
	return msg
}

// PublicMessage implements connectors.PublicError.
func (e *JobError) PublicMessage() string { return e.Error() }

// waitJob polls a job until it ends, waiting PollInterval at first and
// half as long again each time, up to MaxPollInterval, for at most
// ExportTimeout. Unknown statuses count as still running.
func (c *Connector) waitJob(ctx context.Context, tableID string, j *job) (*job, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.s.ExportTimeout, errExportTimeout)
	defer cancel()
	wait := c.s.PollInterval
	for {
		switch j.Status {
		case "success":
			if j.Results.File.ID == "" {
				return nil, fmt.Errorf("source %s: the export of %s (job %s) succeeded without a file", c.name, tableID, j.ID)
			}
			return j, nil
		case "error":
			e := &JobError{Source: c.name, TableID: tableID, JobID: string(j.ID), Message: "no message"}
			if j.Error != nil {
				e.Code, e.Message, e.ExceptionID = string(j.Error.Code), cmpOr(j.Error.Message, e.Message), j.Error.ExceptionID
			}
			return nil, e
		}
		id, last := j.ID, j.Status
		err := sleep(ctx, wait)
		if err == nil {
			wait = min(wait*3/2, c.s.MaxPollInterval)
			j, err = c.api.job(ctx, id)
		}
		if errors.Is(context.Cause(ctx), errExportTimeout) {
			return nil, fmt.Errorf("source %s: the export of %s (job %s) is still %s after %s", c.name, tableID, id, last, c.s.ExportTimeout)
		}
		if err != nil {
			return nil, err
		}
	}
}

var errExportTimeout = errors.New("export timeout")

// fullRefresh writes the whole table as one file.
func (r *run) fullRefresh(ctx context.Context) (extract.Table, error) {
	ex, err := r.export(ctx, time.Time{}, time.Time{})
	if err != nil {
		return extract.Table{}, err
	}
	return r.writeFile(ctx, ex)
}

func (r *run) writeFile(ctx context.Context, ex *exported) (extract.Table, error) {
	from, types, err := r.source(ctx, ex)
	if err != nil {
		return extract.Table{}, err
	}
	f, err := r.w.WriteQuery(ctx, r.spec.ID, r.typed(from, types))
	if err != nil {
		return extract.Table{}, r.diagnose(ctx, from, types, "", err)
	}
	return extract.Table{Meta: f.Meta(r.desc)}, nil
}

// incremental merges the changes since the watermark into the file.
func (r *run) incremental(ctx context.Context) (extract.Table, error) {
	pk, err := r.primaryKey()
	if err != nil {
		return extract.Table{}, err
	}
	prev, mark := r.previous(ctx)
	file := filepath.Join(r.w.Dir(), extract.DataDir, r.spec.ID+".parquet")
	st, statErr := os.Stat(file)
	if mark.IsZero() || statErr != nil || len(prev.Parts) > 0 { // first load, or the data is gone
		ex, err := r.export(ctx, time.Time{}, time.Time{})
		if err != nil {
			return extract.Table{}, err
		}
		tbl, err := r.writeFile(ctx, ex)
		tbl.Watermark = watermark(ex.created)
		return tbl, err
	}
	ex, err := r.export(ctx, r.since(mark), time.Time{})
	if err != nil {
		return extract.Table{}, err
	}
	delta, rows, err := r.stage(ctx, ex, "")
	if err != nil {
		return extract.Table{}, err
	}
	if rows == 0 && prev.MD5 != "" && prev.SizeBytes == st.Size() { // nothing changed: keep the file
		m := prev.Meta
		m.Description, m.ExtractedAt, m.Watermark = r.desc, time.Now().UTC(), watermark(ex.created)
		return extract.Table{Meta: m}, nil
	}
	f, err := r.w.WriteQuery(ctx, r.spec.ID, merge(pk, file, delta, ""))
	if err != nil {
		return extract.Table{}, fmt.Errorf("source %s: merge the changes of %s: %w", r.c.name, r.id, err)
	}
	tbl := extract.Table{Meta: f.Meta(r.desc)}
	tbl.Watermark = watermark(ex.created)
	return tbl, nil
}

// merge selects the rows of the existing Parquet old (if any) whose key
// is not in delta, then delta's rows (of one part, when part is set).
func merge(pk []string, old, delta, part string) string {
	keys := make([]string, len(pk))
	for i, k := range pk {
		keys[i] = quoteIdent(k)
	}
	fresh := "SELECT * FROM read_parquet(" + quoteString(delta) + ")"
	if part != "" {
		fresh = "SELECT * EXCLUDE (" + partColumn + ") FROM read_parquet(" + quoteString(delta) + ") WHERE " +
			partColumn + " = " + quoteString(part)
	}
	if old == "" {
		return fresh
	}
	return "SELECT * FROM read_parquet(" + quoteString(old) + ") AS kept ANTI JOIN read_parquet(" + quoteString(delta) +
		") AS changed USING (" + strings.Join(keys, ", ") + ") UNION ALL BY NAME " + fresh
}

// partColumn is the staged partition key of each changed row.
const partColumn = "_agnes_part"

// partitioned writes the table as one file per partition.
func (r *run) partitioned(ctx context.Context) (extract.Table, error) {
	pk, err := r.primaryKey()
	if err != nil {
		return extract.Table{}, err
	}
	key, err := r.partitionKey()
	if err != nil {
		return extract.Table{}, err
	}
	prev, mark := r.previous(ctx)
	folder := filepath.Join(r.w.Dir(), extract.DataDir, r.spec.ID)
	onDisk, _ := filepath.Glob(filepath.Join(folder, "*.parquet"))
	var last time.Time
	if !mark.IsZero() && len(prev.Parts) > 0 && len(onDisk) > 0 {
		ex, err := r.export(ctx, r.since(mark), time.Time{})
		if err != nil {
			return extract.Table{}, err
		}
		if _, err := r.mergeParts(ctx, ex, key, pk, folder, partNames(onDisk)); err != nil {
			return extract.Table{}, err
		}
		last = ex.created
	} else {
		// First load: chunks of changes, oldest first; each chunk merges
		// into the parts written before it in this run, never into older
		// files, and what this run did not write is pruned.
		var written []string
		for _, win := range chunks(r.table.Created.Time, r.c.now(), r.c.s.InitialLoadChunkDays) {
			ex, err := r.export(ctx, win.since, win.until)
			if err != nil {
				return extract.Table{}, err
			}
			parts, err := r.mergeParts(ctx, ex, key, pk, folder, written)
			if err != nil {
				return extract.Table{}, err
			}
			for _, p := range parts {
				if !slices.Contains(written, p) {
					written = append(written, p)
				}
			}
			last = ex.created
		}
		if len(written) == 0 { // an empty table still has its columns
			if _, err := r.w.WriteQuery(ctx, r.spec.ID+"/"+nullPart, r.typed(r.emptySource(), nil)); err != nil {
				return extract.Table{}, err
			}
		}
		if err := r.w.PruneParts(r.spec.ID); err != nil {
			return extract.Table{}, err
		}
	}
	tbl, err := r.w.PartitionedTable(ctx, r.spec.ID, r.desc)
	tbl.Watermark = watermark(last)
	return tbl, err
}

// nullPart holds the rows whose partition column is empty.
const nullPart = "null"

// mergeParts stages an export's rows and rewrites every part they touch:
// the parts of their partition keys, and the parts among existing that
// hold one of their primary keys (a row whose date moved). It returns the
// parts written.
func (r *run) mergeParts(ctx context.Context, ex *exported, key string, pk []string, folder string, existing []string) ([]string, error) {
	delta, rows, err := r.stage(ctx, ex, key)
	if err != nil || rows == 0 {
		return nil, err
	}
	q := "SELECT DISTINCT " + partColumn + " FROM read_parquet(" + quoteString(delta) + ")"
	if len(existing) > 0 {
		files := make([]string, len(existing))
		for i, p := range existing {
			files[i] = quoteString(filepath.Join(folder, p+".parquet"))
		}
		keys := make([]string, len(pk))
		for i, k := range pk {
			keys[i] = quoteIdent(k)
		}
		q += " UNION SELECT parse_filename(filename, true) FROM read_parquet([" + strings.Join(files, ", ") +
			"], filename = true, union_by_name = true) AS part SEMI JOIN read_parquet(" + quoteString(delta) + ") AS changed USING (" +
			strings.Join(keys, ", ") + ")"
	}
	touched, err := r.queryStrings(ctx, q+" ORDER BY 1")
	if err != nil {
		return nil, fmt.Errorf("source %s: partitions of the changes of %s: %w", r.c.name, r.id, err)
	}
	for _, p := range touched {
		old := ""
		if slices.Contains(existing, p) {
			old = filepath.Join(folder, p+".parquet")
		}
		if _, err := r.w.WriteQuery(ctx, r.spec.ID+"/"+p, merge(pk, old, delta, p)); err != nil {
			return nil, fmt.Errorf("source %s: write partition %s of %s: %w", r.c.name, p, r.id, err)
		}
	}
	return touched, nil
}

func partNames(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = strings.TrimSuffix(filepath.Base(f), ".parquet")
	}
	return out
}

// window is a range of Keboola's row change times, [since, until); a zero
// end is open.
type window struct{ since, until time.Time }

// chunks splits the changes of a table created at created into windows
// of days days up to now, the last one open-ended so nothing changed
// later is missed; the first has no start, in case a row predates the
// table. A table of unknown age, or younger than one window, is one
// open window.
func chunks(created, now time.Time, days int) []window {
	step := time.Duration(days) * 24 * time.Hour
	start := created.UTC().Truncate(time.Second)
	if days <= 0 || created.IsZero() || now.Sub(start) <= step {
		return []window{{}}
	}
	out := []window{{until: start.Add(step)}}
	for t := start.Add(step); ; t = t.Add(step) {
		if now.Sub(t) <= step {
			return append(out, window{since: t})
		}
		out = append(out, window{since: t, until: t.Add(step)})
	}
}

// since is where an incremental export after watermark mark starts.
func (r *run) since(mark time.Time) time.Time {
	return mark.AddDate(0, 0, -r.spec.IncrementalWindowDays)
}

func watermark(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// previous returns the committed row of the table and its watermark
// (zero when there is none or it does not parse).
func (r *run) previous(ctx context.Context) (extract.Table, time.Time) {
	cur, err := extract.Read(ctx, r.w.Dir())
	if err != nil {
		return extract.Table{}, time.Time{}
	}
	for _, t := range cur.Tables {
		if strings.EqualFold(t.TableName, r.spec.ID) && t.QueryMode == extract.ModeLocal {
			mark, err := time.Parse(time.RFC3339, t.Watermark)
			if err != nil {
				mark = time.Time{}
			}
			return t, mark
		}
	}
	return extract.Table{}, time.Time{}
}

// primaryKey is the spec's primary key, else the Keboola table's; merging
// changes needs one.
func (r *run) primaryKey() ([]string, error) {
	pk := r.spec.PrimaryKey
	if len(pk) == 0 {
		pk = r.table.PrimaryKey
	}
	if len(pk) == 0 {
		return nil, &connectors.InputError{Msg: fmt.Sprintf("table %s: the %s strategy merges changes by primary key, "+
			"but Keboola table %s has none: set primary_key", r.spec.ID, r.spec.Strategy, r.id)}
	}
	for _, k := range pk {
		if r.column(k) == nil {
			return nil, &connectors.InputError{Msg: fmt.Sprintf("table %s: primary key column %q is not a column of Keboola table %s", r.spec.ID, k, r.id)}
		}
	}
	return pk, nil
}

// partitionKey is the SQL of a row's partition name (over the typed row).
func (r *run) partitionKey() (string, error) {
	by := r.spec.PartitionBy
	col := r.column(by)
	if col == nil {
		return "", &connectors.InputError{Msg: fmt.Sprintf("table %s: partition_by %q is not a column of Keboola table %s", r.spec.ID, by, r.id)}
	}
	formats := map[string]string{"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
	g := cmpOr(r.spec.PartitionGranularity, "month")
	format, ok := formats[g]
	if !ok {
		return "", &connectors.InputError{Msg: fmt.Sprintf("table %s: partition_granularity %q is not day, month or year", r.spec.ID, g)}
	}
	value := quoteIdent(by)
	switch col.Type {
	case "DATE", "TIMESTAMP":
	case "VARCHAR":
		value = "CAST(NULLIF(" + value + ", '') AS TIMESTAMP)"
	default:
		return "", &connectors.InputError{Msg: fmt.Sprintf("table %s: partition_by column %s is %s, not a date", r.spec.ID, by, col.Type)}
	}
	return "coalesce(strftime(" + value + ", " + quoteString(format) + "), " + quoteString(nullPart) + ")", nil
}

func (r *run) column(name string) *column {
	i := slices.IndexFunc(r.cols, func(c column) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return &r.cols[i]
}

// duck returns the run's private DuckDB, spilling into the scratch folder.
func (r *run) duck(ctx context.Context) (*sql.DB, error) {
	if r.db != nil {
		return r.db, nil
	}
	conn, err := duckdb.NewConnector("?autoinstall_known_extensions=false&autoload_known_extensions=false", nil)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "SET temp_directory = "+quoteString(filepath.Join(r.scratch, "spill"))); err != nil {
		_ = db.Close()
		return nil, err
	}
	r.db = db
	return db, nil
}

// stage writes an export's typed rows (with their partition name when
// key is set, sorted by it) to a Parquet file in the scratch folder.
func (r *run) stage(ctx context.Context, ex *exported, key string) (string, int64, error) {
	from, types, err := r.source(ctx, ex)
	if err != nil {
		return "", 0, err
	}
	q := r.typed(from, types)
	if key != "" {
		q = "SELECT *, " + key + " AS " + partColumn + " FROM (" + q + ") ORDER BY " + partColumn
	}
	path := filepath.Join(r.scratch, fmt.Sprintf("changes-%d.parquet", r.exports))
	db, err := r.duck(ctx)
	if err != nil {
		return "", 0, err
	}
	res, err := db.ExecContext(ctx, "COPY ("+q+") TO "+quoteString(path)+" (FORMAT parquet)")
	if err != nil {
		return "", 0, r.diagnose(ctx, from, types, r.spec.PartitionBy, err)
	}
	n, err := res.RowsAffected()
	return path, n, err
}

// queryStrings returns the first column of a query on the run's DuckDB.
func (r *run) queryStrings(ctx context.Context, q string) ([]string, error) {
	db, err := r.duck(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
