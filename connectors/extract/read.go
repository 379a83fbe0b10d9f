package extract

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// readAlias is the name an extract is attached under when read on its own.
const readAlias = "extract"

// metaColumns are _meta's required columns and their DuckDB types.
var metaColumns = []struct{ name, typ string }{
	{"table_name", "VARCHAR"},
	{"description", "VARCHAR"},
	{"rows", "BIGINT"},
	{"size_bytes", "BIGINT"},
	{"extracted_at", "TIMESTAMP"},
	{"query_mode", "VARCHAR"},
}

// optionalMetaColumns are _meta's VARCHAR columns added after the first
// version of the contract: readers take them when present.
var optionalMetaColumns = []string{"md5", "watermark"}

var remoteColumns = []string{"alias", "extension", "url", "token_env"}

// partsColumns are _parts' columns and their DuckDB types. Readers need
// table_name and part; the others read as zero when missing.
var partsColumns = []struct{ name, typ string }{
	{"table_name", "VARCHAR"},
	{"part", "VARCHAR"},
	{"md5", "VARCHAR"},
	{"size_bytes", "BIGINT"},
	{"rows", "BIGINT"},
}

// Read returns what the extract in dir describes. It opens extract.duckdb
// read-only. A missing extract is an error matching fs.ErrNotExist.
func Read(ctx context.Context, dir string) (Contents, error) {
	path := filepath.Join(dir, DBFile)
	if _, err := os.Stat(path); err != nil {
		return Contents{}, fmt.Errorf("read extract: %w", err)
	}
	db, err := openMemory()
	if err != nil {
		return Contents{}, err
	}
	defer db.Close()
	if err := Attach(ctx, db, path, readAlias); err != nil {
		return Contents{}, err
	}
	return ReadAttached(ctx, db, readAlias)
}

// ReadAttached reads _meta, _remote_attach, _parts and the tables' view
// definitions of an extract attached under alias. It is lenient about
// column types (Validate is the strict one) but needs every required _meta
// column. _parts rows of tables without a _meta row are left out.
func ReadAttached(ctx context.Context, c Conn, alias string) (Contents, error) {
	cols, err := columns(ctx, c, alias, metaTable)
	if err != nil {
		return Contents{}, err
	}
	if len(cols) == 0 {
		return Contents{}, fmt.Errorf("extract %s: no %s table", alias, metaTable)
	}
	sel := make([]string, 0, len(metaColumns)+1)
	for _, mc := range metaColumns {
		if _, ok := cols[mc.name]; !ok {
			return Contents{}, fmt.Errorf("extract %s: %s has no column %s", alias, metaTable, mc.name)
		}
		sel = append(sel, "CAST("+quoteIdent(mc.name)+" AS "+mc.typ+")")
	}
	for _, opt := range optionalMetaColumns { // absent in older extracts
		if _, ok := cols[opt]; ok {
			sel = append(sel, "CAST("+quoteIdent(opt)+" AS VARCHAR)")
		} else {
			sel = append(sel, "NULL::VARCHAR")
		}
	}
	rows, err := c.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+quoteIdent(alias)+".main."+metaTable)
	if err != nil {
		return Contents{}, fmt.Errorf("extract %s: read %s: %w", alias, metaTable, err)
	}
	var out Contents
	for rows.Next() {
		var (
			name, desc, mode, sum, mark sql.NullString
			n, size                     sql.NullInt64
			at                          sql.NullTime
		)
		if err := rows.Scan(&name, &desc, &n, &size, &at, &mode, &sum, &mark); err != nil {
			_ = rows.Close()
			return Contents{}, fmt.Errorf("extract %s: read %s: %w", alias, metaTable, err)
		}
		out.Tables = append(out.Tables, Table{Meta: Meta{
			TableName: name.String, Description: desc.String, Rows: n.Int64, SizeBytes: size.Int64,
			ExtractedAt: at.Time, QueryMode: mode.String, MD5: sum.String, Watermark: mark.String,
		}})
	}
	if err := closeRows(rows); err != nil {
		return Contents{}, fmt.Errorf("extract %s: read %s: %w", alias, metaTable, err)
	}
	if out.Remotes, err = readRemotes(ctx, c, alias); err != nil {
		return Contents{}, err
	}
	views, err := viewSelects(ctx, c, alias)
	if err != nil {
		return Contents{}, err
	}
	parts, _, err := readParts(ctx, c, alias)
	if err != nil {
		return Contents{}, err
	}
	for i := range out.Tables {
		key := strings.ToLower(out.Tables[i].TableName)
		out.Tables[i].View = views[key]
		out.Tables[i].Parts = parts[key]
	}
	return out, nil
}

// readParts returns the _parts rows by lower-case table name, each sorted
// by part name, and whether the table exists. An extract without _parts
// (written before it existed) has none.
func readParts(ctx context.Context, c Conn, alias string) (map[string][]Part, bool, error) {
	cols, err := columns(ctx, c, alias, partsTable)
	if err != nil || len(cols) == 0 {
		return nil, false, err
	}
	sel := make([]string, len(partsColumns))
	for i, pc := range partsColumns {
		_, ok := cols[pc.name]
		switch {
		case ok:
			sel[i] = "CAST(" + quoteIdent(pc.name) + " AS " + pc.typ + ")"
		case i < 2:
			return nil, true, fmt.Errorf("extract %s: %s has no column %s", alias, partsTable, pc.name)
		default:
			sel[i] = "NULL::" + pc.typ
		}
	}
	rows, err := c.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+quoteIdent(alias)+".main."+partsTable+
		" ORDER BY 1, 2")
	if err != nil {
		return nil, true, fmt.Errorf("extract %s: read %s: %w", alias, partsTable, err)
	}
	out := map[string][]Part{}
	for rows.Next() {
		var (
			table, name, sum sql.NullString
			size, n          sql.NullInt64
		)
		if err := rows.Scan(&table, &name, &sum, &size, &n); err != nil {
			_ = rows.Close()
			return nil, true, fmt.Errorf("extract %s: read %s: %w", alias, partsTable, err)
		}
		key := strings.ToLower(table.String)
		out[key] = append(out[key], Part{Name: name.String, MD5: sum.String, SizeBytes: size.Int64, Rows: n.Int64})
	}
	if err := closeRows(rows); err != nil {
		return nil, true, fmt.Errorf("extract %s: read %s: %w", alias, partsTable, err)
	}
	return out, true, nil
}

func readRemotes(ctx context.Context, c Conn, alias string) ([]RemoteAttach, error) {
	cols, err := columns(ctx, c, alias, remoteTable)
	if err != nil || len(cols) == 0 {
		return nil, err
	}
	sel := make([]string, len(remoteColumns))
	for i, name := range remoteColumns {
		if _, ok := cols[name]; !ok {
			return nil, fmt.Errorf("extract %s: %s has no column %s", alias, remoteTable, name)
		}
		sel[i] = "coalesce(CAST(" + quoteIdent(name) + " AS VARCHAR), '')"
	}
	rows, err := c.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+quoteIdent(alias)+".main."+remoteTable)
	if err != nil {
		return nil, fmt.Errorf("extract %s: read %s: %w", alias, remoteTable, err)
	}
	var out []RemoteAttach
	for rows.Next() {
		var r RemoteAttach
		if err := rows.Scan(&r.Alias, &r.Extension, &r.URL, &r.TokenEnv); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("extract %s: read %s: %w", alias, remoteTable, err)
		}
		out = append(out, r)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("extract %s: read %s: %w", alias, remoteTable, err)
	}
	return out, nil
}

// columns returns the columns (name → DuckDB type) of table in the attached
// catalog, or an empty map if the table does not exist.
func columns(ctx context.Context, c Conn, catalog, table string) (map[string]string, error) {
	rows, err := c.QueryContext(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_catalog = ? AND table_schema = 'main' AND table_name = ?`, catalog, table)
	if err != nil {
		return nil, fmt.Errorf("extract %s: columns of %s: %w", catalog, table, err)
	}
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("extract %s: columns of %s: %w", catalog, table, err)
		}
		out[strings.ToLower(name)] = typ
	}
	return out, closeRows(rows)
}

// objects returns the lower-case names of the views and tables in the
// attached catalog.
func objects(ctx context.Context, c Conn, catalog string) (map[string]bool, error) {
	rows, err := c.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_catalog = ? AND table_schema = 'main'`, catalog)
	if err != nil {
		return nil, fmt.Errorf("extract %s: list objects: %w", catalog, err)
	}
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("extract %s: list objects: %w", catalog, err)
		}
		out[strings.ToLower(name)] = true
	}
	return out, closeRows(rows)
}

// viewHead matches what DuckDB puts before a view's SELECT in duckdb_views().sql.
var viewHead = regexp.MustCompile(`(?is)^\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(?:"(?:[^"]|"")*"|[a-z0-9_.]+)\s+AS\s+`)

// viewSelects returns the SELECT of each view in the catalog, by lower-case name.
func viewSelects(ctx context.Context, c Conn, catalog string) (map[string]string, error) {
	rows, err := c.QueryContext(ctx, `SELECT view_name, sql FROM duckdb_views()
		WHERE database_name = ? AND schema_name = 'main' AND NOT internal`, catalog)
	if err != nil {
		return nil, fmt.Errorf("extract %s: list views: %w", catalog, err)
	}
	out := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("extract %s: list views: %w", catalog, err)
		}
		if loc := viewHead.FindStringIndex(def); loc != nil {
			out[strings.ToLower(name)] = strings.TrimRight(strings.TrimSpace(def[loc[1]:]), ";")
		}
	}
	return out, closeRows(rows)
}

// openMemory opens a private in-memory DuckDB. Extensions are never fetched
// implicitly: offline, a path needing httpfs fails at once instead of after
// a download attempt.
func openMemory() (*sql.DB, error) {
	return openDB("")
}

func openDB(path string) (*sql.DB, error) {
	c, err := duckdb.NewConnector(path+"?autoinstall_known_extensions=false&autoload_known_extensions=false", nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb %s: %w", path, err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1) // one connection: statements run in order, state is shared
	return db, nil
}

func closeRows(rows *sql.Rows) error {
	return errors.Join(rows.Err(), rows.Close())
}

// notExist reports whether err says a file is missing.
func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
