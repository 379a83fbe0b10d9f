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
	return &Writer{dir: abs, db: db}, nil
}

// Close releases the Writer's DuckDB.
func (w *Writer) Close() error { return w.db.Close() }

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
	return File{Target: target, Path: path, Rows: n, SizeBytes: size, MD5: sum, WrittenAt: time.Now().UTC()}, nil
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

// PartitionedMeta returns the _meta row for a partitioned table from the
// files now in data/<table>/: rows come from the Parquet footers, size is
// the sum of the file sizes.
func (w *Writer) PartitionedMeta(ctx context.Context, table, description string) (Meta, error) {
	_, folder := parquetPaths(w.dir, table)
	files, err := filepath.Glob(filepath.Join(folder, "*.parquet"))
	if err != nil || len(files) == 0 {
		return Meta{}, fmt.Errorf("partitioned meta %s: no Parquet files in %s", table, folder)
	}
	var size int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return Meta{}, fmt.Errorf("partitioned meta %s: %w", table, err)
		}
		size += st.Size()
	}
	var rows int64
	err = w.db.QueryRowContext(ctx, "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata("+
		quoteString(filepath.Join(folder, "*.parquet"))+")").Scan(&rows)
	if err != nil {
		return Meta{}, fmt.Errorf("partitioned meta %s: %w", table, err)
	}
	return Meta{TableName: table, Description: description, Rows: rows, SizeBytes: size,
		ExtractedAt: time.Now().UTC(), QueryMode: ModeLocal}, nil
}

// Update rewrites extract.duckdb with the current contents, each given table
// added or replacing the row of the same name. Other tables and the
// _remote_attach rows stay as they are; nothing in data/ is touched.
func (w *Writer) Update(ctx context.Context, tables ...Table) error {
	cur, err := Read(ctx, w.dir)
	if err != nil && !notExist(err) {
		return err
	}
	for _, t := range tables {
		i := slices.IndexFunc(cur.Tables, func(c Table) bool { return strings.EqualFold(c.TableName, t.TableName) })
		if i >= 0 {
			cur.Tables[i] = t
		} else {
			cur.Tables = append(cur.Tables, t)
		}
	}
	return w.Commit(ctx, cur)
}

// Commit writes a fresh extract.duckdb holding exactly c: _meta,
// _remote_attach (if any) and one view per table. Remote views are created
// with the remotes attached (DuckDB binds a view when it is created), which
// needs the extensions and tokens at hand.
func (w *Writer) Commit(ctx context.Context, c Contents) error {
	if err := w.check(c); err != nil {
		return err
	}
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
	return syncFile(w.dir)
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
			size_bytes BIGINT, extracted_at TIMESTAMP, query_mode VARCHAR, md5 VARCHAR)`,
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
		if _, err := db.ExecContext(ctx, "INSERT INTO main._meta VALUES (?, ?, ?, ?, ?, ?, ?)",
			t.TableName, t.Description, t.Rows, t.SizeBytes, nullTime(t.ExtractedAt), t.QueryMode, nullIfEmpty(t.MD5)); err != nil {
			return fmt.Errorf("meta %s: %w", t.TableName, err)
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

// localView is the default view of a local table over its Parquet, by
// absolute path (DuckDB resolves relative paths against the process's
// working directory, not the database file).
func (w *Writer) localView(table string) (string, error) {
	file, folder := parquetPaths(w.dir, table)
	if _, err := os.Stat(file); err == nil {
		return "SELECT * FROM read_parquet(" + quoteString(file) + ")", nil
	}
	if st, err := os.Stat(folder); err == nil && st.IsDir() {
		return "SELECT * FROM read_parquet(" + quoteString(filepath.Join(folder, "*.parquet")) + ", union_by_name = true)", nil
	}
	return "", fmt.Errorf("local table %s has no Parquet in %s", table, filepath.Join(w.dir, DataDir))
}

// hashAndSync returns the hex MD5 and size of the file and flushes it to
// disk, so the rename that follows publishes complete bytes.
func hashAndSync(path string) (string, int64, error) {
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
	if err := f.Sync(); err != nil {
		return "", 0, err
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
