package demo_test

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/connectortest"
	"github.com/agnesdata/agnes/connectors/demo"
	"github.com/agnesdata/agnes/connectors/extract"
)

var byMonth = connectors.TableSpec{
	ID: "orders_by_month", Name: "Orders by month", SourceTable: "orders",
	Strategy: connectors.StrategyPartitioned, PartitionBy: "ordered_at", PartitionGranularity: "month",
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectors.Connector { return demo.New() },
		connectortest.Case{Spec: byMonth, Check: func(t *testing.T, db *sql.DB, tbl extract.Table) {
			var names []string
			for _, p := range tbl.Parts {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, demo.MonthParts()) {
				t.Errorf("parts = %v, want %v", names, demo.MonthParts())
			}
		}})
}

func TestDiscover(t *testing.T) {
	found, err := demo.New().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"customers": demo.Customers, "products": demo.Products, "orders": demo.Orders}
	if len(found) != len(want) {
		t.Fatalf("discovered %d tables", len(found))
	}
	for _, d := range found {
		if want[d.ID] != d.Rows || d.SourceTable != d.ID || d.Description == "" || len(d.Columns) < 5 {
			t.Errorf("discovered %+v", d)
		}
	}
}

// extractAll writes the three tables (orders also partitioned) into a
// fresh extract and returns it attached as the default catalog.
func extractAll(t *testing.T, dir string) (*sql.DB, map[string]extract.Table) {
	t.Helper()
	ctx := context.Background()
	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c := demo.New()
	out := map[string]extract.Table{}
	var tables []extract.Table
	for _, spec := range []connectors.TableSpec{{ID: "customers"}, {ID: "products"}, {ID: "orders"}, byMonth} {
		tb, err := c.Extract(ctx, spec, w)
		if err != nil {
			t.Fatal(err)
		}
		out[spec.ID] = tb
		tables = append(tables, tb)
	}
	if err := w.Update(ctx, tables...); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	for _, q := range []string{"ATTACH '" + filepath.Join(dir, extract.DBFile) + "' AS demo (READ_ONLY)", "USE demo"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return db, out
}

func TestSampleData(t *testing.T) {
	db, _ := extractAll(t, filepath.Join(t.TempDir(), "demo"))
	// Each query returns 0 when the property holds.
	for name, q := range map[string]string{
		"customers rows":         "SELECT count(*) - 500 FROM customers",
		"products rows":          "SELECT count(*) - 120 FROM products",
		"orders rows":            "SELECT count(*) - 5000 FROM orders",
		"unique ids":             "SELECT (SELECT count(*) - count(DISTINCT id) FROM customers) + (SELECT count(*) - count(DISTINCT id) FROM products) + (SELECT count(*) - count(DISTINCT id) FROM orders)",
		"unique emails":          "SELECT count(*) - count(DISTINCT email) FROM customers",
		"no nulls":               "SELECT count(*) FROM orders WHERE COLUMNS(*) IS NULL",
		"orders.customer_id fk":  "SELECT count(*) FROM orders o ANTI JOIN customers c ON c.id = o.customer_id",
		"orders.product_id fk":   "SELECT count(*) FROM orders o ANTI JOIN products p ON p.id = o.product_id",
		"price is the product's": "SELECT count(*) FROM orders o JOIN products p ON p.id = o.product_id WHERE o.unit_price <> p.unit_price",
		"total = qty * price":    "SELECT count(*) FROM orders WHERE total <> quantity * unit_price OR quantity NOT BETWEEN 1 AND 5",
		"ordered after signup":   "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.ordered_at < c.signup_date",
		"18 months":              "SELECT count(*) FROM orders WHERE ordered_at < TIMESTAMP '2024-10-01' OR ordered_at >= TIMESTAMP '2026-04-01'",
		"every month has orders": "SELECT 18 - count(DISTINCT date_trunc('month', ordered_at)) FROM orders",
		"prices":                 "SELECT count(*) FROM products WHERE unit_price NOT BETWEEN 0.99 AND 999.99",
		"statuses":               "SELECT count(*) FROM orders WHERE status NOT IN ('processing', 'shipped', 'delivered', 'cancelled', 'returned')",
		"partitioned = single":   "SELECT count(*) FROM (FROM orders EXCEPT ALL FROM orders_by_month)",
	} {
		var n int64
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Errorf("%s: %v", name, err)
		} else if n != 0 {
			t.Errorf("%s: %s gives %d, want 0", name, q, n)
		}
	}
	var types string
	if err := db.QueryRow("SELECT string_agg(column_type, ',' ORDER BY column_name) FROM (DESCRIBE products)").Scan(&types); err != nil {
		t.Fatal(err)
	}
	if types != "BOOLEAN,VARCHAR,INTEGER,VARCHAR,DECIMAL(10,2)" {
		t.Errorf("product column types = %s", types)
	}
}

// TestPartitionedOrders: one part per month, and the _parts rows in
// extract.duckdb carry each file's MD5.
func TestPartitionedOrders(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	db, tables := extractAll(t, dir)
	rows, err := db.Query("SELECT part, md5, size_bytes, rows FROM _parts WHERE table_name = 'orders_by_month' ORDER BY part")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var parts []string
	var total int64
	for rows.Next() {
		var part, sum string
		var size, n int64
		if err := rows.Scan(&part, &sum, &size, &n); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "data", "orders_by_month", part+".parquet"))
		if err != nil {
			t.Fatal(err)
		}
		if h := md5.Sum(b); hex.EncodeToString(h[:]) != sum || int64(len(b)) != size {
			t.Errorf("part %s: _parts says %s/%d, the file is %x/%d", part, sum, size, h, len(b))
		}
		parts = append(parts, part)
		total += n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(parts, demo.MonthParts()) || parts[0] != "2024-10" || parts[17] != "2026-03" {
		t.Errorf("parts = %v", parts)
	}
	if total != demo.Orders {
		t.Errorf("parts hold %d rows", total)
	}
	var metaMD5 string
	if err := db.QueryRow("SELECT md5 FROM _meta WHERE table_name = 'orders_by_month'").Scan(&metaMD5); err != nil {
		t.Fatal(err)
	}
	if metaMD5 != tables["orders_by_month"].MD5 || metaMD5 != extract.PartsMD5(tables["orders_by_month"].Parts) {
		t.Errorf("_meta md5 %s, want the parts' hash %s", metaMD5, tables["orders_by_month"].MD5)
	}
}

// TestDeterministic: two extractions into separate folders produce the
// same bytes for every file.
func TestDeterministic(t *testing.T) {
	_, a := extractAll(t, filepath.Join(t.TempDir(), "demo"))
	_, b := extractAll(t, filepath.Join(t.TempDir(), "demo"))
	for id, ta := range a {
		tb := b[id]
		if ta.MD5 != tb.MD5 || ta.SizeBytes != tb.SizeBytes || !slices.Equal(ta.Parts, tb.Parts) {
			t.Errorf("%s differs between runs: %s/%d vs %s/%d", id, ta.MD5, ta.SizeBytes, tb.MD5, tb.SizeBytes)
		}
	}
}

func TestExtractErrors(t *testing.T) {
	ctx := context.Background()
	w, err := extract.NewWriter(filepath.Join(t.TempDir(), "demo"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c := demo.New()
	var ie *connectors.InputError
	for _, spec := range []connectors.TableSpec{
		{ID: "customers", Strategy: connectors.StrategyPartitioned},
		{ID: "orders", Strategy: connectors.StrategyPartitioned, PartitionBy: "customer_id"},
		{ID: "orders", Strategy: connectors.StrategyPartitioned, PartitionGranularity: "day"},
		{ID: "bad-id", SourceTable: "orders"},
	} {
		if _, err := c.Extract(ctx, spec, w); !errors.As(err, &ie) {
			t.Errorf("Extract(%+v) = %v, want an InputError", spec, err)
		}
	}
	if _, err := c.Extract(ctx, connectors.TableSpec{ID: "x", SourceTable: "invoices"}, w); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("unknown source table: %v", err)
	}
}
