package orchestrator_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/orchestrator"
)

// TestRebuildExposesParts: a partitioned table's view carries its _parts
// rows, and an extract written before _parts existed still rebuilds.
func TestRebuildExposesParts(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	w, err := extract.NewWriter(orchestrator.ExtractDir(data, "shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var want []extract.Part
	for i, part := range []string{"2026-01", "2026-02", "2026-03"} {
		f, err := w.WriteQuery(ctx, "events/"+part, "SELECT range AS id FROM range("+string(rune('1'+i))+")")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, extract.Part{Name: part, MD5: f.MD5, SizeBytes: f.SizeBytes, Rows: f.Rows})
	}
	events, err := w.PartitionedTable(ctx, "events", "Events by month")
	if err != nil {
		t.Fatal(err)
	}
	f, err := w.WriteQuery(ctx, "orders", "SELECT 1 AS id")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, events, extract.Table{Meta: f.Meta("Orders")}); err != nil {
		t.Fatal(err)
	}

	// An older extract: _meta without md5, no _parts, a partitioned table.
	old := filepath.Join(data, "extracts", "legacy")
	folder := filepath.Join(old, "data", "logs")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	execSQL(t, "", "COPY (SELECT 1 AS n) TO '"+filepath.Join(folder, "a.parquet")+"' (FORMAT parquet)")
	execSQL(t, filepath.Join(old, extract.DBFile),
		"CREATE TABLE _meta (table_name VARCHAR NOT NULL, description TEXT, rows BIGINT, size_bytes BIGINT, extracted_at TIMESTAMP, query_mode VARCHAR)",
		"CREATE VIEW logs AS SELECT * FROM read_parquet('"+filepath.Join(folder, "*.parquet")+"')",
		"INSERT INTO _meta VALUES ('logs', 'Logs', 1, 0, now(), 'local')")

	res, err := orchestrator.New(data, orchestrator.Options{}).Rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 {
		t.Errorf("problems: %v", res.Problems)
	}
	got := map[string]orchestrator.View{}
	for _, v := range res.Views {
		got[v.TableName] = v
	}
	if v := got["events"]; !slices.Equal(v.Parts, want) || v.Rows != 6 || v.MD5 != extract.PartsMD5(want) {
		t.Errorf("events view = %+v, want parts %+v", v, want)
	}
	if v := got["orders"]; v.Parts != nil || v.MD5 != f.MD5 {
		t.Errorf("orders view = %+v", v)
	}
	if v, ok := got["logs"]; !ok || v.Parts != nil || v.MD5 != "" || v.Rows != 1 {
		t.Errorf("legacy logs view = %+v (present %v)", v, ok)
	}
	db := openMaster(t, res.Master)
	if n := queryInt(t, db, "SELECT count(*) FROM events"); n != 6 {
		t.Errorf("events: %d rows", n)
	}
}
