package keboola

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors"
)

// source is the DuckDB table expression over an export's files and, for
// Parquet, the files' column types (nil: every column is VARCHAR). CSV
// slices have no header: the columns are the table's, in export order;
// quoted empty fields stay ” while empty unquoted ones (a typed table's
// NULL) are NULL.
func (r *run) source(ctx context.Context, ex *exported) (string, map[string]string, error) {
	if len(ex.files) == 0 { // an empty manifest: zero rows
		return r.emptySource(), nil, nil
	}
	files := make([]string, len(ex.files))
	for i, f := range ex.files {
		files[i] = quoteString(f)
	}
	list := "[" + strings.Join(files, ", ") + "]"
	if ex.parquet {
		from := "read_parquet(" + list + ", union_by_name = true)"
		types, err := r.describe(ctx, from)
		return from, types, err
	}
	defs := make([]string, len(r.cols))
	for i, c := range r.cols {
		defs[i] = quoteString(c.Name) + ": 'VARCHAR'"
	}
	return fmt.Sprintf(`read_csv(%s, header = false, auto_detect = false, delim = ',', quote = '"', escape = '"', `+
		`new_line = '\n', allow_quoted_nulls = false, compression = 'auto', columns = {%s})`,
		list, strings.Join(defs, ", ")), nil, nil
}

func (r *run) emptySource() string {
	defs := make([]string, len(r.cols))
	for i, c := range r.cols {
		defs[i] = "CAST(NULL AS VARCHAR) AS " + quoteIdent(c.Name)
	}
	return "(SELECT " + strings.Join(defs, ", ") + " LIMIT 0)"
}

// describe returns the column types of a table expression.
func (r *run) describe(ctx context.Context, from string) (map[string]string, error) {
	db, err := r.duck(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+from+")")
	if err != nil {
		return nil, fmt.Errorf("source %s: read the export of %s: %w", r.c.name, r.id, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		out[name] = typ
	}
	for _, c := range r.cols {
		if _, ok := out[c.Name]; !ok && rows.Err() == nil {
			return nil, fmt.Errorf("source %s: the Parquet export of %s has no column %s", r.c.name, r.id, c.Name)
		}
	}
	return out, rows.Err()
}

// typed selects the table's columns from a source, each cast to its type;
// an empty string is NULL for every type but VARCHAR.
func (r *run) typed(from string, types map[string]string) string {
	sel := make([]string, len(r.cols))
	for i, c := range r.cols {
		id := quoteIdent(c.Name)
		src := "VARCHAR"
		if types != nil {
			src = types[c.Name]
		}
		switch {
		case c.Type == src:
			sel[i] = id
		case src == "VARCHAR":
			sel[i] = "CAST(NULLIF(" + id + ", '') AS " + c.Type + ") AS " + id
		default:
			sel[i] = "CAST(" + id + " AS " + c.Type + ") AS " + id
		}
	}
	return "SELECT " + strings.Join(sel, ", ") + " FROM " + from
}

// diagnose explains a failed read of an export: the first value that
// does not cast to its column's type (or, for partitionBy, to a date) is
// an InputError naming the table, column and value; anything else is
// returned wrapped.
func (r *run) diagnose(ctx context.Context, from string, types map[string]string, partitionBy string, failure error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("source %s: extract %s: %w", r.c.name, r.spec.ID, context.Cause(ctx))
	}
	wrapped := fmt.Errorf("source %s: read the export of %s: %w", r.c.name, r.id, failure)
	db, err := r.duck(ctx)
	if err != nil {
		return wrapped
	}
	for _, c := range r.cols {
		want, as := c.Type, c.Type
		if c.Name == partitionBy && c.Type == "VARCHAR" {
			want, as = "TIMESTAMP", "a date (it is the partition_by column)"
		}
		if want == "VARCHAR" || (types != nil && types[c.Name] != "VARCHAR") {
			continue
		}
		id := quoteIdent(c.Name)
		var v string
		err := db.QueryRowContext(ctx, "SELECT "+id+" FROM "+from+" WHERE NULLIF("+id+", '') IS NOT NULL AND TRY_CAST("+
			id+" AS "+want+") IS NULL LIMIT 1").Scan(&v)
		if err == nil {
			return &connectors.InputError{Msg: fmt.Sprintf("Keboola table %s, column %s: the value %q cannot be read as %s",
				r.id, c.Name, truncate(v, 80), as)}
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return wrapped
		}
	}
	return wrapped
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 { // keep UTF-8 whole
		n--
	}
	return s[:n] + "…"
}

// Operators and data types of Keboola's whereFilters.
var (
	filterOperators = []string{"eq", "ne", "gt", "ge", "lt", "le"}
	filterDataTypes = []string{"INTEGER", "DOUBLE", "BIGINT", "REAL", "DECIMAL"}
)

// whereFilters checks the spec's filters against the table and returns
// them for the export, date placeholders ({{today}}, {{last_week}}, ...,
// as the Python connector had them) resolved.
func (c *Connector) whereFilters(spec connectors.TableSpec, cols []column) ([]whereFilter, error) {
	var out []whereFilter
	for i, f := range spec.WhereFilters {
		bad := func(format string, args ...any) error {
			return &connectors.InputError{Msg: fmt.Sprintf("table %s: where_filters[%d]: ", spec.ID, i) + fmt.Sprintf(format, args...)}
		}
		op := strings.ToLower(cmpOr(f.Operator, "eq"))
		dt := strings.ToUpper(f.DataType)
		switch {
		case !slices.ContainsFunc(cols, func(c column) bool { return c.Name == f.Column }):
			return nil, bad("%q is not a column of the table", f.Column)
		case !slices.Contains(filterOperators, op):
			return nil, bad("operator %q is not one of %s", f.Operator, strings.Join(filterOperators, ", "))
		case len(f.Values) == 0:
			return nil, bad("no values")
		case len(f.Values) > 1 && op != "eq" && op != "ne":
			return nil, bad("operator %s takes one value, not %d (only eq and ne take several)", op, len(f.Values))
		case dt != "" && !slices.Contains(filterDataTypes, dt):
			return nil, bad("data_type %q is not one of %s", f.DataType, strings.Join(filterDataTypes, ", "))
		}
		vals := make([]string, len(f.Values))
		for j, v := range f.Values {
			var err error
			if vals[j], err = resolvePlaceholders(v, c.now()); err != nil {
				return nil, bad("%v", err)
			}
		}
		out = append(out, whereFilter{Column: f.Column, Operator: op, Values: vals, DataType: dt})
	}
	return out, nil
}

// resolvePlaceholders replaces the date placeholders of a filter value
// with dates (YYYY-MM-DD, UTC) relative to now.
func resolvePlaceholders(v string, now time.Time) (string, error) {
	if !strings.Contains(v, "{{") {
		return v, nil
	}
	today := now.UTC()
	days := func(n int) string { return today.AddDate(0, 0, -n).Format(time.DateOnly) }
	m := today.AddDate(0, 0, 1-today.Day()).AddDate(0, -3, 0)
	out := strings.NewReplacer(
		"{{today}}", days(0), "{{last_week}}", days(7), "{{last_month}}", days(30), "{{last_2_months}}", days(60),
		"{{last_3_months}}", days(90), "{{last_6_months}}", days(180), "{{last_year}}", days(365),
		"{{last_2_years}}", days(730), "{{start_of_3_months_ago}}", m.Format(time.DateOnly),
	).Replace(v)
	if i := strings.Index(out, "{{"); i >= 0 {
		end := strings.Index(out[i:], "}}")
		if end < 0 {
			end = len(out) - i - 2
		}
		return "", fmt.Errorf("unknown placeholder %s", out[i:i+end+2])
	}
	return out, nil
}

func quoteIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
