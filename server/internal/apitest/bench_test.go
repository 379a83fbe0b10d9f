package apitest

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/config"
	"github.com/agnesdata/agnes/server/internal/store"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// BenchmarkSelect1 is the whole request path of a trivial query over Connect:
// authentication, sandbox, RBAC, engine, encoding (make bench compares it with DuckDB).
func BenchmarkSelect1(b *testing.B) {
	s := ts.New(b)
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{{"h1", http.DefaultClient}, {"h2c", ts.HTTP2Client()}} {
		b.Run(tc.name, func(b *testing.B) {
			c := agnesv1connect.NewQueryServiceClient(tc.client, s.URL, connect.WithInterceptors(sdk.BearerAuth(s.AdminToken)))
			ctx := context.Background()
			for b.Loop() {
				if _, err := c.Query(ctx, &agnesv1.QueryRequest{Sql: "SELECT 1"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkQueryStreamArrow streams a 2M-row table as Arrow over Connect
// (HTTP/1.1, the SDK's defaults), client and server in one process: run it
// with -cpuprofile to see where a big stream's time goes.
func BenchmarkQueryStreamArrow(b *testing.B) {
	s := ts.New(b, ts.WithConfig(func(c *config.Config) { c.Query.MaxRows = 10_000_000 }))
	s.AddTable(b, "sales", "big", `SELECT i AS id, i % 1000 AS customer_id, (i % 97) * 1.25 AS amount, 'c' || (i % 10) AS category,
	TIMESTAMP '2026-01-01' + INTERVAL (i % 86400) SECOND AS ts FROM range(2000000) t(i)`)
	s.Rebuild(b)
	c := sdk.New(s.URL, s.AdminToken)
	ctx := context.Background()
	for b.Loop() {
		stream, err := c.Query.QueryStream(ctx, &agnesv1.QueryStreamRequest{Sql: "SELECT * FROM big"})
		if err != nil {
			b.Fatal(err)
		}
		var rows int64
		for stream.Receive() {
			rows += stream.Msg().GetBatch().GetRowCount()
		}
		if err := stream.Err(); err != nil || rows != 2000000 {
			b.Fatalf("%d rows, %v", rows, err)
		}
		stream.Close()
	}
}

// BenchmarkManifest5000 is the manifest of 5,000 tables over REST and Connect
// (make bench's scenario H measures it as a user in 20 groups).
func BenchmarkManifest5000(b *testing.B) {
	s := ts.New(b)
	now := time.Now()
	states := make([]store.SyncState, 5000)
	for i := range states {
		states[i] = store.SyncState{TableID: fmt.Sprintf("t%04d", i), Source: "src", QueryMode: "local", LastSync: &now,
			Rows: 1000, SizeBytes: 4096, Hash: fmt.Sprintf("%032x", i), Path: fmt.Sprintf("extracts/src/data/t%04d.parquet", i), Status: "ok"}
	}
	if err := s.App.Store.UpsertSyncStates(context.Background(), states); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("rest", func(b *testing.B) {
		for b.Loop() {
			if r := s.REST(b, http.MethodGet, "/api/sync/manifest", s.AdminToken, nil); r.Status != http.StatusOK {
				b.Fatal(r.Status)
			}
		}
	})
	b.Run("connect", func(b *testing.B) {
		c := sdk.New(s.URL, s.AdminToken)
		for b.Loop() {
			m, err := c.Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
			if err != nil || len(m.GetTables()) != 5000 {
				b.Fatalf("%d tables, %v", len(m.GetTables()), err)
			}
		}
	})
}
