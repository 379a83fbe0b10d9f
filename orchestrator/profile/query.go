package profile

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// kind is how much of a column is profiled, by its type.
type kind uint8

const (
	kindOther   kind = iota // NULLs and distinct count only
	kindOrdered             // also min/max, top values, sample values
	kindNumeric             // also mean, stddev, histogram
)

var numericTypes = map[string]bool{
	"TINYINT": true, "SMALLINT": true, "INTEGER": true, "BIGINT": true, "HUGEINT": true,
	"UTINYINT": true, "USMALLINT": true, "UINTEGER": true, "UBIGINT": true, "UHUGEINT": true,
	"FLOAT": true, "DOUBLE": true,
}

var orderedTypes = map[string]bool{
	"BOOLEAN": true, "VARCHAR": true, "JSON": true, "UUID": true, "INTERVAL": true,
	"DATE": true, "TIME": true, "TIME_NS": true, "TIME WITH TIME ZONE": true,
	"TIMESTAMP": true, "TIMESTAMP_S": true, "TIMESTAMP_MS": true, "TIMESTAMP_NS": true,
	"TIMESTAMP WITH TIME ZONE": true,
}

func classify(typ string) kind {
	switch {
	case numericTypes[typ] || strings.HasPrefix(typ, "DECIMAL("):
		return kindNumeric
	case orderedTypes[typ] || strings.HasPrefix(typ, "ENUM("):
		return kindOrdered
	}
	return kindOther
}

// maxText caps every value sent back as text, so that a column of large
// documents does not turn into a large profile.
const maxText = 256

// text is expr as text of at most maxText characters.
func text(expr string) string {
	return "left(CAST(" + expr + " AS VARCHAR), " + strconv.Itoa(maxText) + ")"
}

// column is one column while it is being profiled.
type column struct {
	name, typ string
	kind      kind
	float     bool // FLOAT or DOUBLE: NaN and ±Inf are left out of the numbers

	// From the exact scan. lo and hi are min and max as DOUBLE, the
	// histogram's range.
	nonNull, distinct    int64
	min, max             sql.NullString
	mean, stddev, lo, hi sql.NullFloat64

	// From the (sampled) distribution query.
	top     []ValueCount
	bins    []Bin
	samples []string
}

// numbers restricts a numeric aggregate to finite values where needed.
func (c *column) numbers() string {
	if c.float {
		return " FILTER (WHERE isfinite(" + quoteIdent(c.name) + "))"
	}
	return ""
}

func (p *Profiler) profile(ctx context.Context, src string) (*Profile, error) {
	cols, err := p.describe(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	rows, err := p.exact(ctx, src, cols)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	prof := &Profile{RowCount: rows, Columns: make([]Column, len(cols))}
	if rows > 0 {
		if prof.SampledRows, err = p.distributions(ctx, src, cols, rows); err != nil {
			return nil, fmt.Errorf("distributions: %w", err)
		}
	}
	for i := range cols {
		prof.Columns[i] = cols[i].result(rows)
	}
	return prof, nil
}

// describe reads the column names and types; DuckDB reads only the
// files' footers for it.
func (p *Profiler) describe(ctx context.Context, src string) ([]column, error) {
	rows, err := p.db.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, err
		}
		c.kind = classify(c.typ)
		c.float = c.typ == "FLOAT" || c.typ == "DOUBLE"
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// exact computes the exact stats of all columns in one scan and returns
// the row count.
func (p *Profiler) exact(ctx context.Context, src string, cols []column) (int64, error) {
	var rows int64
	exprs := []string{"count(*)"}
	dest := []any{&rows}
	add := func(expr string, d any) {
		exprs = append(exprs, expr)
		dest = append(dest, d)
	}
	for i := range cols {
		c := &cols[i]
		q := quoteIdent(c.name)
		add("count("+q+")", &c.nonNull)
		// The sketch can overshoot; more distinct values than values is surely wrong.
		add("least(approx_count_distinct("+q+"), count("+q+"))", &c.distinct)
		if c.kind >= kindOrdered {
			add(text("min("+q+")"), &c.min)
			add(text("max("+q+")"), &c.max)
		}
		if c.kind == kindNumeric {
			f := c.numbers()
			add("CAST(avg("+q+")"+f+" AS DOUBLE)", &c.mean)
			add("CAST(stddev_samp("+q+")"+f+" AS DOUBLE)", &c.stddev)
			add("CAST(min("+q+")"+f+" AS DOUBLE)", &c.lo)
			add("CAST(max("+q+")"+f+" AS DOUBLE)", &c.hi)
		}
	}
	err := p.db.QueryRowContext(ctx, "SELECT "+strings.Join(exprs, ", ")+" FROM "+src).Scan(dest...)
	return rows, err
}

// What a row of the distribution query is.
const (
	rowSize = iota
	rowTop
	rowSample
	rowBin
)

// distributions fills top values, sample values and histograms of all
// columns with one query over a sample (or all rows) materialized once,
// and returns the number of rows it counted over; 0 if no column needs
// it. The query's rows are (column index, rowSize|rowTop|rowSample|rowBin,
// value, count, position or bin).
func (p *Profiler) distributions(ctx context.Context, src string, cols []column, rows int64) (int64, error) {
	var proj, parts []string
	var args []any
	for i := range cols {
		c := &cols[i]
		if c.kind == kindOther || c.nonNull == 0 {
			continue
		}
		v := "c" + strconv.Itoa(i) // the sample's name for the column
		proj = append(proj, quoteIdent(c.name)+" AS "+v)
		head := "SELECT " + strconv.Itoa(i) + " AS col, "
		values := " FROM s WHERE " + v + " IS NOT NULL"
		// Ranks are computed over the few rows kept: UNION ALL keeps no order.
		parts = append(parts,
			head+strconv.Itoa(rowTop)+", "+text(v)+", n, row_number() OVER (ORDER BY n DESC, "+v+")"+
				" FROM (SELECT "+v+", count(*) AS n"+values+" GROUP BY "+v+" ORDER BY n DESC, "+v+
				" LIMIT "+strconv.Itoa(p.opts.TopK)+")",
			head+strconv.Itoa(rowSample)+", "+text(v)+", NULL, row_number() OVER (ORDER BY hash("+v+"), "+v+")"+
				" FROM (SELECT "+v+values+" GROUP BY "+v+" ORDER BY hash("+v+"), "+v+
				" LIMIT "+strconv.Itoa(sampleValues)+")")
		if c.kind == kindNumeric && c.lo.Valid && c.hi.Valid {
			lo, hi, n := c.lo.Float64, c.hi.Float64, p.opts.Bins
			width := (hi - lo) / float64(n)
			if !(width > 0) || math.IsInf(width, 0) {
				n, width = 1, 0 // all values equal, or a range too wide for a float64
			}
			c.bins = bins(lo, hi, width, n)
			bin := "0"
			if n > 1 {
				bin = "least(greatest(CAST(floor((CAST(" + v + " AS DOUBLE) - ?) / ?) AS BIGINT), 0), " + strconv.Itoa(n-1) + ")"
				args = append(args, lo, width)
			}
			if c.float {
				values += " AND isfinite(" + v + ")"
			}
			parts = append(parts, head+strconv.Itoa(rowBin)+", NULL, count(*), bin"+
				" FROM (SELECT "+bin+" AS bin"+values+") GROUP BY bin")
		}
	}
	if len(proj) == 0 {
		return 0, nil
	}
	from := src
	if rows > p.opts.SampleRows {
		// Bernoulli keeps each row with the same chance, like a reservoir,
		// at a fifth of the CPU; the exact row count gives the rate.
		pct := 100 * float64(p.opts.SampleRows) / float64(rows)
		from += " USING SAMPLE " + strconv.FormatFloat(pct, 'f', -1, 64) + "% (bernoulli)"
	}
	parts = append(parts, "SELECT -1, "+strconv.Itoa(rowSize)+", NULL, count(*), 0 FROM s")
	query := "WITH s AS MATERIALIZED (SELECT " + strings.Join(proj, ", ") + " FROM " + from + ")\n(" +
		strings.Join(parts, ")\nUNION ALL (") + ")\nORDER BY 1, 2, 5"
	res, err := p.db.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer res.Close()
	var size int64
	for res.Next() {
		var (
			col, what int
			val       sql.NullString
			n         sql.NullInt64
			pos       int64
		)
		if err := res.Scan(&col, &what, &val, &n, &pos); err != nil {
			return 0, err
		}
		if what == rowSize {
			size = n.Int64
			continue
		}
		c := &cols[col]
		switch what {
		case rowTop:
			c.top = append(c.top, ValueCount{Value: val.String, Count: n.Int64})
		case rowSample:
			c.samples = append(c.samples, val.String)
		case rowBin:
			if pos < 0 || pos >= int64(len(c.bins)) {
				return 0, fmt.Errorf("column %s: bin %d out of range", c.name, pos)
			}
			c.bins[pos].Count = n.Int64
		}
	}
	return size, res.Err()
}

// bins returns n empty bins of width from lo, the last one ending at hi.
func bins(lo, hi, width float64, n int) []Bin {
	out := make([]Bin, n)
	for i := range out {
		out[i] = Bin{Lower: lo + float64(i)*width, Upper: lo + float64(i+1)*width}
	}
	out[n-1].Upper = hi
	return out
}

// result is the exported form of c in a table of rows rows.
func (c *column) result(rows int64) Column {
	out := Column{
		Name:          c.name,
		Type:          c.typ,
		DistinctCount: c.distinct,
		Min:           c.min.String,
		Max:           c.max.String,
		TopValues:     c.top,
		Histogram:     c.bins,
		SampleValues:  c.samples,
	}
	if rows > 0 {
		out.NullPct = 100 * float64(rows-c.nonNull) / float64(rows)
	}
	if c.mean.Valid {
		out.Mean = &c.mean.Float64
	}
	if c.stddev.Valid {
		out.Stddev = &c.stddev.Float64
	}
	return out
}
