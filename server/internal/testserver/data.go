package testserver

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/extract"
)

// AddTable writes a table into a source's extract (Parquet from a DuckDB query),
// the way a connector does. Call Rebuild to make it queryable.
func (s *Server) AddTable(t testing.TB, source, table, query string) extract.File {
	t.Helper()
	ctx := context.Background()
	w, err := extract.NewWriter(filepath.Join(s.DataDir, "extracts", source))
	require.NoError(t, err)
	defer w.Close()
	f, err := w.WriteQuery(ctx, table, query)
	require.NoError(t, err)
	require.NoError(t, w.Update(ctx, extract.Table{Meta: f.Meta(table + " (test data)")}))
	return f
}

// Rebuild rebuilds the master and switches queries to it.
func (s *Server) Rebuild(t testing.TB) {
	t.Helper()
	_, err := s.App.Analytics.Rebuild(context.Background())
	require.NoError(t, err)
}
