package analytics_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/orchestrator"
	"github.com/agnesdata/agnes/server/internal/analytics"
	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/store/duckdbstore"
)

type fixture struct {
	t       *testing.T
	ctx     context.Context
	dataDir string
	st      store.Store
	an      *analytics.Analytics
}

func newFixture(t *testing.T) *fixture {
	ctx := context.Background()
	f := &fixture{t: t, ctx: ctx, dataDir: t.TempDir()}
	var err error
	f.st, err = duckdbstore.Open(ctx, ":memory:")
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.st.Close() })
	f.an = analytics.New(f.dataDir, f.st, engine.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { _ = f.an.Close() })
	return f
}

// write rewrites one part of a partitioned table (or a single-file table when
// part is "") and records it in the source's extract.duckdb.
func (f *fixture) write(source, table, part, query string) {
	f.t.Helper()
	w, err := extract.NewWriter(orchestrator.ExtractDir(f.dataDir, source))
	require.NoError(f.t, err)
	defer w.Close()
	if part == "" {
		file, err := w.WriteQuery(f.ctx, table, query)
		require.NoError(f.t, err)
		require.NoError(f.t, w.Update(f.ctx, extract.Table{Meta: file.Meta(table)}))
		return
	}
	_, err = w.WriteQuery(f.ctx, table+"/"+part, query)
	require.NoError(f.t, err)
	tbl, err := w.PartitionedTable(f.ctx, table, table)
	require.NoError(f.t, err)
	require.NoError(f.t, w.Update(f.ctx, tbl))
}

func (f *fixture) count(table string) int64 {
	f.t.Helper()
	var rows countRows
	_, err := f.an.Engine.RunArrow(f.ctx, "SELECT count(*) FROM "+table, engine.RunOptions{}, &rows)
	require.NoError(f.t, err)
	return rows.n
}

type countRows struct{ n int64 }

func (c *countRows) Schema(*arrow.Schema) error { return nil }
func (c *countRows) Batch(rec arrow.RecordBatch) error {
	c.n = rec.Column(0).(*array.Int64).Value(0)
	return nil
}

func (f *fixture) state(table string) *store.SyncState {
	f.t.Helper()
	st, err := f.st.GetSyncState(f.ctx, table)
	require.NoError(f.t, err)
	return st
}

// TestPublishWithoutRebuild: a source that rewrote a part in place is
// visible to new queries at once (the views read the files at query time);
// Publish records its new hash, rows and parts without a new generation and
// without touching the other source; a new table needs (and gets) one.
func TestPublishWithoutRebuild(t *testing.T) {
	f := newFixture(t)
	f.write("tickets", "issues", "2026-01", "SELECT range AS id FROM range(3)")
	f.write("tickets", "issues", "2026-02", "SELECT range AS id FROM range(2)")
	f.write("crm", "orders", "", "SELECT range AS id FROM range(10)")
	res, err := f.an.Rebuild(f.ctx)
	require.NoError(t, err)
	gen := res.Generation
	before, other := f.state("issues"), f.state("orders")
	require.Equal(t, int64(5), before.Rows)
	version := f.st.DataVersion()

	f.write("tickets", "issues", "2026-02", "SELECT range AS id FROM range(7)")
	require.Equal(t, int64(10), f.count("issues"), "the generation's view reads the rewritten part at query time")
	require.Equal(t, int64(5), f.state("issues").Rows, "the manifest follows only once published")

	pub, err := f.an.Publish(f.ctx, "tickets")
	require.NoError(t, err)
	require.Equal(t, analytics.Publication{Tables: 1, Generation: gen}, pub, "no rebuild")
	require.Equal(t, gen, f.an.Engine.Generation())
	after := f.state("issues")
	require.Equal(t, int64(10), after.Rows)
	require.NotEqual(t, before.Hash, after.Hash)
	require.Len(t, after.Parts, 2)
	require.NotEqual(t, before.Parts[1].Hash, after.Parts[1].Hash)
	require.Equal(t, before.Parts[0], after.Parts[0], "the untouched part keeps its hash")
	require.Equal(t, other, f.state("orders"), "the other source is left alone")
	require.NotEqual(t, version, f.st.DataVersion(), "the manifest's derived view is invalidated")

	// A new month is a new file in a folder the generation already reads.
	f.write("tickets", "issues", "2026-03", "SELECT range AS id FROM range(1)")
	pub, err = f.an.Publish(f.ctx, "tickets")
	require.NoError(t, err)
	require.False(t, pub.Rebuilt)
	require.Equal(t, int64(11), f.count("issues"))
	require.Len(t, f.state("issues").Parts, 3)

	// A new table is a new view: that takes a generation.
	f.write("tickets", "comments", "2026-01", "SELECT 1 AS id")
	pub, err = f.an.Publish(f.ctx, "tickets")
	require.NoError(t, err)
	require.True(t, pub.Rebuilt)
	require.Equal(t, 2, pub.Tables)
	require.Equal(t, gen+1, pub.Generation)
	require.Equal(t, int64(1), f.count("comments"))
	require.Equal(t, int64(1), f.state("comments").Rows)

	pub, err = f.an.Publish(f.ctx, "tickets")
	require.NoError(t, err)
	require.False(t, pub.Rebuilt, "and only once")

	_, err = f.an.Publish(f.ctx, "../etc")
	require.ErrorContains(t, err, "not a valid source name")
	_, err = f.an.Publish(f.ctx, "nothing_here")
	require.Error(t, err, "no extract to publish")
}

// TestPublishBeforeAnyRebuild: the first publish of a source builds the
// generation that serves it.
func TestPublishBeforeAnyRebuild(t *testing.T) {
	f := newFixture(t)
	f.write("tickets", "issues", "2026-01", "SELECT range AS id FROM range(3)")
	pub, err := f.an.Publish(f.ctx, "tickets")
	require.NoError(t, err)
	require.True(t, pub.Rebuilt)
	require.Equal(t, int64(3), f.count("issues"))
	require.Equal(t, filepath.Join("extracts", "tickets", "data", "issues"), f.state("issues").Path)
}
