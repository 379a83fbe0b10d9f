package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/agnesdata/agnes/server/internal/engine/zzold"
)

type oldRows struct {
	cols []zzold.Column
	rows [][]any
}

func (c *oldRows) Columns(cols []zzold.Column) error { c.cols = cols; return nil }
func (c *oldRows) Rows(rows [][]any) error          { c.rows = append(c.rows, rows...); return nil }

type arrowKeep struct {
	schema *arrow.Schema
	recs   []arrow.RecordBatch
}

func (a *arrowKeep) Schema(s *arrow.Schema) error { a.schema = s; return nil }
func (a *arrowKeep) Batch(r arrow.RecordBatch) error {
	r.Retain()
	a.recs = append(a.recs, r)
	return nil
}

func TestZZCompare(t *testing.T) {
	f := newFixture(t)
	e := loaded(t, f, Options{})
	g, _ := e.acquire()
	path := g.path
	e.release(g)
	old := zzold.New(zzold.Options{})
	defer old.Close()
	if _, err := old.Load(context.Background(), path, 1); err != nil {
		t.Fatal(err)
	}
	queries := []string{
		`SELECT 1::TINYINT a, 2::UTINYINT b, 3::HUGEINT c, 4::UHUGEINT d, 1.5::DECIMAL(4,1) e, -1.5::DECIMAL(30,2) f,
	 'ab'::VARCHAR g, 'x'::BLOB h, '7de94fb2-b25b-4edd-b6c0-e76a0d0806f3'::UUID i, DATE '2024-01-02' j, TIME '12:34:56.789' k,
	 TIMESTAMP '2024-01-02 03:04:05.123456' m, TIMESTAMPTZ '2024-01-02 03:04:05+01' n,
	 TIMESTAMP_NS '2024-01-02 03:04:05.123456789' o, TIMESTAMP_S '2024-01-02 03:04:05' p, TIMESTAMP_MS '2024-01-02 03:04:05.123' q,
	 INTERVAL '1 month 2 days 3 seconds' r, '101'::BIT s, 12345678901234567890123456789::BIGNUM tt, -12345678901234567890123456789::BIGNUM tt2, 'a'::ENUM('a','b') u,
	 [1,2] v, {'x': 1, 'y': 'z'} w, MAP {'k': 1} x, [1,2,3]::INTEGER[3] y, union_value(num := 2)::UNION(num INTEGER, str VARCHAR) z,
	 '{"a":1}'::JSON aa, NULL ab, 1.5::FLOAT ac, 2.5::DOUBLE ad, true ae, [NULL, 1] af, {'a': NULL} ag, NULL::INTEGER[] ah,
	 [{'q': [1]}] ai, MAP {1: [2]} aj, -170141183460469231731687303715884105727::HUGEINT ak, 340282366920938463463374607431768211455::UHUGEINT al,
	 12345678901234567.123::DECIMAL(38,3) am, 'infinity'::DOUBLE an, 1::USMALLINT ao, 1::UINTEGER ap, 1::UBIGINT aq, 1::SMALLINT ar, 1::INTEGER at`,
		"DESCRIBE orders", "SUMMARIZE orders", "SHOW TABLES", "FROM orders LIMIT 3", "VALUES (1, 'a')", "WITH t AS (SELECT 1 x) SELECT * FROM t",
		"SELECT 1 UNION ALL SELECT 2", "(SELECT 1)", "TABLE orders LIMIT 2", "SELECT * FROM customers ORDER BY id",
		"SELECT * FROM orders WHERE id < 0", "SELECT 1;", "  SELECT 2 ; ", "SELECT 1 -- c", "/* x */ SELECT 3",
		"SHOW orders", "PIVOT (SELECT 1 a, 'x' b) ON b USING sum(a)", "FROM duckdb_settings() LIMIT 1",
		"SELECT ''", "", ";", "SELECT 1/0", "SELECT error('boom /tmp/x')", "SELECT * FROM nope",
		"SELECT [1,2][5]", "SELECT 'x'::INTEGER", "FROM range(3)",
		"SELECT TIMETZ '12:34:56+02' l", "SELECT 'POINT(1 2)'::GEOMETRY",
	}
	for _, q := range queries {
		var na, oa arrowKeep
		_, nerr0 := e.RunArrow(context.Background(), q, RunOptions{}, &na)
		_, oerr0 := old.RunArrow(context.Background(), q, zzold.RunOptions{}, &oa)
		if (nerr0 == nil) != (oerr0 == nil) {
			t.Errorf("arrow %q: %v / %v", q, nerr0, oerr0)
		} else if nerr0 == nil {
			if !na.schema.Equal(oa.schema) {
				t.Errorf("arrow %q: schema\n%v\n%v", q, na.schema, oa.schema)
			}
			if len(na.recs) != len(oa.recs) {
				t.Errorf("arrow %q: %d / %d batches", q, len(na.recs), len(oa.recs))
			} else {
				for i := range na.recs {
					if !array.RecordEqual(na.recs[i], oa.recs[i]) {
						t.Errorf("arrow %q: batch %d differs", q, i)
					}
				}
			}
		}
		var nr collectRows
		_, nerr := e.RunRows(context.Background(), q, RunOptions{}, &nr)
		var or oldRows
		_, oerr := old.RunRows(context.Background(), q, zzold.RunOptions{}, &or)
		label := q
		if len(label) > 40 {
			label = label[:40]
		}
		if (nerr == nil) != (oerr == nil) || errors.Is(nerr, ErrInvalidQuery) != errors.Is(oerr, zzold.ErrInvalidQuery) {
			t.Errorf("%q: errors differ: new %v / old %v", label, nerr, oerr)
			continue
		}
		if nerr != nil {
			if nerr.Error() != oerr.Error() {
				t.Logf("%q: messages differ:\n new %v\n old %v", label, nerr, oerr)
			}
			continue
		}
		if len(nr.cols) != len(or.cols) {
			t.Errorf("%q: cols %v / %v", label, nr.cols, or.cols)
			continue
		}
		for i := range nr.cols {
			if nr.cols[i].Name != or.cols[i].Name || nr.cols[i].Type != or.cols[i].Type {
				t.Errorf("%q: col %d: %v / %v", label, i, nr.cols[i], or.cols[i])
			}
		}
		if len(nr.rows) != len(or.rows) {
			t.Errorf("%q: %d rows / %d", label, len(nr.rows), len(or.rows))
			continue
		}
		for r := range nr.rows {
			for c := range nr.rows[r] {
				if !reflect.DeepEqual(nr.rows[r][c], or.rows[r][c]) && fmt.Sprintf("%T %v", nr.rows[r][c], nr.rows[r][c]) != fmt.Sprintf("%T %v", or.rows[r][c], or.rows[r][c]) {
					t.Errorf("%q: row %d col %s: new %T %s / old %T %s", label, r, nr.cols[c].Name, nr.rows[r][c], fmt.Sprint(nr.rows[r][c]), or.rows[r][c], fmt.Sprint(or.rows[r][c]))
				}
			}
		}
	}
}
