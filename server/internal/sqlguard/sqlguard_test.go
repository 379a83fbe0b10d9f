package sqlguard_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/server/internal/sqlguard"
)

// testCatalog maps ASCII-folded names to canonical view names, matching names
// the way DuckDB does.
type testCatalog map[string]string

func (c testCatalog) View(name string) (string, bool) {
	v, ok := c[foldASCII(name)]
	return v, ok
}

func foldASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

func newCatalog() testCatalog {
	c := testCatalog{}
	for _, v := range corpusViews {
		c[foldASCII(v)] = v
	}
	return c
}

// openDuckDB opens a fresh in-memory DuckDB, closed when tb ends.
func openDuckDB(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sql.Open("duckdb", "")
	require.NoError(tb, err)
	tb.Cleanup(func() { db.Close() })
	return db
}

func newChecker(tb testing.TB) *sqlguard.Checker {
	return sqlguard.New(openDuckDB(tb), sqlguard.Limits{})
}

func TestAttacksRejected(t *testing.T) {
	require.GreaterOrEqual(t, len(attacks), 70)
	c, cat := newChecker(t), newCatalog()
	for _, tc := range attacks {
		_, err := c.Check(t.Context(), tc.query, cat)
		var rej *sqlguard.Error
		if !assert.ErrorAs(t, err, &rej, "query %q must be rejected", tc.query) {
			continue
		}
		assert.Equal(t, tc.reason, rej.Reason, "query %q: %s", tc.query, rej.Message)
		assert.NotEmpty(t, rej.Message)
	}
}

func TestLegitimateAccepted(t *testing.T) {
	require.GreaterOrEqual(t, len(accepted), 70)
	c, cat := newChecker(t), newCatalog()
	for _, tc := range accepted {
		got, err := c.Check(t.Context(), tc.query, cat)
		if !assert.NoError(t, err, "query %q must be accepted", tc.query) {
			continue
		}
		want := tc.tables
		if want == nil {
			want = []string{}
		}
		assert.Equal(t, want, got.Tables, "query %q", tc.query)
	}
}

// TestCorpusRuns proves every accepted corpus query is real SQL: it runs
// each one on DuckDB over tables named like the catalog's views.
func TestCorpusRuns(t *testing.T) {
	db := openDuckDB(t)
	for _, stmt := range []string{
		`CREATE TABLE orders (id INTEGER, customer_id INTEGER, status VARCHAR, amount DECIMAL(10, 2), region VARCHAR,
			created_at TIMESTAMP, tags VARCHAR[], meta STRUCT(channel VARCHAR, score DOUBLE))`,
		`INSERT INTO orders VALUES
			(1, 1, 'new', 120.50, 'EU', '2024-01-05 10:00', ['a', 'b'], {'channel': 'web', 'score': 0.5}),
			(2, 1, 'paid', 80, NULL, '2024-02-01 12:00', ['x'], {'channel': 'app', 'score': 0.9}),
			(3, 2, 'paid', 300, 'US', '2024-03-10 08:30', [], {'channel': 'web', 'score': 0.1})`,
		`CREATE TABLE customers (id INTEGER, name VARCHAR, email VARCHAR, country VARCHAR, signup_date DATE)`,
		`INSERT INTO customers VALUES (1, 'Alice', 'alice@example.com', 'CZ', '2023-05-01'),
			(2, 'Bob', 'bob@example.org', 'US', '2023-06-01'), (3, 'Carol', 'carol@example.com', 'DE', '2024-01-01')`,
		`CREATE TABLE products (id INTEGER, name VARCHAR, category VARCHAR, price DOUBLE)`,
		`INSERT INTO products VALUES (1, 'Widget', 'tools', 9.99), (2, 'Gadget', 'toys', 24.5)`,
		`CREATE TABLE order_items (order_id INTEGER, product_id INTEGER, quantity INTEGER, unit_price DOUBLE)`,
		`INSERT INTO order_items VALUES (1, 1, 2, 9.99), (3, 2, 1, 24.5)`,
		`CREATE TABLE events (id INTEGER, user_id INTEGER, kind VARCHAR, ts TIMESTAMP, props MAP(VARCHAR, VARCHAR))`,
		`INSERT INTO events VALUES (1, 1, 'click', '2024-01-06 09:00', MAP {'k': 'v'}), (2, 2, 'view', '2024-03-11 10:00', MAP {'k': 'w'})`,
		`CREATE TABLE last_update (table_name VARCHAR, "last_update FROM" TIMESTAMP, updated_at TIMESTAMP)`,
		`INSERT INTO last_update VALUES ('orders', '2024-03-10 09:00', '2024-03-10 09:05')`,
		`CREATE TABLE "Orders_2024" (id INTEGER, amount DOUBLE, created_at TIMESTAMP)`,
		`INSERT INTO "Orders_2024" VALUES (1, 120.5, '2024-01-05 10:00')`,
	} {
		_, err := db.Exec(stmt)
		require.NoError(t, err, stmt)
	}
	for _, tc := range accepted {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		rows, err := db.QueryContext(ctx, tc.query)
		if assert.NoError(t, err, tc.query) {
			for rows.Next() {
			}
			assert.NoError(t, rows.Err(), tc.query)
			rows.Close()
		}
		cancel()
	}
}

func TestErrorMessages(t *testing.T) {
	c, cat := newChecker(t), newCatalog()
	for query, want := range map[string]string{
		"SELECT 1; DROP TABLE x":           "only a single SELECT statement is allowed",
		"SELECT 1; SELECT 2":               "only a single SELECT statement is allowed",
		"SELECT * FROM orders2":            "unknown table 'orders2'",
		"SELECT read_text('/etc/passwd')":  "function read_text is not allowed in queries",
		"FROM read_csv('x.csv')":           "table function read_csv is not allowed in queries (only range, generate_series and unnest are)",
		"SELECT * FROM 'data/x.parquet'":   "reading files is not allowed ('data/x.parquet'); query a registered view instead",
		"SELECT * FROM shop.main._meta":    "references to other databases or schemas are not allowed (shop.main._meta)",
		"SELECT * FORM orders":             `syntax error: syntax error at or near "orders"`,
		"DESCRIBE orders":                  "DESCRIBE, SUMMARIZE and SHOW are not allowed; query the view instead",
		"SELECT system.main.lower('x')":    "functions may not be qualified with another database or schema (system.main.lower); to call a function on a column write lower(column)",
		"SELECT * FROM orders WHERE id=$1": "query parameters ($1, ?, $name) are not supported; write the values into the query",
	} {
		_, err := c.Check(t.Context(), query, cat)
		assert.EqualError(t, err, want, query)
	}
}

func TestReasonString(t *testing.T) {
	assert.Equal(t, "ForbiddenFunction", sqlguard.ForbiddenFunction.String())
	assert.Equal(t, "Reason(0)", sqlguard.Reason(0).String())
}

// Internal failures must not look like rejections.
func TestInternalErrors(t *testing.T) {
	c, cat := newChecker(t), newCatalog()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Check(ctx, "SELECT 1", cat)
	require.Error(t, err)
	var rej *sqlguard.Error
	assert.False(t, errors.As(err, &rej))
	assert.ErrorIs(t, err, context.Canceled)

	db := openDuckDB(t)
	require.NoError(t, db.Close())
	_, err = sqlguard.New(db, sqlguard.Limits{}).Check(t.Context(), "SELECT 1", cat)
	require.Error(t, err)
	assert.False(t, errors.As(err, &rej))
}

func TestConcurrentUse(t *testing.T) {
	c, cat := newChecker(t), newCatalog()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				tc := accepted[(i*20+j)%len(accepted)]
				got, err := c.Check(t.Context(), tc.query, cat)
				if assert.NoError(t, err, tc.query) {
					assert.Equal(t, len(tc.tables), len(got.Tables), tc.query)
				}
			}
		})
	}
	wg.Wait()
}

// The checker reports views for RBAC even when a query mixes CTEs and views
// of the same name at different levels.
func TestTablesForRBAC(t *testing.T) {
	c, cat := newChecker(t), newCatalog()
	got, err := c.Check(t.Context(), `
		WITH customers AS (SELECT * FROM products)
		SELECT * FROM customers, (SELECT * FROM main.customers) c2
		WHERE EXISTS (WITH x AS (FROM EVENTS) SELECT 1 FROM x, Orders_2024)`, cat)
	require.NoError(t, err)
	assert.Equal(t, []string{"Orders_2024", "customers", "events", "products"}, got.Tables)
	assert.True(t, slices.IsSorted(got.Tables))
}

const benchQuery = `SELECT p.category, date_trunc('month', o.created_at) AS month,
	sum(oi.quantity * oi.unit_price) AS revenue, count(DISTINCT o.customer_id) AS buyers
FROM orders o
JOIN order_items oi ON oi.order_id = o.id
JOIN products p ON p.id = oi.product_id
WHERE o.status = 'paid' AND o.created_at >= DATE '2024-01-01'
GROUP BY ALL
ORDER BY revenue DESC
LIMIT 20`

// BenchmarkCheck measures a typical three-table join, parse included.
func BenchmarkCheck(b *testing.B) {
	c, cat := newChecker(b), newCatalog()
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Check(ctx, benchQuery, cat); err != nil {
			b.Fatal(err)
		}
	}
}
