package apitest

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/config"
	"github.com/agnesdata/agnes/server/internal/store/duckdbstore"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
	"github.com/stretchr/testify/require"
)

type configT = config.Config

var ioEOF = io.EOF

// seedOfflineAdmin creates the admin (admin@example.com, password123) in
// dataDir's state before any server starts there, as an operator would, and
// returns a session token for the server processes that will (ts.Secret).
func seedOfflineAdmin(t *testing.T, dataDir string) string {
	t.Helper()
	ctx := context.Background()
	st, err := duckdbstore.Open(ctx, filepath.Join(dataDir, "state", "system.duckdb"))
	require.NoError(t, err)
	hash, err := auth.HashPassword("password123")
	require.NoError(t, err)
	admin, err := st.Bootstrap(ctx, "admin@example.com", "Admin", hash)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	issuer, err := auth.NewIssuer([]byte(ts.Secret))
	require.NoError(t, err)
	token, _, err := issuer.Session(admin.ID, admin.Email)
	require.NoError(t, err)
	return token
}
