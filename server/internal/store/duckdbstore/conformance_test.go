package duckdbstore_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/store/cached"
	"github.com/agnesdata/agnes/server/internal/store/duckdbstore"
	"github.com/agnesdata/agnes/server/internal/store/storetest"
)

// backend opens a DuckDB store per test, in a file so Reopen is a real restart;
// wrap puts a decorator in front.
func backend(wrap func(store.Store) store.Store) storetest.Backend {
	paths := map[store.Store]string{}
	open := func(t *testing.T, path string) store.Store {
		s, err := duckdbstore.Open(t.Context(), path)
		require.NoError(t, err)
		w := wrap(s)
		paths[w] = path
		return w
	}
	return storetest.Backend{
		Open: func(t *testing.T) store.Store {
			return open(t, filepath.Join(t.TempDir(), "state", "system.duckdb"))
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			require.NoError(t, s.Close())
			return open(t, paths[s])
		},
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, backend(func(s store.Store) store.Store { return s }))
}

// The cache decorator must be invisible: the same suite through it.
func TestConformanceCached(t *testing.T) {
	storetest.Run(t, backend(func(s store.Store) store.Store { return cached.New(s, 0) }))
}
