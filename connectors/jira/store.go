package jira

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the database/sql driver partitions are read with

	"github.com/agnesdata/agnes/connectors/extract"
)

// Folders beside data/ in the extract directory.
const (
	attachmentsFolder = "attachments" // attachments/<KEY>/<id>_<filename>
	tombstonesFolder  = "tombstones"  // tombstones/<KEY>.json
)

// Store keeps the six tables of one Jira source in its extract directory,
// data/<table>/<YYYY-MM>.parquet, the month of each issue's created in
// Jira's own offset. It replaces one issue's rows at a time (Apply);
// everything else it offers reads what is stored. Apply calls are
// serialised; the extract.Writer passed in must write the same directory.
type Store struct {
	src *Source
	dir string
	db  *sql.DB // a private in-memory DuckDB that reads the partitions
	mu  sync.Mutex
	// index is which issues each partition holds (index.go); mu guards it.
	index partIndex
}

// OpenStore opens the store of the extract directory dir
// ($DATA_DIR/extracts/<source>).
func (s *Source) OpenStore(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("jira store: %w", err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("jira store: %w", err)
	}
	return &Store{src: s, dir: abs, db: db}, nil
}

// Close releases the store's DuckDB.
func (st *Store) Close() error { return st.db.Close() }

// Dir is the extract directory.
func (st *Store) Dir() string { return st.dir }

// AttachmentsDir is where downloaded attachments are kept.
func (st *Store) AttachmentsDir() string { return filepath.Join(st.dir, attachmentsFolder) }

// Change is the outcome of asking Jira about one issue: its current data,
// or that it is gone. Changes come from Refetch, the consistency check
// and the SLA poll; Apply writes them.
type Change struct {
	Key       string
	FetchedAt time.Time  // when Jira was asked; a change older than what is stored is stale
	Issue     *IssueData // the issue now (nil when Deleted or an SLA refresh)
	Deleted   bool       // Jira answered 404: tombstone and remove every row
	sla       *slaRefresh
}

// slaRefresh is the SLA poll's change: new values of the SLA columns only.
type slaRefresh struct {
	values   []any // one per configured SLA field
	syncedAt string
}

// Result says what Apply did.
type Result struct {
	// Tables are the tables whose files changed, for the pipeline's
	// single extract.Writer.Update, which fills in their rows, size, MD5
	// and parts from the files.
	Tables []extract.Table
	// Upserted, Deleted and Refreshed (SLA columns only) list the keys
	// applied; Stale lists those skipped because newer data was stored.
	Upserted, Deleted, Refreshed, Stale []string
}

// Apply writes a batch of changes: for each issue, its rows in every
// table are deleted and the fresh ones inserted (delete + insert); a
// deleted issue's rows go from every month and it is tombstoned. Only the
// month partitions holding touched issues are rewritten, each once per
// batch however many of its issues changed, so bursts coalesce. Several
// changes of one key keep the latest fetched; a change fetched before the
// stored data (or before the tombstone) is stale and skipped, so
// duplicates, reordering and a late update after a delete converge to
// what Jira said last. Children tables are written before issues.
func (st *Store) Apply(ctx context.Context, w *extract.Writer, changes []Change) (Result, error) {
	if w.Dir() != st.dir {
		return Result{}, fmt.Errorf("jira apply: the writer writes %s, the store is %s", w.Dir(), st.dir)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	latest := map[string]Change{}
	for _, c := range changes {
		if !validKey(c.Key) {
			return Result{}, fmt.Errorf("jira apply: %q is not an issue key", c.Key)
		}
		if c.Issue != nil && c.Issue.Key != c.Key {
			return Result{}, fmt.Errorf("jira apply: change %s carries issue %s", c.Key, c.Issue.Key)
		}
		if c.Issue == nil && !c.Deleted && c.sla == nil {
			return Result{}, fmt.Errorf("jira apply: change %s has neither an issue nor a deletion", c.Key)
		}
		if prev, ok := latest[c.Key]; !ok || !c.FetchedAt.Before(prev.FetchedAt) {
			latest[c.Key] = c
		}
	}
	keys := sortedKeys(latest)
	if len(keys) == 0 {
		return Result{}, nil
	}
	loc, err := st.locate(ctx, keys)
	if err != nil {
		return Result{}, fmt.Errorf("jira apply: %w", err)
	}
	tombs, err := st.tombstones(keys)
	if err != nil {
		return Result{}, fmt.Errorf("jira apply: %w", err)
	}

	var res Result
	rows := map[string]*issueRows{}
	var live []Change
	for _, k := range keys {
		c := latest[k]
		if t, ok := loc.synced[k]; ok && c.FetchedAt.Before(t) {
			res.Stale = append(res.Stale, k)
			continue
		}
		if tb, ok := tombs[k]; ok && c.FetchedAt.Before(tb.DeletedAt) {
			res.Stale = append(res.Stale, k)
			continue
		}
		switch {
		case c.Deleted:
			res.Deleted = append(res.Deleted, k)
		case c.Issue != nil:
			r, err := st.src.cfg.transform(c.Issue, st.AttachmentsDir())
			if err != nil {
				return Result{}, fmt.Errorf("jira apply: %w", err)
			}
			rows[k] = r
			res.Upserted = append(res.Upserted, k)
		default:
			if _, stored := loc.synced[k]; !stored {
				continue // nothing to refresh
			}
			res.Refreshed = append(res.Refreshed, k)
		}
		live = append(live, c)
	}

	columns := st.src.cfg.columns()
	var touched []int
	firstMonth := ""
	for t := range numTables {
		plans := map[string]*partPlan{}
		plan := func(m string) *partPlan {
			if plans[m] == nil {
				plans[m] = &partPlan{drop: map[string]bool{}, patch: map[string]*slaRefresh{}}
			}
			return plans[m]
		}
		for _, c := range live {
			switch r := rows[c.Key]; {
			case c.Deleted:
				for _, m := range loc.months[t][c.Key] {
					plan(m).drop[c.Key] = true
				}
			case r != nil:
				if !r.known[t] {
					continue // Jira would not say: keep the stored rows
				}
				for _, m := range loc.months[t][c.Key] {
					plan(m).drop[c.Key] = true
				}
				p := plan(r.month)
				p.drop[c.Key] = true
				p.add = append(p.add, r.rows[t]...)
			case t == tIssues:
				for _, m := range loc.months[t][c.Key] {
					plan(m).patch[c.Key] = c.sla
				}
			}
		}
		if len(plans) == 0 {
			continue
		}
		touched = append(touched, t)
		for _, m := range sortedKeys(plans) {
			if firstMonth == "" {
				firstMonth = m
			}
			if err := st.writePart(ctx, w, t, m, columns[t], plans[m]); err != nil {
				return Result{}, fmt.Errorf("jira apply: %w", err)
			}
		}
	}
	// Every table keeps at least one part, so its view exists with its
	// columns even when no issue has rows in it (yet).
	if len(touched) > 0 {
		for t := range numTables {
			if parts, err := st.parts(t); err != nil {
				return Result{}, fmt.Errorf("jira apply: %w", err)
			} else if len(parts) == 0 {
				if _, err := w.WriteRows(ctx, Tables[t]+"/"+firstMonth, columns[t], emitRows(nil)); err != nil {
					return Result{}, fmt.Errorf("jira apply: %w", err)
				}
				if !slices.Contains(touched, t) {
					touched = append(touched, t)
				}
			}
		}
	}
	for _, c := range live {
		switch {
		case c.Deleted:
			err = st.writeTombstone(tombstone{Key: c.Key, IssueID: loc.ids[c.Key], DeletedAt: c.FetchedAt})
		case c.Issue != nil:
			err = st.removeTombstone(c.Key)
		}
		if err != nil {
			return Result{}, fmt.Errorf("jira apply: %w", err)
		}
	}
	// Rows, size, MD5 and parts are left to the Update that publishes
	// these tables: it derives them from the files, reusing the hashes
	// this Writer computed (asking for them here would read
	// extract.duckdb once per table).
	slices.Sort(touched)
	now := time.Now().UTC()
	for _, t := range touched {
		res.Tables = append(res.Tables, extract.Table{Meta: extract.Meta{
			TableName: Tables[t], Description: tableDescriptions[t], ExtractedAt: now, QueryMode: extract.ModeLocal}})
	}
	return res, nil
}

// partPlan is what happens to one month partition of one table.
type partPlan struct {
	drop  map[string]bool        // issue keys whose stored rows go
	patch map[string]*slaRefresh // issue keys whose SLA columns are refreshed
	add   []row                  // fresh rows
}

// writePart rewrites one partition: the stored rows minus the dropped
// issues (patched where asked), then the fresh rows. A partition left
// empty is deleted. An existing partition that cannot be read fails the
// write instead of being taken for empty.
func (st *Store) writePart(ctx context.Context, w *extract.Writer, t int, m string, cols []extract.Column, p *partPlan) error {
	path := st.partPath(t, m)
	_, statErr := os.Stat(path)
	exists := statErr == nil
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		return statErr
	}
	keyCol := slices.IndexFunc(cols, func(c extract.Column) bool { return c.Name == "issue_key" })
	slaAt, syncedAt := len(fixedColumns[tIssues]), slices.IndexFunc(cols, func(c extract.Column) bool { return c.Name == "_synced_at" })
	f, err := w.WriteRows(ctx, Tables[t]+"/"+m, cols, func(emit func(values ...any) error) error {
		if exists {
			err := st.scanPart(ctx, path, cols, func(r row) error {
				key, _ := r[keyCol].(string)
				if p.drop[key] {
					return nil
				}
				if sr, ok := p.patch[key]; ok {
					copy(r[slaAt:], sr.values)
					r[syncedAt] = sr.syncedAt
				}
				return emit(r...)
			})
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
		}
		return emitRows(p.add)(emit)
	})
	if err != nil {
		return err
	}
	if f.Rows == 0 {
		if err := os.Remove(f.Path); err != nil {
			return err
		}
	}
	return nil
}

// scanPart streams a partition's rows in the columns cols: a column the
// file lacks (an SLA field added since) reads as NULL.
func (st *Store) scanPart(ctx context.Context, path string, cols []extract.Column, fn func(row) error) error {
	have := map[string]bool{}
	rows, err := st.db.QueryContext(ctx, "DESCRIBE SELECT * FROM read_parquet("+quoteString(path)+")")
	if err != nil {
		return err
	}
	for rows.Next() {
		var name string
		var rest [5]sql.NullString
		if err := rows.Scan(&name, &rest[0], &rest[1], &rest[2], &rest[3], &rest[4]); err != nil {
			_ = rows.Close()
			return err
		}
		have[name] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		expr := "NULL"
		if have[c.Name] {
			expr = quoteIdent(c.Name)
		}
		sel[i] = "CAST(" + expr + " AS " + c.Type + ") AS " + quoteIdent(c.Name)
	}
	rows, err = st.db.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM read_parquet("+quoteString(path)+")")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r := make(row, len(cols))
		ptrs := make([]any, len(cols))
		for i := range r {
			ptrs[i] = &r[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (st *Store) folder(t int) string { return filepath.Join(st.dir, extract.DataDir, Tables[t]) }

func (st *Store) partPath(t int, m string) string { return filepath.Join(st.folder(t), m+".parquet") }

// parts lists a table's month partitions, sorted.
func (st *Store) parts(t int) ([]string, error) {
	entries, err := os.ReadDir(st.folder(t))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if m, ok := strings.CutSuffix(e.Name(), ".parquet"); ok && e.Type().IsRegular() && !strings.HasPrefix(m, ".") {
			out = append(out, m)
		}
	}
	return out, nil
}

// readAll is a read_parquet over every part of a table, or "" if it has none.
func (st *Store) readAll(t int) (string, error) {
	parts, err := st.parts(t)
	if err != nil || len(parts) == 0 {
		return "", err
	}
	files := make([]string, len(parts))
	for i, m := range parts {
		files[i] = quoteString(st.partPath(t, m))
	}
	return "read_parquet([" + strings.Join(files, ", ") + "], union_by_name = true, filename = '_part_file')", nil
}

// located is where the batch's issues have rows now.
type located struct {
	months [numTables]map[string][]string // key → months holding its rows, per table
	synced map[string]time.Time           // key → issues._synced_at
	ids    map[string]string              // key → issue_id
}

// tombstone records that Jira said an issue is gone; it is kept for audit
// and so that data fetched before the deletion is never written after it.
type tombstone struct {
	Key       string    `json:"key"`
	IssueID   string    `json:"issue_id,omitempty"`
	DeletedAt time.Time `json:"deleted_at"`
}

func (st *Store) tombstonePath(key string) string {
	return filepath.Join(st.dir, tombstonesFolder, key+".json")
}

func (st *Store) tombstones(keys []string) (map[string]tombstone, error) {
	out := map[string]tombstone{}
	for _, k := range keys {
		raw, err := os.ReadFile(st.tombstonePath(k))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var tb tombstone
		if err := json.Unmarshal(raw, &tb); err != nil {
			return nil, fmt.Errorf("tombstone of %s: %w", k, err)
		}
		out[k] = tb
	}
	return out, nil
}

// Tombstoned lists the keys Jira said are gone, with when.
func (st *Store) Tombstoned() (map[string]time.Time, error) {
	entries, err := os.ReadDir(filepath.Join(st.dir, tombstonesFolder))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range entries {
		if k, ok := strings.CutSuffix(e.Name(), ".json"); ok && validKey(k) {
			keys = append(keys, k)
		}
	}
	tbs, err := st.tombstones(keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(tbs))
	for k, tb := range tbs {
		out[k] = tb.DeletedAt
	}
	return out, nil
}

func (st *Store) writeTombstone(tb tombstone) error {
	raw, err := json.Marshal(tb)
	if err != nil {
		return err
	}
	return writeFileAtomic(st.tombstonePath(tb.Key), raw)
}

func (st *Store) removeTombstone(key string) error {
	err := os.Remove(st.tombstonePath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// writeFileAtomic writes a temp file beside path, syncs it and renames it
// over path, so a reader sees the old or the new bytes, never half.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op once renamed
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func quoteIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
