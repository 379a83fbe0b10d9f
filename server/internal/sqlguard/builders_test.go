package sqlguard_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/server/internal/sqlguard"
)

// Builders with a literal size over the limit are refused before anything runs.
func TestBuildersWithLiteralSizesAreChecked(t *testing.T) {
	c := sqlguard.New(openDuckDB(t), sqlguard.Limits{BuilderSize: 1000})
	cat := newCatalog()
	refused := map[string]string{
		"SELECT length(list_resize([1], 100000000))":                                   "list_resize would build 100000000 elements, over the limit of 1000",
		"SELECT array_resize([1], 1e8)":                                                "over the limit of 1000",
		"SELECT length(repeat('ab', 600))":                                             "repeat would build 1200",
		"SELECT lpad('x', 5000, ' ')":                                                  "lpad would build 5000 characters",
		"SELECT rpad('x', 1001, '.')":                                                  "rpad would build 1001",
		"SELECT range(50000000)":                                                       "range would build 50000000 elements",
		"SELECT generate_series(1, 1e9, 2)":                                            "generate_series would build 500000000 elements",
		"SELECT generate_series(DATE '2000-01-01', DATE '2100-01-01', INTERVAL 1 DAY)": "over the limit of 1000",
		"SELECT generate_series(TIMESTAMP '2024-01-01', TIMESTAMP '2024-02-01', INTERVAL '1 minute')": "over the limit",
		"SELECT bar(1, 0, 10, 100000)":                       "bar would build 100000 characters",
		"SELECT printf('%0100000000d', 1)":                   "width or precision of 0100000000",
		"SELECT format('{:>100000000}', 'x')":                "width or precision of 100000000",
		"SELECT printf('%*d', 100000000, 1)":                 "widths and precisions must be written",
		"SELECT printf(customer_id::VARCHAR, 1) FROM orders": "format string must be a constant",
		"SELECT repeat(repeat('x', 10), 10)":                 "may not take the result of another",
		"SELECT list_resize([1], 10, [1, 2, 3])":             "argument 3 must be a constant scalar value",
		"SELECT range(customer_id) FROM orders":              "needs constant bounds",
	}
	for q, want := range refused {
		_, err := c.Check(t.Context(), q, cat)
		var rej *sqlguard.Error
		if assert.ErrorAs(t, err, &rej, q) {
			assert.Contains(t, rej.Message, want, q)
		}
	}
	for _, q := range []string{
		"SELECT list_resize([1], 10)", "SELECT repeat('ab', 500)", "SELECT lpad('x', 1000, ' ')",
		"SELECT range(1000)", "SELECT generate_series(DATE '2024-01-01', DATE '2024-12-31', INTERVAL 1 DAY)",
		"SELECT printf('%10.2f', 1.5)", "SELECT bar(1, 0, 10)", "SELECT count(*) FROM range(100000000)",
		"SELECT * FROM orders, generate_series(1, customer_id) g(x)",
	} {
		checked, err := c.Check(t.Context(), q, cat)
		require.NoError(t, err, q)
		assert.Equal(t, q, checked.SQL, "a literal size within the limit runs as written")
	}
}

// A builder whose size is only known at run time is rewritten so that DuckDB
// checks the size before it builds: within the limit the result is unchanged,
// over it the query fails with the limit named, and nothing big is allocated.
func TestBuildersWithRuntimeSizesAreGuarded(t *testing.T) {
	db := openDuckDB(t)
	c := sqlguard.New(db, sqlguard.Limits{BuilderSize: 1000})
	cat := testCatalog{"t": "t"}
	_, err := db.Exec(`CREATE TABLE t AS SELECT * FROM (VALUES (1, 'ab', 3), (2, 'xyz', 900), (3, 'q', NULL)) v(id, s, n)`)
	require.NoError(t, err)
	run := func(q string) (string, error) {
		checked, err := c.Check(t.Context(), q, cat)
		require.NoError(t, err, q)
		require.NotEqual(t, q, checked.SQL, "guarded")
		var out string
		err = db.QueryRow(checked.SQL).Scan(&out)
		return out, err
	}
	got, err := run("SELECT string_agg(len(list_resize([0], n)), ',' ORDER BY id) FROM t")
	require.NoError(t, err)
	assert.Equal(t, "3,900,0", got, "the same answer as unguarded (a NULL size resizes to empty)")
	got, err = run("SELECT string_agg(repeat(s, n), ',' ORDER BY id) FROM t WHERE id = 1")
	require.NoError(t, err)
	assert.Equal(t, "ababab", got)
	got, err = run("SELECT string_agg(lpad(s, n, '.'), ',' ORDER BY id) FROM t WHERE id = 1")
	require.NoError(t, err)
	assert.Equal(t, ".ab", got)

	_, err = run("SELECT string_agg(repeat(s, n), ',') FROM t") // 3 × 900 = 2700 characters
	require.ErrorContains(t, err, "repeat would build 2700 elements or characters, over the limit of 1000")
	_, err = run("SELECT max(len(list_resize([1], (SELECT max(n) * 1000000 FROM t)))) FROM t")
	require.ErrorContains(t, err, "list_resize would build 900000000 elements, over the limit of 1000")
	// An alias survives the rewrite.
	checked, err := c.Check(t.Context(), "SELECT repeat(s, n) AS r FROM t WHERE id = 1", cat)
	require.NoError(t, err)
	rows, err := db.Query(checked.SQL + " ORDER BY r")
	require.NoError(t, err)
	cols, err := rows.Columns()
	require.NoError(t, err)
	require.NoError(t, rows.Close())
	assert.Equal(t, []string{"r"}, cols)
}

// A guarded call keeps the column names DuckDB gives the query as written:
// the guard's rewritten SQL never shows in the result.
func TestGuardedBuildersKeepColumnNames(t *testing.T) {
	db := openDuckDB(t)
	c := sqlguard.New(db, sqlguard.Limits{BuilderSize: 1000})
	cat := testCatalog{"t": "t"}
	_, err := db.Exec(`CREATE TABLE t AS SELECT * FROM (VALUES (1, 'ab', 3)) v(id, s, n)`)
	require.NoError(t, err)
	columns := func(q string) []string {
		rows, err := db.Query(q)
		require.NoError(t, err, q)
		defer rows.Close()
		cols, err := rows.Columns()
		require.NoError(t, err)
		return cols
	}
	for _, q := range []string{
		"SELECT id, repeat(s, n), sum(length(lpad(s, n, '.'))) OVER () FROM t",
		"SELECT * FROM (SELECT repeat(s, n), list_resize([1], n) FROM t)",
		"SELECT repeat(s, n) FROM t UNION ALL SELECT repeat(s, n + 1) FROM t",
		"WITH x AS (SELECT rpad(s, n, '-') FROM t) SELECT * FROM x",
	} {
		checked, err := c.Check(t.Context(), q, cat)
		require.NoError(t, err, q)
		require.NotEqual(t, q, checked.SQL, "guarded")
		assert.Equal(t, columns(q), columns(checked.SQL), q)
	}
}
