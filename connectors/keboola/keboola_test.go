package keboola_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/connectortest"
	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/keboola"
	"github.com/agnesdata/agnes/connectors/keboola/kbcfake"
)

// day is the fake's "now" in most tests; rows change before it.
var day = time.Date(2026, 5, 19, 10, 56, 57, 0, time.UTC)

// tricky values: the CSV dialect's traps and non-ASCII.
var tricky = []string{
	"plain", "comma, inside", `quote "inside"`, "new\nline", "žluťoučký kůň 🐎", `back\slash`, "", `""`, "trailing space ",
}

// ordersTable is an untyped table typed through column metadata, with
// rows changed on different days.
func ordersTable() kbcfake.Table {
	t := kbcfake.Table{
		ID: "in.c-crm.orders", Columns: []string{"order_id", "status", "amount", "updated_at", "note"},
		PrimaryKey: []string{"order_id"}, Description: "Orders from the CRM", Created: day.AddDate(0, 0, -10),
		ColumnMetadata: map[string][]kbcfake.Metadata{
			"order_id":   {kbcfake.BaseType("user", "INTEGER")},
			"amount":     {kbcfake.BaseType("keboola.snowflake-transformation", "NUMERIC"), {Key: "KBC.datatype.length", Value: "12,2", Provider: "keboola.snowflake-transformation"}},
			"updated_at": {kbcfake.BaseType("ai-metadata-enrichment", "TIMESTAMP")},
			"status":     {{Key: "KBC.description", Value: "Order lifecycle state", Provider: "user"}},
		},
	}
	statuses := []string{"open", "pending", "shipped"}
	for i, note := range tricky {
		t.Rows = append(t.Rows, kbcfake.Row{
			Values:  []string{itoa(i + 1), statuses[i%3], itoa(100+i*25) + ".50", day.AddDate(0, 0, -i).Format(time.DateTime), note},
			Changed: day.AddDate(0, 0, -i),
		})
	}
	return t
}

// customersTable is a typed table with NULLs.
func customersTable() kbcfake.Table {
	return kbcfake.Table{
		ID: "in.c-crm.customers", Columns: []string{"id", "name", "signup", "active", "score"}, PrimaryKey: []string{"id"},
		Definition: []kbcfake.ColumnDefinition{
			{Name: "id", Type: "NUMBER", Length: "38,0", BaseType: "NUMERIC"},
			{Name: "name", Type: "VARCHAR", BaseType: "STRING", Nullable: true},
			{Name: "signup", Type: "DATE", BaseType: "DATE", Nullable: true},
			{Name: "active", Type: "BOOLEAN", BaseType: "BOOLEAN", Nullable: true},
			{Name: "score", Type: "FLOAT", BaseType: "FLOAT", Nullable: true},
		},
		Rows: []kbcfake.Row{
			{Values: []string{"1", "Ann", "2025-01-02", "true", "1.5"}, Changed: day.AddDate(0, 0, -3)},
			{Values: []string{"2", kbcfake.Null, kbcfake.Null, kbcfake.Null, kbcfake.Null}, Changed: day.AddDate(0, 0, -2)},
			{Values: []string{"3", "", "2026-02-28", "false", "-0.25"}, Changed: day.AddDate(0, 0, -1)},
		},
	}
}

func itoa(i int) string { return time.Duration(i).String()[:len(time.Duration(i).String())-2] }

// newFake starts a fake with the sample tables, its clock at day.
func newFake(t *testing.T) *kbcfake.Server {
	t.Helper()
	f := kbcfake.New()
	t.Cleanup(f.Close)
	f.SetNow(func() time.Time { return day })
	f.AddTable(ordersTable())
	f.AddTable(customersTable())
	f.AddTable(kbcfake.Table{ID: "out.c-finance.empty", Columns: []string{"a", "b"}, PrimaryKey: []string{"a"}})
	return f
}

// fastSettings polls and retries without noticeable waits.
func fastSettings(f *kbcfake.Server) keboola.Settings {
	return keboola.Settings{StackURL: f.URL(), Token: connectors.NewSecret(f.Token()),
		PollInterval: time.Millisecond, MaxPollInterval: 2 * time.Millisecond, RetryWait: time.Millisecond}
}

func connect(t *testing.T, f *kbcfake.Server, opts ...keboola.Option) *keboola.Connector {
	t.Helper()
	return connectWith(t, fastSettings(f), f, opts...)
}

func connectWith(t *testing.T, s keboola.Settings, f *kbcfake.Server, opts ...keboola.Option) *keboola.Connector {
	t.Helper()
	opts = append([]keboola.Option{keboola.WithGCSEndpoint(f.GCSEndpoint()), keboola.WithS3Endpoint(f.S3Endpoint()),
		keboola.WithClock(func() time.Time { return day })}, opts...)
	c, err := keboola.New("kbc_sales", s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	f := newFake(t)
	connectortest.Run(t, func(t *testing.T) connectors.Connector { return connect(t, f) },
		connectortest.Case{Spec: connectors.TableSpec{ID: "orders_incremental", Bucket: "in.c-crm", SourceTable: "orders",
			Strategy: connectors.StrategyIncremental, IncrementalWindowDays: 3}},
		connectortest.Case{Spec: connectors.TableSpec{ID: "orders_by_day", Bucket: "in.c-crm", SourceTable: "orders",
			Strategy: connectors.StrategyPartitioned, PartitionBy: "updated_at", PartitionGranularity: "day",
			IncrementalWindowDays: 30}, // the re-extract rewrites every part: all rows are in the window
			Check: func(t *testing.T, db *sql.DB, tbl extract.Table) {
				if len(tbl.Parts) != len(tricky) {
					t.Errorf("parts = %+v, want one per day", tbl.Parts)
				}
			}},
	)
}

// extractOne extracts spec into a fresh extract folder and commits it.
func extractOne(t *testing.T, c *keboola.Connector, spec connectors.TableSpec) (extract.Table, *extract.Writer) {
	t.Helper()
	w, err := extract.NewWriter(filepath.Join(t.TempDir(), "kbc_sales"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	tbl, err := c.Extract(context.Background(), spec, w)
	if err != nil {
		t.Fatalf("Extract(%s): %v", spec.ID, err)
	}
	if err := w.Update(context.Background(), tbl); err != nil {
		t.Fatal(err)
	}
	return tbl, w
}
