package extract

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Problem is one way an extract breaks the contract. Table is empty for
// problems of the extract as a whole.
type Problem struct {
	Table   string
	Message string
}

func (p Problem) String() string {
	if p.Table == "" {
		return p.Message
	}
	return p.Table + ": " + p.Message
}

// Report is the outcome of Validate: what the extract declares and every
// problem found.
type Report struct {
	Dir      string
	Contents Contents
	Problems []Problem
}

// Err returns nil for a valid extract, or an error listing every problem.
func (r Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	errs := make([]error, len(r.Problems))
	for i, p := range r.Problems {
		errs[i] = errors.New(p.String())
	}
	return fmt.Errorf("extract %s breaks the contract: %w", r.Dir, errors.Join(errs...))
}

// Validate checks the extract in dir against the contract and returns every
// problem it finds; the error is Report.Err(). It opens extract.duckdb
// read-only and checks: the source name; _meta's columns and types; each
// row's name, mode, numbers and md5; that each row has a view or table that
// answers SELECT * ... LIMIT 0 (remote rows: that it exists, since their
// remote is not attached here); that local tables have their Parquet (one
// file or one folder, not both) and that a single file's size matches
// _meta; that _parts, when present, is well-formed, belongs to partitioned
// local tables, lists exactly the files in their folders with their sizes,
// and adds up to the table's rows, size_bytes and md5 (PartsMD5); and that
// _remote_attach, when present, is well-formed and covers the remote rows.
// Validate compares sizes, it does not re-hash files.
func Validate(dir string) (Report, error) {
	ctx := context.Background()
	v := &validator{rep: Report{Dir: dir}}
	v.run(ctx, dir)
	return v.rep, v.rep.Err()
}

type validator struct {
	rep Report
	// hasParts: the extract has a _parts table, so every partitioned table
	// must list its files there (extracts written before _parts existed
	// have none, and their partitioned tables no md5).
	hasParts bool
}

func (v *validator) add(table, format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, Problem{Table: table, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) run(ctx context.Context, dir string) {
	if src := filepath.Base(filepath.Clean(dir)); !ValidName(src) {
		v.add("", "source name %q is not a valid name", src)
	}
	path := filepath.Join(dir, DBFile)
	if _, err := os.Stat(path); err != nil {
		v.add("", "no %s: %v", DBFile, err)
		return
	}
	db, err := openMemory()
	if err != nil {
		v.add("", "%v", err)
		return
	}
	defer db.Close()
	if err := Attach(ctx, db, path, readAlias); err != nil {
		v.add("", "cannot open read-only: %v", err)
		return
	}
	if !v.checkColumns(ctx, db, metaTable, metaColumns) {
		return
	}
	if cols, err := columns(ctx, db, readAlias, metaTable); err == nil {
		for _, opt := range optionalMetaColumns {
			if t, ok := cols[opt]; ok && t != "VARCHAR" {
				v.add("", "%s.%s is %s, want VARCHAR", metaTable, opt, t)
			}
		}
	}
	c, err := ReadAttached(ctx, db, readAlias)
	if err != nil {
		v.add("", "%v", err)
		return
	}
	v.rep.Contents = c
	objs, err := objects(ctx, db, readAlias)
	if err != nil {
		v.add("", "%v", err)
		return
	}
	v.checkRemotes(ctx, db, c.Remotes)
	v.checkPartsTable(ctx, db, c.Tables)
	seen := map[string]bool{}
	for _, t := range c.Tables {
		v.checkTable(ctx, db, dir, t, objs, seen)
	}
}

// checkPartsTable checks _parts' columns and reports rows of tables that
// have no _meta row or are not local.
func (v *validator) checkPartsTable(ctx context.Context, c Conn, tables []Table) {
	cols, err := columns(ctx, c, readAlias, partsTable)
	if err != nil {
		v.add("", "%v", err)
		return
	}
	if len(cols) == 0 {
		return
	}
	v.hasParts = true
	if !v.checkColumns(ctx, c, partsTable, partsColumns) {
		return
	}
	parts, _, err := readParts(ctx, c, readAlias)
	if err != nil {
		v.add("", "%v", err)
		return
	}
	for key, list := range parts {
		i := slices.IndexFunc(tables, func(t Table) bool { return strings.ToLower(t.TableName) == key })
		switch {
		case i < 0:
			v.add("", "%s lists %d part(s) of %q, which has no %s row", partsTable, len(list), key, metaTable)
		case tables[i].QueryMode != ModeLocal:
			v.add(tables[i].TableName, "%s rows for a table that is not local", partsTable)
		}
	}
}

// checkColumns reports missing or mistyped columns and whether the table
// exists with every column, so its rows can be read.
func (v *validator) checkColumns(ctx context.Context, c Conn, table string, want []struct{ name, typ string }) bool {
	cols, err := columns(ctx, c, readAlias, table)
	if err != nil {
		v.add("", "%v", err)
		return false
	}
	if len(cols) == 0 {
		v.add("", "no %s table", table)
		return false
	}
	ok := true
	for _, w := range want {
		got, found := cols[w.name]
		switch {
		case !found:
			v.add("", "%s has no column %s", table, w.name)
			ok = false
		case got != w.typ:
			v.add("", "%s.%s is %s, want %s", table, w.name, got, w.typ)
		}
	}
	return ok
}

func (v *validator) checkRemotes(ctx context.Context, c Conn, remotes []RemoteAttach) {
	want := make([]struct{ name, typ string }, len(remoteColumns))
	for i, n := range remoteColumns {
		want[i] = struct{ name, typ string }{n, "VARCHAR"}
	}
	if cols, err := columns(ctx, c, readAlias, remoteTable); err == nil && len(cols) > 0 {
		v.checkColumns(ctx, c, remoteTable, want)
	}
	source := filepath.Base(filepath.Clean(v.rep.Dir))
	aliases := map[string]bool{}
	for _, r := range remotes {
		if err := r.Check(); err != nil {
			v.add("", "%s: %v", remoteTable, err)
		}
		l := strings.ToLower(r.Alias)
		if aliases[l] {
			v.add("", "%s: alias %s appears twice", remoteTable, r.Alias)
		}
		if strings.EqualFold(r.Alias, source) {
			v.add("", "%s: alias %s is the source's own name", remoteTable, r.Alias)
		}
		aliases[l] = true
	}
}

func (v *validator) checkTable(ctx context.Context, c Conn, dir string, t Table, objs map[string]bool, seen map[string]bool) {
	name := t.TableName
	switch {
	case name == "":
		v.add("", "%s row with an empty table_name", metaTable)
		return
	case !ValidName(name):
		v.add(name, "not a valid table name")
		return
	case Reserved(name):
		v.add(name, "reserved table name")
		return
	case seen[strings.ToLower(name)]:
		v.add(name, "appears twice in %s", metaTable)
		return
	}
	seen[strings.ToLower(name)] = true
	if t.Rows < 0 || t.SizeBytes < 0 {
		v.add(name, "negative rows (%d) or size_bytes (%d)", t.Rows, t.SizeBytes)
	}
	if t.MD5 != "" && !md5RE.MatchString(t.MD5) {
		v.add(name, "md5 %q is not 32 lower-case hex digits", t.MD5)
	}
	if !objs[strings.ToLower(name)] {
		v.add(name, "no view or table named %s", name)
		return
	}
	switch t.QueryMode {
	case ModeRemote:
		if len(v.rep.Contents.Remotes) == 0 {
			v.add(name, "remote table but no %s rows", remoteTable)
		}
	case ModeLocal:
		v.checkParquet(dir, t)
		rows, err := c.QueryContext(ctx, "SELECT * FROM "+quoteIdent(readAlias)+".main."+quoteIdent(name)+" LIMIT 0")
		if err == nil {
			err = closeRows(rows)
		}
		if err != nil {
			v.add(name, "cannot be queried: %v", err)
		}
	default:
		v.add(name, "query_mode %q is neither %s nor %s", t.QueryMode, ModeLocal, ModeRemote)
	}
}

func (v *validator) checkParquet(dir string, t Table) {
	file, folder := parquetPaths(dir, t.TableName)
	st, fileErr := os.Stat(file)
	files, _ := filepath.Glob(filepath.Join(folder, "*.parquet"))
	switch {
	case fileErr == nil && len(files) > 0:
		v.add(t.TableName, "both %s and %s/ exist", filepath.Base(file), filepath.Base(folder))
	case fileErr == nil:
		if t.SizeBytes != st.Size() {
			v.add(t.TableName, "size_bytes %d but %s has %d bytes", t.SizeBytes, filepath.Base(file), st.Size())
		}
		if len(t.Parts) > 0 {
			v.add(t.TableName, "%s rows for a table stored as the single file %s", partsTable, filepath.Base(file))
		}
	case len(files) == 0:
		v.add(t.TableName, "local table without Parquet: neither %s nor %s/*.parquet", filepath.Base(file), filepath.Base(folder))
	case v.hasParts:
		v.checkParts(folder, t, files)
	case t.MD5 != "":
		v.add(t.TableName, "md5 set on a partitioned table without %s", partsTable)
	}
}

// checkParts compares a partitioned table's _parts rows with the files in
// its folder and with its _meta row.
func (v *validator) checkParts(folder string, t Table, files []string) {
	name := t.TableName
	listed := map[string]bool{}
	var rows, size int64
	for _, p := range t.Parts {
		rows += p.Rows
		size += p.SizeBytes
		switch {
		case !partRE.MatchString(p.Name):
			v.add(name, "part %q is not a valid part name", p.Name)
			continue
		case listed[p.Name]:
			v.add(name, "part %s appears twice in %s", p.Name, partsTable)
			continue
		}
		listed[p.Name] = true
		if !md5RE.MatchString(p.MD5) {
			v.add(name, "part %s: md5 %q is not 32 lower-case hex digits", p.Name, p.MD5)
		}
		if p.Rows < 0 || p.SizeBytes < 0 {
			v.add(name, "part %s: negative rows (%d) or size_bytes (%d)", p.Name, p.Rows, p.SizeBytes)
		}
		st, err := os.Stat(filepath.Join(folder, p.Name+".parquet"))
		switch {
		case err != nil:
			v.add(name, "part %s is in %s but %s/%s.parquet is missing", p.Name, partsTable, filepath.Base(folder), p.Name)
		case st.Size() != p.SizeBytes:
			v.add(name, "part %s: size_bytes %d but the file has %d bytes", p.Name, p.SizeBytes, st.Size())
		}
	}
	unlisted := 0
	for _, f := range files { // sorted
		if part := strings.TrimSuffix(filepath.Base(f), ".parquet"); !listed[part] {
			unlisted++
			if unlisted <= 5 {
				v.add(name, "%s/%s.parquet is not listed in %s", filepath.Base(folder), part, partsTable)
			}
		}
	}
	if unlisted > 5 {
		v.add(name, "%d more files are not listed in %s", unlisted-5, partsTable)
	}
	if rows != t.Rows || size != t.SizeBytes {
		v.add(name, "rows %d and size_bytes %d, but its parts add up to %d and %d", t.Rows, t.SizeBytes, rows, size)
	}
	if want := PartsMD5(t.Parts); t.MD5 != want {
		v.add(name, "md5 %q is not the hash of its parts (%s)", t.MD5, want)
	}
}
