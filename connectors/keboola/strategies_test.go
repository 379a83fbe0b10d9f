package keboola_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/keboola"
	"github.com/agnesdata/agnes/connectors/keboola/kbcfake"
)

// TestTypes: typed tables follow their definition; untyped ones the
// column metadata by provider priority (user > ai-metadata-enrichment >
// keboola.snowflake-transformation, others ignored); NULL and ” stay
// apart; an alias takes its source's metadata.
func TestTypes(t *testing.T) {
	f := newFake(t)
	f.AddTable(kbcfake.Table{
		ID: "in.c-crm.priorities", Columns: []string{"user_wins", "ai_wins", "other_ignored", "by_type", "plain"},
		ColumnMetadata: map[string][]kbcfake.Metadata{
			"user_wins":     {kbcfake.BaseType("ai-metadata-enrichment", "INTEGER"), kbcfake.BaseType("user", "STRING")},
			"ai_wins":       {kbcfake.BaseType("keboola.snowflake-transformation", "STRING"), kbcfake.BaseType("ai-metadata-enrichment", "DATE")},
			"other_ignored": {kbcfake.BaseType("keboola.ex-db-mysql", "INTEGER")},
			"by_type":       {{Key: "KBC.datatype.type", Value: "TIMESTAMP_NTZ", Provider: "user"}},
		},
		Rows: []kbcfake.Row{{Values: []string{"007", "2026-01-02", "42", "2026-01-02 03:04:05", "x"}, Changed: day}},
	})
	f.AddTable(kbcfake.Table{ID: "in.c-crm.orders_alias", AliasOf: "in.c-crm.orders"})
	c := connect(t, f)
	for _, tc := range []struct {
		spec      connectors.TableSpec
		q         string
		want      [][]string
		wantTypes []string
	}{
		{
			spec: connectors.TableSpec{ID: "customers", Bucket: "in.c-crm", SourceTable: "customers"},
			q:    "SELECT COLUMNS(*)::VARCHAR FROM customers ORDER BY id",
			want: [][]string{{"1", "Ann", "2025-01-02", "true", "1.5"}, {"2", "<NULL>", "<NULL>", "<NULL>", "<NULL>"},
				{"3", "", "2026-02-28", "false", "-0.25"}},
			wantTypes: []string{"DECIMAL(38,0)", "VARCHAR", "DATE", "BOOLEAN", "DOUBLE"},
		},
		{
			spec:      connectors.TableSpec{ID: "priorities", Bucket: "in.c-crm", SourceTable: "priorities"},
			q:         "SELECT COLUMNS(*)::VARCHAR FROM priorities",
			want:      [][]string{{"007", "2026-01-02", "42", "2026-01-02 03:04:05", "x"}},
			wantTypes: []string{"VARCHAR", "DATE", "VARCHAR", "TIMESTAMP", "VARCHAR"},
		},
		{
			spec:      connectors.TableSpec{ID: "alias", Bucket: "in.c-crm", SourceTable: "orders_alias"},
			q:         "SELECT order_id::VARCHAR, note FROM alias WHERE order_id = 2",
			want:      [][]string{{"2", tricky[1]}},
			wantTypes: []string{"BIGINT", "VARCHAR", "DECIMAL(12,2)", "TIMESTAMP", "VARCHAR"},
		},
	} {
		_, w := extractOne(t, c, tc.spec)
		if got := query(t, w, tc.q); !slices.EqualFunc(got, tc.want, slices.Equal) {
			t.Errorf("%s: %q\nwant %q", tc.spec.ID, got, tc.want)
		}
		types := column(query(t, w, "SELECT column_type FROM (DESCRIBE "+tc.spec.ID+")"), 0)
		if !slices.Equal(types, tc.wantTypes) {
			t.Errorf("%s: types %v, want %v", tc.spec.ID, types, tc.wantTypes)
		}
	}
}

// TestCastFailure names the table, the column and the value.
func TestCastFailure(t *testing.T) {
	f := newFake(t)
	f.Update("in.c-crm.orders", func(tb *kbcfake.Table) { tb.Rows[4].Values[2] = "12,5x" })
	w, err := extract.NewWriter(filepath.Join(t.TempDir(), "kbc_sales"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, strategy := range []string{connectors.StrategyFullRefresh, connectors.StrategyIncremental} {
		spec := ordersSpec
		spec.Strategy = strategy
		_, err = connect(t, f).Extract(context.Background(), spec, w)
		var in *connectors.InputError
		if !errors.As(err, &in) || in.Msg != `Keboola table in.c-crm.orders, column amount: the value "12,5x" cannot be read as DECIMAL(12,2)` {
			t.Errorf("%s: %v", strategy, err)
		}
	}
	spec := connectors.TableSpec{ID: "by_note", Bucket: "in.c-crm", SourceTable: "orders", Strategy: connectors.StrategyPartitioned,
		PartitionBy: "note"}
	f.Update("in.c-crm.orders", func(tb *kbcfake.Table) { tb.Rows[4].Values[2] = "1" })
	_, err = connect(t, f).Extract(context.Background(), spec, w)
	if err == nil || !strings.Contains(err.Error(), `column note: the value "plain" cannot be read as a date (it is the partition_by column)`) {
		t.Errorf("a text partition column: %v", err)
	}
}

// eventsTable has rows in four months, changed over the 70 days since
// the table was created, one a day.
func eventsTable() kbcfake.Table {
	created := day.AddDate(0, 0, -70)
	t := kbcfake.Table{ID: "in.c-app.events", Columns: []string{"id", "happened", "v"}, PrimaryKey: []string{"id"}, Created: created,
		ColumnMetadata: map[string][]kbcfake.Metadata{"id": {kbcfake.BaseType("user", "INTEGER")}, "happened": {kbcfake.BaseType("user", "DATE")}}}
	for i := range 70 {
		happened := time.Date(2026, time.Month(2+i%4), 1+i%28, 0, 0, 0, 0, time.UTC)
		t.Rows = append(t.Rows, kbcfake.Row{Values: []string{strconv.Itoa(i), happened.Format(time.DateOnly), "v" + strconv.Itoa(i)},
			Changed: created.Add(time.Duration(i) * 24 * time.Hour)})
	}
	return t
}

// TestPartitioned: the first load exports the table in windows of
// changes; later loads rewrite only the partitions the changes touch,
// including the one a row moved out of.
func TestPartitioned(t *testing.T) {
	f := newFake(t)
	f.AddTable(eventsTable())
	s := fastSettings(f)
	s.InitialLoadChunkDays = 30
	c := connectWith(t, s, f)
	spec := connectors.TableSpec{ID: "events", Bucket: "in.c-app", SourceTable: "events", Strategy: connectors.StrategyPartitioned,
		PartitionBy: "happened"}
	ctx := context.Background()
	tbl, w := extractOne(t, c, spec)

	created := day.AddDate(0, 0, -70)
	var windows []string
	for _, e := range f.Exports() {
		windows = append(windows, e.Params.ChangedSince+"-"+e.Params.ChangedUntil)
	}
	unix := func(d int) string { return strconv.FormatInt(created.AddDate(0, 0, d).Unix(), 10) }
	if want := []string{"-" + unix(30), unix(30) + "-" + unix(60), unix(60) + "-"}; !slices.Equal(windows, want) {
		t.Errorf("initial load windows %v, want %v", windows, want)
	}
	var names []string
	for _, p := range tbl.Parts {
		names = append(names, p.Name)
	}
	if want := []string{"2026-02", "2026-03", "2026-04", "2026-05"}; !slices.Equal(names, want) || tbl.Rows != 70 {
		t.Errorf("parts %v (%d rows), want %v", names, tbl.Rows, want)
	}
	if tbl.Watermark != day.Format(time.RFC3339) {
		t.Errorf("watermark %q", tbl.Watermark)
	}

	// Row 1 (March) changes its value, row 2 (April) moves to May.
	stat := map[string]os.FileInfo{}
	for _, n := range names {
		stat[n], _ = os.Stat(filepath.Join(w.Dir(), extract.DataDir, "events", n+".parquet"))
	}
	later := day.Add(time.Hour)
	f.SetNow(func() time.Time { return later })
	f.Update("in.c-app.events", func(tb *kbcfake.Table) {
		tb.Rows[1].Values[2], tb.Rows[1].Changed = "changed", later
		tb.Rows[2].Values[1], tb.Rows[2].Changed = "2026-05-20", later
	})
	tbl, err := c.Extract(ctx, spec, w)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	for n, before := range stat {
		after, err := os.Stat(filepath.Join(w.Dir(), extract.DataDir, "events", n+".parquet"))
		if err != nil {
			t.Fatal(err)
		}
		if rewritten := !os.SameFile(before, after); rewritten != (n != "2026-02") {
			t.Errorf("part %s rewritten = %t", n, rewritten)
		}
	}
	got := query(t, w, "SELECT id::VARCHAR, happened::VARCHAR, v, parse_filename(filename, true) FROM read_parquet('"+
		filepath.Join(w.Dir(), extract.DataDir, "events", "*.parquet")+"', filename = true) WHERE id IN (1, 2) ORDER BY id")
	want := [][]string{{"1", "2026-03-02", "changed", "2026-03"}, {"2", "2026-05-20", "v2", "2026-05"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("changed rows %q, want %q", got, want)
	}
	if n := query(t, w, "SELECT count(*), count(DISTINCT id) FROM events"); n[0][0] != "70" || n[0][1] != "70" {
		t.Errorf("count, distinct ids = %v", n[0])
	}
	if tbl.Watermark != later.Format(time.RFC3339) {
		t.Errorf("watermark %q", tbl.Watermark)
	}
}

// TestPartitionedEmpty: an empty table is one empty part with its columns.
func TestPartitionedEmpty(t *testing.T) {
	f := newFake(t)
	f.AddTable(kbcfake.Table{ID: "in.c-app.nothing", Columns: []string{"id", "at"}, PrimaryKey: []string{"id"}})
	tbl, w := extractOne(t, connect(t, f), connectors.TableSpec{ID: "nothing", Bucket: "in.c-app", SourceTable: "nothing",
		Strategy: connectors.StrategyPartitioned, PartitionBy: "at", PartitionGranularity: "year"})
	if len(tbl.Parts) != 1 || tbl.Parts[0].Name != "null" || tbl.Rows != 0 {
		t.Errorf("parts %+v", tbl.Parts)
	}
	if cols := query(t, w, "SELECT column_name FROM (DESCRIBE nothing)"); len(cols) != 2 {
		t.Errorf("columns %v", cols)
	}
}

// TestStrategyInputErrors: what a strategy needs is checked before any export.
func TestStrategyInputErrors(t *testing.T) {
	f := newFake(t)
	f.AddTable(kbcfake.Table{ID: "in.c-app.nokey", Columns: []string{"a"}})
	w, err := extract.NewWriter(filepath.Join(t.TempDir(), "kbc_sales"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	part := connectors.TableSpec{ID: "x", Bucket: "in.c-crm", SourceTable: "orders", Strategy: connectors.StrategyPartitioned, PartitionBy: "updated_at"}
	for name, tc := range map[string]struct {
		spec connectors.TableSpec
		says string
	}{
		"no primary key":     {connectors.TableSpec{ID: "x", Bucket: "in.c-app", SourceTable: "nokey", Strategy: connectors.StrategyIncremental}, "has none: set primary_key"},
		"unknown key column": {connectors.TableSpec{ID: "x", Bucket: "in.c-crm", SourceTable: "orders", Strategy: connectors.StrategyIncremental, PrimaryKey: []string{"nope"}}, `primary key column "nope"`},
		"no partition_by":    {with(part, func(s *connectors.TableSpec) { s.PartitionBy = "" }), `partition_by "" is not a column`},
		"bad granularity":    {with(part, func(s *connectors.TableSpec) { s.PartitionGranularity = "week" }), `"week" is not day, month or year`},
		"non-date partition": {with(part, func(s *connectors.TableSpec) { s.PartitionBy = "amount" }), "is DECIMAL(12,2), not a date"},
		"unknown strategy":   {with(part, func(s *connectors.TableSpec) { s.Strategy = "sometimes" }), `unknown sync strategy "sometimes"`},
		"invalid id":         {with(part, func(s *connectors.TableSpec) { s.ID = "bad-id" }), `"bad-id" is not a valid table id`},
	} {
		f.ResetLog()
		_, err := connect(t, f).Extract(context.Background(), tc.spec, w)
		var in *connectors.InputError
		if !errors.As(err, &in) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an InputError saying %q", name, err, tc.says)
		}
		if n := len(f.Exports()); n != 0 {
			t.Errorf("%s: %d exports", name, n)
		}
	}
}

func with(s connectors.TableSpec, change func(*connectors.TableSpec)) connectors.TableSpec {
	change(&s)
	return s
}

// TestSetColumnDescription writes KBC.description of the provider user.
func TestSetColumnDescription(t *testing.T) {
	f := newFake(t)
	c := connect(t, f)
	ctx := context.Background()
	if err := c.SetColumnDescription(ctx, "in.c-crm.orders", "status", "Where the order is"); err != nil {
		t.Fatal(err)
	}
	got := f.ColumnMetadata("in.c-crm.orders", "status")
	if len(got) != 1 || got[0] != (kbcfake.Metadata{Key: "KBC.description", Value: "Where the order is", Provider: "user"}) {
		t.Errorf("metadata = %+v", got)
	}
	if err := c.SetColumnDescription(ctx, "in.c-crm.orders", "nope", "x"); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("unknown column: %v", err)
	}
	var in *connectors.InputError
	for _, bad := range [][2]string{{"orders", "status"}, {"in.c-crm.orders", "a/b"}, {"in.c-crm.orders", ""}} {
		if err := c.SetColumnDescription(ctx, bad[0], bad[1], "x"); !errors.As(err, &in) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

// TestDiscover lists tables with what registration needs.
func TestDiscover(t *testing.T) {
	f := newFake(t)
	long := "in.c-" + strings.Repeat("b", 40) + "." + strings.Repeat("t", 40)
	f.AddTable(kbcfake.Table{ID: long, Columns: []string{"a"}})
	found, err := connect(t, f).Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]connectors.Discovered{}
	for _, d := range found {
		byID[d.ID] = d
		if id, err := connectors.TableID(d.ID); err != nil || id != d.ID {
			t.Errorf("%q is not a registry id", d.ID)
		}
	}
	o := byID["in_c_crm_orders"]
	if o.Name != "orders" || o.Bucket != "in.c-crm" || o.SourceTable != "orders" || o.Description != "Orders from the CRM" ||
		o.Rows != int64(len(tricky)) || o.SizeBytes == 0 || !slices.Equal(o.PrimaryKey, []string{"order_id"}) ||
		!slices.Equal(o.Columns, ordersTable().Columns) {
		t.Errorf("orders discovered as %+v", o)
	}
	if len(found) != 4 {
		t.Errorf("discovered %d tables", len(found))
	}
}

// TestOpen decodes settings from the configuration and rejects bad ones
// without ever printing the token.
func TestOpen(t *testing.T) {
	f := newFake(t)
	conn, err := keboola.Open("kbc_sales", map[string]any{"stack_url": f.URL() + "/", "token": f.Token(), "poll_interval": "1ms", "retries": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if conn.Type() != "keboola" {
		t.Errorf("Type() = %q", conn.Type())
	}
	if err := conn.(*keboola.Connector).Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	const token = "1234-secret-value"
	for name, tc := range map[string]struct {
		raw  map[string]any
		says string
	}{
		"no url":       {map[string]any{"token": token}, "stack_url is not set"},
		"not a url":    {map[string]any{"stack_url": "ftp://x", "token": token}, `stack_url "ftp://x" is not a stack URL`},
		"no token":     {map[string]any{"stack_url": "https://connection.keboola.com"}, "token is not set"},
		"unknown key":  {map[string]any{"stack_url": "https://connection.keboola.com", "token": token, "tokn": "x"}, "tokn"},
		"file type":    {map[string]any{"stack_url": "https://connection.keboola.com", "token": token, "file_type": "xml"}, `file_type "xml"`},
		"negative":     {map[string]any{"stack_url": "https://connection.keboola.com", "token": token, "retries": -1}, "must not be negative"},
		"bad duration": {map[string]any{"stack_url": "https://connection.keboola.com", "token": token, "export_timeout": "soon"}, "export_timeout"},
	} {
		_, err := keboola.Open("kbc_sales", tc.raw)
		var in *connectors.InputError
		if !errors.As(err, &in) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "kbc_sales") {
			t.Errorf("%s: %v, want an InputError saying %q", name, err, tc.says)
		}
		if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("%s: the error shows the token", name)
		}
	}
	s := keboola.Settings{StackURL: "https://connection.keboola.com", Token: connectors.NewSecret(token)}
	if out := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(out, token) {
		t.Errorf("settings print the token: %s", out)
	}
}
