package apitest

import (
	"context"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// BenchmarkSelect1 is the whole request path of a trivial query over Connect:
// authentication, sandbox, RBAC, engine, encoding (make bench compares it with DuckDB).
func BenchmarkSelect1(b *testing.B) {
	s := ts.New(b)
	c := agnesv1connect.NewQueryServiceClient(http.DefaultClient, s.URL, connect.WithInterceptors(sdk.BearerAuth(s.AdminToken)))
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Query(ctx, &agnesv1.QueryRequest{Sql: "SELECT 1"}); err != nil {
			b.Fatal(err)
		}
	}
}
