package keboola_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/keboola"
	"github.com/agnesdata/agnes/connectors/keboola/kbcfake"
)

const benchRows, benchSlices = 1_000_000, 8

// benchTable is a typed-by-metadata table of generated rows.
func benchTable() kbcfake.Table {
	statuses := []string{"open", "pending", "shipped", "cancelled"}
	return kbcfake.Table{
		ID: "in.c-bench.events", Columns: []string{"id", "customer", "amount", "created_at", "status", "note"}, PrimaryKey: []string{"id"},
		ColumnMetadata: map[string][]kbcfake.Metadata{
			"id": {kbcfake.BaseType("user", "INTEGER")}, "amount": {kbcfake.BaseType("user", "NUMERIC"), {Key: "KBC.datatype.length", Value: "12,2", Provider: "user"}},
			"created_at": {kbcfake.BaseType("user", "TIMESTAMP")},
		},
		GeneratedRows: benchRows,
		Generate: func(i int) kbcfake.Row {
			at := day.Add(-time.Duration(i) * time.Second)
			note := "plain note"
			if i%10 == 0 {
				note = `a "quoted", multi-line` + "\nnote ž"
			}
			return kbcfake.Row{Values: []string{fmt.Sprint(i), fmt.Sprintf("customer_%d", i%5000), fmt.Sprintf("%d.%02d", i%100000, i%100),
				at.Format(time.DateTime), statuses[i%4], note}, Changed: at}
		},
	}
}

// BenchmarkSlicedExport: 1M rows in 8 gzip CSV slices served by the fake
// on loopback → Parquet through the connector (export, polls, downloads,
// typed conversion), and beside it DuckDB's own COPY of the same slice
// files from local disk to Parquet. Compare the rows/s of the two.
func BenchmarkSlicedExport(b *testing.B) {
	f := kbcfake.New()
	defer f.Close()
	f.SetRowsPerSlice(benchRows / benchSlices)
	f.AddTable(benchTable())
	c, err := keboola.New("kbc_bench", keboola.Settings{StackURL: f.URL(), Token: connectors.NewSecret(f.Token()),
		PollInterval: time.Millisecond, MaxPollInterval: time.Millisecond}, keboola.WithGCSEndpoint(f.GCSEndpoint()))
	if err != nil {
		b.Fatal(err)
	}
	spec := connectors.TableSpec{ID: "events", Bucket: "in.c-bench", SourceTable: "events"}
	dir := filepath.Join(b.TempDir(), "kbc_bench")
	extractOnce := func(b *testing.B) {
		w, err := extract.NewWriter(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		tbl, err := c.Extract(context.Background(), spec, w)
		if err != nil {
			b.Fatal(err)
		}
		if tbl.Rows != benchRows {
			b.Fatalf("%d rows", tbl.Rows)
		}
	}
	extractOnce(b) // the fake generates the export once; later ones hit its cache

	b.Run("connector", func(b *testing.B) {
		for b.Loop() {
			extractOnce(b)
		}
		b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})

	b.Run("duckdb_copy", func(b *testing.B) {
		local := b.TempDir()
		var files []string
		for i, s := range f.LastFileSlices() {
			p := filepath.Join(local, fmt.Sprintf("slice-%d.csv.gz", i))
			if err := os.WriteFile(p, s, 0o644); err != nil {
				b.Fatal(err)
			}
			files = append(files, "'"+p+"'")
		}
		db, err := sql.Open("duckdb", "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		q := "COPY (FROM read_csv([" + strings.Join(files, ", ") + `], header = false, auto_detect = false, delim = ',', quote = '"',
			escape = '"', new_line = '\n', columns = {'id': 'BIGINT', 'customer': 'VARCHAR',
			'amount': 'DECIMAL(12,2)', 'created_at': 'TIMESTAMP', 'status': 'VARCHAR', 'note': 'VARCHAR'})) TO '` +
			filepath.Join(local, "out.parquet") + "' (FORMAT parquet, COMPRESSION zstd)"
		for b.Loop() {
			if _, err := db.Exec(q); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
