// Package upload is the connector for tables uploaded as CSV or Parquet
// files. Store keeps each upload in the uploads directory
// ($DATA_DIR/uploads) as <table id>.csv or <table id>.parquet; the
// registry's source_table is that file name. Extract converts the file to
// the extract's Parquet with DuckDB: CSV through read_csv with the
// delimiter detected here and the header and column types detected by
// DuckDB; column names are kept as they are (spaces and all), since the
// view is SELECT *.
//
// A malformed CSV fails with a *connectors.InputError naming the line (as
// a text editor counts lines): structural problems are found by a
// streaming check before DuckDB reads the file (Store runs it too, so a
// broken upload is refused at once), and a value that does not fit the
// type DuckDB detected from the first 20480 rows is reported from DuckDB's
// error.
package upload

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
)

// Type is the upload connector's source type.
const Type = "upload"

// New returns the connector for the uploads kept in dir.
func New(dir string) connectors.Connector { return &connector{dir: dir} }

type connector struct{ dir string }

func (c *connector) Type() string { return Type }

// Discover lists the stored uploads, with their columns (and, for
// Parquet, rows) when the file can be read.
func (c *connector) Discover(ctx context.Context) ([]connectors.Discovered, error) {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("upload discover: %w", err)
	}
	var db *sql.DB
	defer func() {
		if db != nil {
			_ = db.Close()
		}
	}()
	var out []connectors.Discovered
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id, kind, ok := parseFileName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		d := connectors.Discovered{
			ID: id, Name: id, Bucket: Type, SourceTable: e.Name(), SizeBytes: info.Size(),
			Description: "Uploaded " + strings.ToUpper(string(kind)) + " file " + e.Name(),
		}
		if db == nil {
			if db, err = openDuckDB(); err != nil {
				return nil, err
			}
		}
		d.Columns, d.Rows = describe(ctx, db, filepath.Join(c.dir, e.Name()), kind)
		out = append(out, d)
	}
	return out, nil
}

// describe returns a file's column names and, for Parquet, its row count;
// nothing when the file cannot be read (Extract reports why).
func describe(ctx context.Context, db *sql.DB, path string, kind Kind) ([]string, int64) {
	from := "read_parquet(" + quoteString(path) + ")"
	if kind == KindCSV {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0
		}
		head := make([]byte, headSize)
		n, _ := f.Read(head)
		_ = f.Close()
		from = readCSV(path, detectDelimiter(head[:n], n == headSize))
	}
	rows, err := db.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE SELECT * FROM "+from+")")
	if err != nil {
		return nil, 0
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var name string
		if rows.Scan(&name) != nil {
			return nil, 0
		}
		cols = append(cols, name)
	}
	if rows.Err() != nil {
		return nil, 0
	}
	var n int64
	if kind == KindParquet {
		_ = db.QueryRowContext(ctx, "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata("+quoteString(path)+")").Scan(&n)
	}
	return cols, n
}

// Extract converts the upload named by spec.SourceTable (default: the
// table id, in either format) to the Parquet of table spec.ID.
func (c *connector) Extract(ctx context.Context, spec connectors.TableSpec, w *extract.Writer) (extract.Table, error) {
	if err := ctx.Err(); err != nil {
		return extract.Table{}, fmt.Errorf("upload extract %s: %w", spec.ID, err)
	}
	if !extract.ValidName(spec.ID) || extract.Reserved(spec.ID) {
		return extract.Table{}, inputError(fmt.Sprintf("%q is not a valid table id", spec.ID))
	}
	path, kind, err := c.find(spec)
	if err != nil {
		return extract.Table{}, fmt.Errorf("upload extract %s: %w", spec.ID, err)
	}
	name := filepath.Base(path)
	sniffed, err := SniffFile(path)
	if err != nil {
		return extract.Table{}, withFile(name, err)
	}
	if sniffed != kind {
		return extract.Table{}, inputError(fmt.Sprintf("%s: the file is %s, not %s", name, sniffed, kind))
	}

	var f extract.File
	switch kind {
	case KindCSV:
		info, err := scanCSV(ctx, path)
		if err != nil {
			return extract.Table{}, withFile(name, csvInputError(err))
		}
		f, err = w.WriteQuery(ctx, spec.ID, "SELECT * FROM "+readCSV(path, info.delim))
		if err != nil {
			return extract.Table{}, withFile(name, duckInputError(err, path, info.delim))
		}
	case KindParquet:
		f, err = w.WriteQuery(ctx, spec.ID, "SELECT * FROM read_parquet("+quoteString(path)+")")
		if err != nil {
			return extract.Table{}, withFile(name, duckInputError(err, path, 0))
		}
	}
	desc := spec.Description
	if desc == "" {
		desc = "Uploaded from " + name
	}
	return extract.Table{Meta: f.Meta(desc)}, nil
}

// find resolves spec.SourceTable (default: the table id) to a stored
// file. "<id>.csv" and "<id>.parquet" name a file, but since a new upload
// in the other format replaces the old one, the other format is used when
// the named one is gone; a bare "<id>" takes whichever exists.
func (c *connector) find(spec connectors.TableSpec) (string, Kind, error) {
	name := spec.SourceTable
	if name == "" {
		name = spec.ID
	}
	stem := name
	if id, kind, ok := parseFileName(name); ok {
		path := filepath.Join(c.dir, name)
		if _, err := os.Stat(path); err == nil {
			return path, kind, nil
		}
		stem = id
	}
	if id, err := connectors.TableID(stem); err == nil && id == stem {
		for _, kind := range []Kind{KindParquet, KindCSV} {
			path := filepath.Join(c.dir, stem+kind.Ext())
			if _, err := os.Stat(path); err == nil {
				return path, kind, nil
			}
		}
	}
	return "", "", fmt.Errorf("no upload %s: %w", name, connectors.ErrNotFound)
}

// parseFileName splits "<id>.csv" and "<id>.parquet" (id a valid table
// id); hidden temp files and anything else do not parse.
// ValidSourceTable reports whether name can be an upload table's source_table:
// a stored upload's file name ("<id>.csv", "<id>.parquet") or a bare table id,
// never a path, so a registration can only ever reach the uploads folder.
func ValidSourceTable(name string) bool {
	if _, _, ok := parseFileName(name); ok {
		return true
	}
	id, err := connectors.TableID(name)
	return err == nil && id == name
}

func parseFileName(name string) (id string, kind Kind, ok bool) {
	for _, k := range []Kind{KindCSV, KindParquet} {
		if stem, found := strings.CutSuffix(name, k.Ext()); found {
			if got, err := connectors.TableID(stem); err == nil && got == stem {
				return stem, k, true
			}
		}
	}
	return "", "", false
}

// readCSV is the read_csv call for a file scanCSV accepted: the dialect
// fixed (so DuckDB's sniffer only detects the header and the column
// types), no comment lines, no skipped rows. strict_mode is off because
// DuckDB 1.5.6's strict mode refuses files that mix line endings (\n and
// \r\n): in the sniffed head with "Error when sniffing file", further down
// with "The CSV Parser state machine reached an invalid state", neither
// with a line. What strict mode would refuse besides (unescaped quotes,
// rows with the wrong number of fields) scanCSV has already refused.
func readCSV(path string, delim byte) string {
	return "read_csv(" + csvArgs(path, delim) + ")"
}

func csvArgs(path string, delim byte) string {
	return quoteString(path) + ", delim = " + quoteString(string(delim)) +
		`, quote = '"', escape = '"', comment = '', skip = 0, strict_mode = false, encoding = 'utf-8'`
}

// crlfCountsTwice reports whether DuckDB counts \r\n as two lines in this
// file: it does (strict mode off) unless its sniffer detected \r\n as the
// line end, which depends on the head of the file, not on the majority.
func crlfCountsTwice(path string, delim byte) bool {
	db, err := openDuckDB()
	if err != nil {
		return false
	}
	defer db.Close()
	var nl string
	if err := db.QueryRow("SELECT NewLineDelimiter FROM sniff_csv(" + csvArgs(path, delim) + ")").Scan(&nl); err != nil {
		return false
	}
	return nl != `\r\n`
}

var (
	csvLineRE  = regexp.MustCompile(`CSV Error on Line: (\d+)`)
	convertRE  = regexp.MustCompile(`Error when converting column "((?:[^"]|"")*)"\. Could not convert string "(.*)" to '([^']+)'`)
	truncateAt = 80
)

// duckInputError turns DuckDB's error for a bad input file into an
// InputError: for CSV "line N: ..." with N the physical line (DuckDB
// numbers lines without counting line breaks inside quoted fields), the
// column, value and type of a failed conversion, and never the server's
// paths or DuckDB's list of options. Other errors pass through wrapped.
func duckInputError(err error, path string, delim byte) error {
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return err
	}
	msg := de.Msg
	if m := csvLineRE.FindStringSubmatch(msg); m != nil && delim != 0 {
		duckLine, _ := strconv.Atoi(m[1])
		line := physicalLine(path, delim, duckLine, crlfCountsTwice(path, delim))
		if c := convertRE.FindStringSubmatch(msg); c != nil {
			return inputError(fmt.Sprintf("line %d: column %q: %q is not a %s, the type detected from the rows above; "+
				"make the column's values consistent", line, strings.ReplaceAll(c[1], `""`, `"`), truncate(c[2]), c[3]))
		}
		return inputError(fmt.Sprintf("line %d: %s", line, csvDetail(msg)))
	}
	switch de.Type {
	case duckdb.ErrorTypeInvalidInput, duckdb.ErrorTypeConversion:
		first, _, _ := strings.Cut(msg, "\n")
		first = strings.ReplaceAll(first, path, filepath.Base(path))
		if _, rest, ok := strings.Cut(first, "Error: "); ok {
			first = rest // drop DuckDB's "Invalid Input Error: "
		}
		if delim == 0 {
			return inputError("not a readable Parquet file: " + first)
		}
		return inputError(first)
	}
	return err
}

// csvDetail is the line of DuckDB's CSV error that says what is wrong: the
// first non-empty line after "Original Line: ..." (which can span lines
// and may hold a wrong line).
func csvDetail(msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "Original Line:") {
			for _, d := range lines[i+1:] {
				if d = strings.TrimSpace(d); d != "" && !strings.HasPrefix(d, "Possible") {
					return truncate(d)
				}
			}
		}
	}
	return "the file cannot be read as CSV"
}

func truncate(s string) string {
	if r := []rune(s); len(r) > truncateAt {
		return string(r[:truncateAt]) + "…"
	}
	return s
}

// withFile prefixes an InputError's message with the file name.
func withFile(name string, err error) error {
	var ie *connectors.InputError
	if errors.As(err, &ie) {
		return &connectors.InputError{Msg: name + ": " + ie.Msg}
	}
	return fmt.Errorf("upload %s: %w", name, err)
}

func openDuckDB() (*sql.DB, error) {
	c, err := duckdb.NewConnector("?autoinstall_known_extensions=false&autoload_known_extensions=false", nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	return db, nil
}

func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
