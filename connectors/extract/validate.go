package extract

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
// _meta; and that _remote_attach, when present, is well-formed and covers
// the remote rows.
func Validate(dir string) (Report, error) {
	ctx := context.Background()
	v := &validator{rep: Report{Dir: dir}}
	v.run(ctx, dir)
	return v.rep, v.rep.Err()
}

type validator struct {
	rep Report
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
		if t, ok := cols["md5"]; ok && t != "VARCHAR" {
			v.add("", "%s.md5 is %s, want VARCHAR", metaTable, t)
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
	seen := map[string]bool{}
	for _, t := range c.Tables {
		v.checkTable(ctx, db, dir, t, objs, seen)
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
	parts, _ := filepath.Glob(filepath.Join(folder, "*.parquet"))
	switch {
	case fileErr == nil && len(parts) > 0:
		v.add(t.TableName, "both %s and %s/ exist", filepath.Base(file), filepath.Base(folder))
	case fileErr == nil:
		if t.SizeBytes != st.Size() {
			v.add(t.TableName, "size_bytes %d but %s has %d bytes", t.SizeBytes, filepath.Base(file), st.Size())
		}
	case len(parts) == 0:
		v.add(t.TableName, "local table without Parquet: neither %s nor %s/*.parquet", filepath.Base(file), filepath.Base(folder))
	case t.MD5 != "":
		v.add(t.TableName, "md5 set on a partitioned table")
	}
}
