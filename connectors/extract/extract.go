package extract

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Names inside an extract directory.
const (
	DBFile  = "extract.duckdb"
	DataDir = "data"
)

// Query modes of a _meta row.
const (
	ModeLocal  = "local"  // data lives in data/ as Parquet
	ModeRemote = "remote" // the view reads a source attached through _remote_attach
)

// Tables of the contract inside extract.duckdb.
const (
	metaTable   = "_meta"
	remoteTable = "_remote_attach"
	partsTable  = "_parts"
)

// Meta is one _meta row: one table the source provides.
type Meta struct {
	TableName   string
	Description string
	Rows        int64
	SizeBytes   int64
	ExtractedAt time.Time
	QueryMode   string
	// MD5 is the table's content hash, computed when its data was written
	// and stored in the optional column _meta.md5: the hex MD5 of
	// data/<table>.parquet, or for a partitioned table PartsMD5 of its
	// parts. Empty for remote tables (and for partitioned tables of
	// extracts written before _parts existed).
	MD5 string
	// Watermark is where the next incremental extract of the table starts,
	// in a form only its connector interprets (e.g. an RFC 3339 time). It
	// is stored in the optional column _meta.watermark, so it is committed
	// by the same rewrite of extract.duckdb as the data it describes; empty
	// for tables (and extracts written before the column existed) without one.
	Watermark string
}

// Part is one file of a partitioned table, data/<table>/<Name>.parquet: a
// row of the optional _parts table. Its hash is computed when the file is
// written, so a client can download only the parts that changed without
// anyone re-reading the data.
type Part struct {
	Name      string // file name without .parquet, e.g. "2026-01"
	MD5       string // hex MD5 of the file's bytes
	SizeBytes int64
	Rows      int64
}

// PartsMD5 is the content hash of a partitioned table: the hex MD5 of the
// lines "<name>\t<md5>\n" of its parts sorted by name. It changes when a
// part is added, removed or rewritten with other bytes.
func PartsMD5(parts []Part) string {
	sorted := slices.Clone(parts)
	slices.SortFunc(sorted, func(a, b Part) int { return strings.Compare(a.Name, b.Name) })
	h := md5.New()
	for _, p := range sorted {
		fmt.Fprintf(h, "%s\t%s\n", p.Name, p.MD5)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ValidPartName reports whether s can name a part: a file name without
// path separators, ^[a-zA-Z0-9_][a-zA-Z0-9_.=-]{0,127}$.
func ValidPartName(s string) bool { return partRE.MatchString(s) }

// RemoteAttach is one _remote_attach row: a remote source the orchestrator
// ATTACHes so the source's remote views resolve. The token itself is never
// stored; TokenEnv names the environment variable holding it.
type RemoteAttach struct {
	Alias     string
	Extension string
	URL       string
	TokenEnv  string
}

// Table is a _meta row together with the SELECT behind its view.
type Table struct {
	Meta
	// View is the SELECT the table's view runs. Empty means the default for
	// local tables: read data/<t>.parquet, or data/<t>/*.parquet for a
	// partitioned table. Remote tables must set it, e.g.
	// `SELECT * FROM kbc."in.c-crm"."orders"`. Read returns each view's
	// current SELECT, so Update keeps the other tables' views as they are.
	View string
	// Parts are the files of a partitioned local table (its _parts rows),
	// sorted by name; nil for single-file and remote tables. Commit and
	// Update derive them from the files in data/<t>/ (reusing the hashes
	// the Writer computed or _parts recorded) and set Meta's rows, size and
	// MD5 from them, so a connector may leave them empty.
	Parts []Part
}

// Contents is everything extract.duckdb describes.
type Contents struct {
	Tables  []Table
	Remotes []RemoteAttach
}

// clone is a copy of c that shares nothing c's owner could change.
func (c Contents) clone() Contents {
	out := Contents{Tables: slices.Clone(c.Tables), Remotes: slices.Clone(c.Remotes)}
	for i := range out.Tables {
		out.Tables[i].Parts = slices.Clone(out.Tables[i].Parts)
	}
	return out
}

// Conn is what the helpers need from a DuckDB handle; *sql.DB, *sql.Conn and
// *sql.Tx satisfy it.
type Conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	nameRE     = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`)
	tokenEnvRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
	partRE     = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.=-]{0,127}$`)
	md5RE      = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// ValidName reports whether s is a safe SQL identifier for a source, table,
// view or alias name: ^[a-zA-Z_][a-zA-Z0-9_]{0,63}$.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Reserved reports whether a table name may not be used for a view: the
// contract's own tables, and the _agnes prefix the master database keeps
// for its bookkeeping.
func Reserved(name string) bool {
	l := strings.ToLower(name)
	return l == metaTable || l == remoteTable || l == partsTable || strings.HasPrefix(l, "_agnes")
}

// Check reports the first thing wrong with r, or nil.
func (r RemoteAttach) Check() error {
	switch {
	case !ValidName(r.Alias):
		return fmt.Errorf("alias %q is not a valid name", r.Alias)
	case !ValidName(r.Extension):
		return fmt.Errorf("extension %q is not a valid name", r.Extension)
	case strings.TrimSpace(r.URL) == "":
		return fmt.Errorf("alias %s: url is empty", r.Alias)
	case r.TokenEnv != "" && !tokenEnvRE.MatchString(r.TokenEnv):
		return fmt.Errorf("alias %s: token_env %q is not a valid variable name", r.Alias, r.TokenEnv)
	}
	return nil
}

// Attach attaches the extract database at path read-only under alias.
func Attach(ctx context.Context, c Conn, path, alias string) error {
	if !ValidName(alias) {
		return fmt.Errorf("attach %s: invalid alias %q", path, alias)
	}
	if _, err := c.ExecContext(ctx, "ATTACH "+quoteString(path)+" AS "+quoteIdent(alias)+" (READ_ONLY)"); err != nil {
		return fmt.Errorf("attach %s: %w", path, err)
	}
	return nil
}

// builtinStorage names ATTACH types that need no extension: a remote that is
// another DuckDB file (a shared snapshot, or a fake in tests).
const builtinStorage = "duckdb"

// AttachRemote makes r's remote source available on c: it installs the
// extension when install is set and it is missing, loads it, and ATTACHes
// r.URL as r.Alias. token is the value of r.TokenEnv, or "" for none.
// The query engine passes install=false: it only loads what a rebuild
// installed.
func AttachRemote(ctx context.Context, c Conn, r RemoteAttach, token string, install bool) error {
	if err := r.Check(); err != nil {
		return err
	}
	if r.Extension != builtinStorage {
		if err := loadExtension(ctx, c, r.Extension, install); err != nil {
			return fmt.Errorf("alias %s: %w", r.Alias, err)
		}
	}
	opts := "TYPE " + r.Extension + ", READ_ONLY"
	if token != "" {
		// With a token, access mode is the extension's business (the Python
		// original attached Keboola this way). The statement holds the
		// token, so errors below never quote it.
		opts = "TYPE " + r.Extension + ", TOKEN " + quoteString(token)
	}
	if _, err := c.ExecContext(ctx, "ATTACH "+quoteString(r.URL)+" AS "+quoteIdent(r.Alias)+" ("+opts+")"); err != nil {
		return fmt.Errorf("alias %s: attach %s: %w", r.Alias, r.Extension, err)
	}
	return nil
}

func loadExtension(ctx context.Context, c Conn, ext string, install bool) error {
	var known, installed bool
	err := c.QueryRowContext(ctx,
		"SELECT count(*) > 0, coalesce(bool_or(installed), false) FROM duckdb_extensions() WHERE extension_name = ?", ext).
		Scan(&known, &installed)
	if err != nil {
		return fmt.Errorf("extension %s: %w", ext, err)
	}
	if install && !installed {
		stmt := "INSTALL " + ext
		if !known { // not a core extension: the community repository has it
			stmt += " FROM community"
		}
		if _, err := c.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("install extension %s: %w", ext, err)
		}
	}
	if _, err := c.ExecContext(ctx, "LOAD "+ext); err != nil {
		return fmt.Errorf("load extension %s: %w", ext, err)
	}
	return nil
}

// parquetPaths returns the absolute path of a local table's single Parquet
// file and of its partition folder; at most one of them should exist.
func parquetPaths(dir, table string) (file, folder string) {
	return filepath.Join(dir, DataDir, table+".parquet"), filepath.Join(dir, DataDir, table)
}

func quoteIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
