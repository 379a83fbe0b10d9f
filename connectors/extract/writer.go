package extract

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Writer writes one source's extract directory. Writing a table's Parquet
// (WriteQuery, WriteFile, WriteRows) and writing extract.duckdb (Commit,
// Update) are separate steps, so a sync of one table leaves the other
// tables' Parquet alone. A Writer is not safe for concurrent use; one sync
// per source at a time is the caller's rule.
type Writer struct {
	dir string  // absolute extract directory
	db  *sql.DB // private in-memory DuckDB that produces the Parquet
	// files is every file this Writer wrote, by target: Commit takes the
	// parts' hashes from here instead of re-reading the files.
	files map[string]File
	// partitioned says, per table written, whether its last write was a
	// part (true) or the single file (false): the form Commit publishes.
	partitioned map[string]bool
	// committed is what this Writer last wrote to extract.duckdb, with the
	// file it wrote: Update starts from it rather than reading the file
	// back, as long as the file is still that one (a source updated in
	// small steps, e.g. Jira's, would otherwise open and read it each time).
	committed *committed
}

// committed is an extract.duckdb this Writer wrote, and what it holds.
type committed struct {
	file     os.FileInfo
	contents Contents
}

// File is one Parquet file written by a Writer.
type File struct {
	Target    string // "table" or "table/part"
	Path      string // absolute path of the file
	Rows      int64
	SizeBytes int64
	MD5       string // hex MD5 of the file's bytes
	WrittenAt time.Time
}

// Column is a column of rows passed to WriteRows.
type Column struct {
	Name string
	Type string // DuckDB type, e.g. BIGINT, VARCHAR, TIMESTAMP, DOUBLE[]
}

// NewWriter returns a Writer for the extract directory dir
// ($DATA_DIR/extracts/<source>), creating dir/data if needed.
func NewWriter(dir string) (*Writer, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("extract writer: %w", err)
	}
	if !ValidName(filepath.Base(abs)) {
		return nil, fmt.Errorf("extract writer: source name %q is not a valid name", filepath.Base(abs))
	}
	if err := os.MkdirAll(filepath.Join(abs, DataDir), 0o755); err != nil {
		return nil, fmt.Errorf("extract writer: %w", err)
	}
	db, err := openMemory()
	if err != nil {
		return nil, err
	}
	return &Writer{dir: abs, db: db, files: map[string]File{}, partitioned: map[string]bool{}}, nil
}

// Close releases the Writer's DuckDB.
func (w *Writer) Close() error { return w.db.Close() }

// Dir returns the absolute extract directory.
func (w *Writer) Dir() string { return w.dir }

// PruneParts deletes the parts in data/<table>/ that this Writer has not
// written: after a full rewrite of a partitioned table, the partitions the
// source no longer has. The next Commit drops them from _parts.
func (w *Writer) PruneParts(table string) error {
	if !ValidName(table) || Reserved(table) {
		return fmt.Errorf("prune parts: %q is not a valid table name", table)
	}
	_, folder := parquetPaths(w.dir, table)
	entries, err := os.ReadDir(folder)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune parts of %s: %w", table, err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".parquet")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if _, written := w.files[table+"/"+name]; !written {
			if err := os.Remove(filepath.Join(folder, e.Name())); err != nil {
				return fmt.Errorf("prune parts of %s: %w", table, err)
			}
		}
	}
	return nil
}

// WriteQuery writes the result of a DuckDB SELECT to the target's Parquet
// file. The query runs in the Writer's own in-memory DuckDB, so it can read
// files (read_csv, read_parquet, read_json) or anything an extension the
// connector loaded provides.
func (w *Writer) WriteQuery(ctx context.Context, target, query string) (File, error) {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return File{}, fmt.Errorf("write %s: %w", target, err)
	}
	defer conn.Close()
	return w.copyTo(ctx, conn, target, query)
}

// WriteFile writes a CSV, Parquet or JSON file (optionally compressed; the
// format follows the file name, as DuckDB's FROM '<file>' does) to the
// target's Parquet file.
func (w *Writer) WriteFile(ctx context.Context, target, src string) (File, error) {
	return w.WriteQuery(ctx, target, "SELECT * FROM "+quoteString(src))
}

// WriteRows writes rows produced in Go to the target's Parquet file. rows
// calls emit once per row, with one value per column; the values are
// appended to DuckDB as they come, so rows can stream from an API.
func (w *Writer) WriteRows(ctx context.Context, target string, cols []Column, rows func(emit func(values ...any) error) error) (File, error) {
	if len(cols) == 0 {
		return File{}, fmt.Errorf("write %s: no columns", target)
	}
	defs := make([]string, len(cols))
	for i, c := range cols {
		if !typeRE.MatchString(c.Type) {
			return File{}, fmt.Errorf("write %s: column %q: unsupported type %q", target, c.Name, c.Type)
		}
		defs[i] = quoteIdent(c.Name) + " " + c.Type
	}
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return File{}, fmt.Errorf("write %s: %w", target, err)
	}
	defer conn.Close()
	const staging = "_agnes_rows"
	if _, err := conn.ExecContext(ctx, "CREATE OR REPLACE TEMP TABLE "+staging+" ("+strings.Join(defs, ", ")+")"); err != nil {
		return File{}, fmt.Errorf("write %s: %w", target, err)
	}
	// Free the staged rows; best effort, the next call replaces the table anyway.
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS temp.main."+staging) }()
	err = conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		app, err := duckdb.NewAppender(dconn, "temp", "main", staging)
		if err != nil {
			return err
		}
		emit := func(values ...any) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			vals := make([]driver.Value, len(values))
			for i, v := range values {
				vals[i] = v
			}
			return app.AppendRow(vals...)
		}
		return errors.Join(rows(emit), app.Close())
	})
	if err != nil {
		return File{}, fmt.Errorf("write %s: %w", target, err)
	}
	return w.copyTo(ctx, conn, target, "SELECT * FROM temp.main."+staging)
}

// typeRE accepts DuckDB type names such as DECIMAL(18,2), VARCHAR[] or
// STRUCT(a INTEGER, b VARCHAR) and nothing that could end the statement.
var typeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_ ,()\[\]]*$`)

// copyTo runs COPY (query) TO a hidden temp file next to the target, hashes
// it, syncs it to disk and renames it into place.
func (w *Writer) copyTo(ctx context.Context, conn *sql.Conn, target, query string) (File, error) {
	path, err := w.targetPath(target)
	if err != nil {
		return File{}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return File{}, fmt.Errorf("write %s: %w", target, err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+randomSuffix())
	defer os.Remove(tmp) // no-op once renamed
	res, err := conn.ExecContext(ctx, "COPY ("+query+") TO "+quoteString(tmp)+" (FORMAT parquet, COMPRESSION zstd)")
	if err != nil {
		return File{}, fmt.Errorf("write %s: %w", target, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return File{}, fmt.Errorf("write %s: %w", target, err)
	}
	sum, size, err := hashAndSync(tmp)
	if err != nil {
		return File{}, fmt.Errorf("write %s: %w", target, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return File{}, fmt.Errorf("write %s: %w", target, err)
	}
	f := File{Target: target, Path: path, Rows: n, SizeBytes: size, MD5: sum, WrittenAt: time.Now().UTC()}
	table, _, partitioned := strings.Cut(target, "/")
	w.files[target] = f
	w.partitioned[table] = partitioned
	return f, nil
}

// targetPath maps "t" to data/t.parquet and "t/part" to data/t/part.parquet.
func (w *Writer) targetPath(target string) (string, error) {
	table, part, partitioned := strings.Cut(target, "/")
	switch {
	case !ValidName(table) || Reserved(table):
		return "", fmt.Errorf("write %s: %q is not a valid table name", target, table)
	case partitioned && !partRE.MatchString(part):
		return "", fmt.Errorf("write %s: %q is not a valid partition name", target, part)
	case partitioned:
		_, folder := parquetPaths(w.dir, table)
		return filepath.Join(folder, part+".parquet"), nil
	}
	file, _ := parquetPaths(w.dir, table)
	return file, nil
}

// Meta returns the _meta row for a table stored as this single file.
func (f File) Meta(description string) Meta {
	table, _, partitioned := strings.Cut(f.Target, "/")
	m := Meta{TableName: table, Description: description, Rows: f.Rows, SizeBytes: f.SizeBytes,
		ExtractedAt: f.WrittenAt, QueryMode: ModeLocal}
	if !partitioned {
		m.MD5 = f.MD5
	}
	return m
}

// PartitionedTable returns the row of a partitioned table from the files
// now in data/<table>/: one Part per file, with the hash and row count this
// Writer computed when it wrote the file, else the ones extract.duckdb's
// _parts records for it (if the size still matches), else computed now.
// Rows and size are the parts' sums and MD5 is PartsMD5 of the parts.
func (w *Writer) PartitionedTable(ctx context.Context, table, description string) (Table, error) {
	if !ValidName(table) || Reserved(table) {
		return Table{}, fmt.Errorf("partitioned table %q: not a valid table name", table)
	}
	parts, err := w.resolveParts(ctx, table, nil, w.recordedParts(ctx)[strings.ToLower(table)])
	if err != nil {
		return Table{}, fmt.Errorf("partitioned table %s: %w", table, err)
	}
	if len(parts) == 0 {
		_, folder := parquetPaths(w.dir, table)
		return Table{}, fmt.Errorf("partitioned table %s: no Parquet files in %s", table, folder)
	}
	t := Table{Meta: Meta{TableName: table, Description: description, ExtractedAt: time.Now().UTC(), QueryMode: ModeLocal}}
	t.setParts(parts)
	return t, nil
}

// PartitionedMeta is PartitionedTable without the parts.
func (w *Writer) PartitionedMeta(ctx context.Context, table, description string) (Meta, error) {
	t, err := w.PartitionedTable(ctx, table, description)
	return t.Meta, err
}

// setParts makes parts the table's parts and derives rows, size and MD5.
func (t *Table) setParts(parts []Part) {
	t.Parts = parts
	t.Rows, t.SizeBytes = 0, 0
	for _, p := range parts {
		t.Rows += p.Rows
		t.SizeBytes += p.SizeBytes
	}
	t.MD5 = PartsMD5(parts)
}

// resolveParts lists data/<table>/*.parquet and returns one Part per file,
// sorted by name. A part's hash and rows come from, in order: the file this
// Writer wrote; given (the caller's Table.Parts) or recorded (the current
// _parts rows), if the size matches and the file is not newer than
// extract.duckdb (a part rewritten after the last commit by a run that
// crashed before committing is not trusted); otherwise the file is hashed
// and its row count read from the Parquet footer (also for extracts
// written before _parts existed). A missing folder has no parts.
func (w *Writer) resolveParts(ctx context.Context, table string, given, recorded []Part) ([]Part, error) {
	_, folder := parquetPaths(w.dir, table)
	entries, err := os.ReadDir(folder)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var committed time.Time
	if st, err := os.Stat(filepath.Join(w.dir, DBFile)); err == nil {
		committed = st.ModTime()
	}
	known := func(list []Part, name string, info fs.FileInfo) (Part, bool) {
		i := slices.IndexFunc(list, func(p Part) bool { return p.Name == name })
		if i < 0 || list[i].SizeBytes != info.Size() || !md5RE.MatchString(list[i].MD5) || info.ModTime().After(committed) {
			return Part{}, false
		}
		return list[i], true
	}
	var parts []Part
	for _, e := range entries { // sorted by name
		name, ok := strings.CutSuffix(e.Name(), ".parquet")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if !partRE.MatchString(name) {
			return nil, fmt.Errorf("%s: %q is not a valid part name", folder, e.Name())
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		size := info.Size()
		if f, ok := w.files[table+"/"+name]; ok && f.SizeBytes == size {
			parts = append(parts, Part{Name: name, MD5: f.MD5, SizeBytes: size, Rows: f.Rows})
			continue
		}
		if p, ok := known(given, name, info); ok {
			parts = append(parts, p)
			continue
		}
		if p, ok := known(recorded, name, info); ok {
			parts = append(parts, p)
			continue
		}
		p, err := w.hashPart(ctx, filepath.Join(folder, e.Name()))
		if err != nil {
			return nil, err
		}
		p.Name = name
		parts = append(parts, p)
	}
	return parts, nil
}

// hashPart computes a part's MD5, size and rows from the file itself.
func (w *Writer) hashPart(ctx context.Context, path string) (Part, error) {
	sum, size, err := hashFile(path)
	if err != nil {
		return Part{}, err
	}
	var rows int64
	err = w.db.QueryRowContext(ctx, "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata("+quoteString(path)+")").Scan(&rows)
	if err != nil {
		return Part{}, fmt.Errorf("rows of %s: %w", path, err)
	}
	return Part{MD5: sum, SizeBytes: size, Rows: rows}, nil
}

// recordedParts returns the _parts rows of the extract on disk by
// lower-case table name; none if there is no readable extract.
func (w *Writer) recordedParts(ctx context.Context) map[string][]Part {
	cur, err := Read(ctx, w.dir)
	if err != nil {
		return nil
	}
	return partsByTable(cur.Tables)
}

func partsByTable(tables []Table) map[string][]Part {
	out := map[string][]Part{}
	for _, t := range tables {
		if len(t.Parts) > 0 {
			out[strings.ToLower(t.TableName)] = t.Parts
		}
	}
	return out
}

// Update rewrites extract.duckdb with the current contents, each given table
// added or replacing the row of the same name. Other tables and the
// _remote_attach rows stay as they are; nothing in data/ is touched.
func (w *Writer) Update(ctx context.Context, tables ...Table) error {
	cur, err := w.current(ctx)
	if err != nil && !notExist(err) {
		return err
	}
	recorded := partsByTable(cur.Tables)
	for _, t := range tables {
		i := slices.IndexFunc(cur.Tables, func(c Table) bool { return strings.EqualFold(c.TableName, t.TableName) })
		if i >= 0 {
			cur.Tables[i] = t
		} else {
			cur.Tables = append(cur.Tables, t)
		}
	}
	return w.commit(ctx, cur, recorded)
}

// Commit writes a fresh extract.duckdb holding exactly c: _meta, _parts,
// _remote_attach (if any) and one view per table. Remote views are created
// with the remotes attached (DuckDB binds a view when it is created), which
// needs the extensions and tokens at hand.
//
// A local table is published in the form this Writer last wrote it in
// (data/<t>.parquet or data/<t>/), else in the form found on disk. For a
// partitioned table, Commit lists the files in data/<t>/ and records them
// in _parts (see PartitionedTable for where each hash comes from), so parts
// whose file is gone are dropped, and sets the table's rows, size_bytes and
// md5 from them. After the new extract.duckdb is in place, the other form
// of a table written in this Writer's lifetime (the single file of a table
// now partitioned, or the reverse) is deleted.
func (w *Writer) Commit(ctx context.Context, c Contents) error {
	return w.commit(ctx, c, w.recordedParts(ctx))
}

func (w *Writer) commit(ctx context.Context, c Contents, recorded map[string][]Part) error {
	if err := w.check(c); err != nil {
		return err
	}
	tables := make([]Table, len(c.Tables))
	for i, t := range c.Tables {
		if t.QueryMode != ModeLocal {
			t.Parts = nil
		} else {
			var err error
			if t, err = w.localTable(ctx, t, recorded[strings.ToLower(t.TableName)]); err != nil {
				return fmt.Errorf("commit extract %s: %w", w.dir, err)
			}
		}
		tables[i] = t
	}
	c.Tables = tables
	final := filepath.Join(w.dir, DBFile)
	tmp := filepath.Join(w.dir, "extract.tmp-"+randomSuffix()+".duckdb")
	defer func() {
		os.Remove(tmp)
		os.Remove(tmp + ".wal")
	}()
	if err := w.build(ctx, tmp, c); err != nil {
		return fmt.Errorf("commit extract %s: %w", w.dir, err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("commit extract %s: %w", w.dir, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("commit extract %s: %w", w.dir, err)
	}
	if err := syncFile(w.dir); err != nil {
		return fmt.Errorf("commit extract %s: %w", w.dir, err)
	}
	w.committed = nil
	if fi, err := os.Stat(final); err == nil {
		w.committed = &committed{file: fi, contents: c.clone()}
	}
	w.removeSuperseded(c.Tables)
	return nil
}

// SameFile reports whether now is still the file was: the same file, size
// and modification time. A Writer replaces a Parquet file or extract.duckdb
// by renaming a new file into place, so a rewrite is another file.
func SameFile(was, now os.FileInfo) bool {
	return os.SameFile(was, now) && was.Size() == now.Size() && was.ModTime().Equal(now.ModTime())
}

// current is what extract.duckdb holds: what this Writer committed last if
// the file is still the one it wrote (SameFile), else what Read finds.
func (w *Writer) current(ctx context.Context) (Contents, error) {
	if c := w.committed; c != nil {
		fi, err := os.Stat(filepath.Join(w.dir, DBFile))
		if err == nil && SameFile(c.file, fi) {
			return c.contents.clone(), nil
		}
	}
	return Read(ctx, w.dir)
}

// localTable settles the form of a local table and, when partitioned, its
// parts and the numbers derived from them.
func (w *Writer) localTable(ctx context.Context, t Table, recorded []Part) (Table, error) {
	file, folder := parquetPaths(w.dir, t.TableName)
	partitioned, written := w.partitioned[t.TableName]
	if !written {
		if _, err := os.Stat(file); err == nil {
			partitioned = false
		} else if st, err := os.Stat(folder); err == nil && st.IsDir() {
			partitioned = true
		} else {
			t.Parts = nil // no data: the view, if any, is the caller's
			return t, nil
		}
	}
	if !partitioned {
		t.Parts = nil
		if t.View == "" {
			t.View = "SELECT * FROM read_parquet(" + quoteString(file) + ")"
		}
		return t, nil
	}
	parts, err := w.resolveParts(ctx, t.TableName, t.Parts, recorded)
	if err != nil {
		return Table{}, fmt.Errorf("table %s: %w", t.TableName, err)
	}
	if len(parts) == 0 {
		return Table{}, fmt.Errorf("local table %s has no Parquet in %s", t.TableName, filepath.Join(w.dir, DataDir))
	}
	t.setParts(parts)
	if t.View == "" {
		t.View = partitionedView(folder)
	}
	return t, nil
}

// removeSuperseded deletes the other form of each committed local table
// this Writer wrote. Best effort: a leftover wastes disk and Validate
// reports it, but the committed views already read the right form.
func (w *Writer) removeSuperseded(tables []Table) {
	for _, t := range tables {
		partitioned, written := w.partitioned[t.TableName]
		if !written || t.QueryMode != ModeLocal {
			continue
		}
		file, folder := parquetPaths(w.dir, t.TableName)
		if partitioned {
			_ = os.Remove(file)
		} else {
			_ = os.RemoveAll(folder)
		}
	}
}

func (w *Writer) check(c Contents) error {
	seen := map[string]bool{}
	for _, t := range c.Tables {
		l := strings.ToLower(t.TableName)
		switch {
		case !ValidName(t.TableName) || Reserved(t.TableName):
			return fmt.Errorf("commit extract: %q is not a valid table name", t.TableName)
		case seen[l]:
			return fmt.Errorf("commit extract: table %s appears twice", t.TableName)
		case t.QueryMode != ModeLocal && t.QueryMode != ModeRemote:
			return fmt.Errorf("commit extract: table %s: query mode %q is neither %s nor %s", t.TableName, t.QueryMode, ModeLocal, ModeRemote)
		case t.QueryMode == ModeRemote && t.View == "":
			return fmt.Errorf("commit extract: remote table %s has no view", t.TableName)
		}
		seen[l] = true
	}
	aliases := map[string]bool{}
	for _, r := range c.Remotes {
		if err := r.Check(); err != nil {
			return fmt.Errorf("commit extract: %w", err)
		}
		if aliases[strings.ToLower(r.Alias)] {
			return fmt.Errorf("commit extract: alias %s appears twice", r.Alias)
		}
		aliases[strings.ToLower(r.Alias)] = true
	}
	return nil
}

func (w *Writer) build(ctx context.Context, path string, c Contents) (err error) {
	db, err := openDB(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	for _, r := range c.Remotes {
		if err := AttachRemote(ctx, db, r, os.Getenv(r.TokenEnv), true); err != nil {
			return err
		}
	}
	stmts := []string{
		`CREATE TABLE main._meta (table_name VARCHAR NOT NULL, description TEXT, rows BIGINT,
			size_bytes BIGINT, extracted_at TIMESTAMP, query_mode VARCHAR, md5 VARCHAR, watermark VARCHAR)`,
		`CREATE TABLE main._parts (table_name VARCHAR NOT NULL, part VARCHAR NOT NULL, md5 VARCHAR,
			size_bytes BIGINT, rows BIGINT)`,
	}
	if len(c.Remotes) > 0 {
		stmts = append(stmts, `CREATE TABLE main._remote_attach (alias VARCHAR, extension VARCHAR, url VARCHAR, token_env VARCHAR)`)
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	for _, t := range c.Tables {
		view := t.View
		if view == "" {
			if view, err = w.localView(t.TableName); err != nil {
				return err
			}
		}
		if _, err := db.ExecContext(ctx, "CREATE VIEW main."+quoteIdent(t.TableName)+" AS "+view); err != nil {
			return fmt.Errorf("view %s: %w", t.TableName, err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO main._meta VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			t.TableName, t.Description, t.Rows, t.SizeBytes, nullTime(t.ExtractedAt), t.QueryMode, nullIfEmpty(t.MD5),
			nullIfEmpty(t.Watermark)); err != nil {
			return fmt.Errorf("meta %s: %w", t.TableName, err)
		}
		if err := insertParts(ctx, db, t.TableName, t.Parts); err != nil {
			return fmt.Errorf("parts %s: %w", t.TableName, err)
		}
	}
	for _, r := range c.Remotes {
		if _, err := db.ExecContext(ctx, "INSERT INTO main._remote_attach VALUES (?, ?, ?, ?)",
			r.Alias, r.Extension, r.URL, nullIfEmpty(r.TokenEnv)); err != nil {
			return fmt.Errorf("remote %s: %w", r.Alias, err)
		}
	}
	_, err = db.ExecContext(ctx, "CHECKPOINT")
	return err
}

// insertParts writes a table's _parts rows, a few hundred per statement.
func insertParts(ctx context.Context, db *sql.DB, table string, parts []Part) error {
	const batch = 200
	for len(parts) > 0 {
		n := min(len(parts), batch)
		args := make([]any, 0, 5*n)
		for _, p := range parts[:n] {
			args = append(args, table, p.Name, p.MD5, p.SizeBytes, p.Rows)
		}
		q := "INSERT INTO main._parts VALUES " + strings.Repeat("(?, ?, ?, ?, ?), ", n-1) + "(?, ?, ?, ?, ?)"
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		parts = parts[n:]
	}
	return nil
}

// localView is the default view of a local table over its Parquet, by
// absolute path (DuckDB resolves relative paths against the process's
// working directory, not the database file).
func (w *Writer) localView(table string) (string, error) {
	file, folder := parquetPaths(w.dir, table)
	if _, err := os.Stat(file); err == nil {
		return "SELECT * FROM read_parquet(" + quoteString(file) + ")", nil
	}
	if st, err := os.Stat(folder); err == nil && st.IsDir() {
		return partitionedView(folder), nil
	}
	return "", fmt.Errorf("local table %s has no Parquet in %s", table, filepath.Join(w.dir, DataDir))
}

// partitionedView reads every part of a folder; parts may differ in their
// columns (union_by_name).
func partitionedView(folder string) string {
	return "SELECT * FROM read_parquet(" + quoteString(filepath.Join(folder, "*.parquet")) + ", union_by_name = true)"
}

// hashAndSync returns the hex MD5 and size of the file and flushes it to
// disk, so the rename that follows publishes complete bytes.
func hashAndSync(path string) (string, int64, error) {
	return hash(path, true)
}

// hashFile returns the hex MD5 and size of the file.
func hashFile(path string) (string, int64, error) {
	return hash(path, false)
}

func hash(path string, sync bool) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return "", 0, err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
