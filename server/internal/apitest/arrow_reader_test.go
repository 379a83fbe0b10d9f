package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// The SDK's Arrow reader receives every batch into one buffer of its own,
// reused for the next batch; what a caller copies out before the next Next
// is the whole result, in order, over Connect and gRPC, with the server's
// summary.
func TestSDKArrowReader(t *testing.T) {
	s := ts.New(t)
	const total = 300_000
	s.AddTable(t, "big", "numbers", fmt.Sprintf(`SELECT i AS id, 'row ' || i AS label FROM range(%d) t(i)`, total))
	s.AddTable(t, "secret", "salaries", `SELECT 1 AS id`)
	s.Rebuild(t)
	s.Grant(t, "numbers")
	ctx := context.Background()

	read := func(c *ts.Clients, req *agnesv1.QueryStreamRequest) (ids []int64, sum *agnesv1.QuerySummary, batches int) {
		st, err := c.QueryArrow(ctx, req)
		require.NoError(t, err)
		defer st.Close()
		require.Equal(t, "id", st.Columns()[0].GetName())
		var stream bytes.Buffer
		stream.Write(st.Schema())
		var rows int64
		for st.Next() {
			stream.Write(st.Batch())
			rows += st.BatchRows()
			batches++
		}
		require.NoError(t, st.Err())
		sum = st.Summary()
		require.NotNil(t, sum)
		require.Equal(t, sum.GetRows(), rows)
		return labeledIDs(t, &stream), sum, batches
	}

	for _, p := range ts.RPCProtocols {
		t.Run(string(p), func(t *testing.T) {
			c := s.Clients(p, s.UserToken)
			// The request's format is ignored: the reader always asks for Arrow.
			ids, sum, batches := read(c, &agnesv1.QueryStreamRequest{Sql: `SELECT id, label FROM numbers ORDER BY id`, Format: agnesv1.ResultFormat_RESULT_FORMAT_JSON})
			requireInOrder(t, ids, total)
			require.False(t, sum.GetTruncated())
			require.Greater(t, batches, 2, "several messages, so the buffer was reused")

			ids, sum, _ = read(c, &agnesv1.QueryStreamRequest{Sql: `SELECT id, label FROM numbers ORDER BY id`, Limit: 123_457})
			requireInOrder(t, ids, 123_457)
			require.True(t, sum.GetTruncated())

			// Errors surface from QueryArrow, with the API's codes.
			_, err := c.QueryArrow(ctx, &agnesv1.QueryStreamRequest{Sql: `DELETE FROM numbers`})
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
			_, err = c.QueryArrow(ctx, &agnesv1.QueryStreamRequest{Sql: `SELECT * FROM salaries`})
			require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%v", err)
		})
	}
}

// Dictionary-encoded columns (ENUM) come through the reader as a valid IPC
// stream: the dictionaries travel in the batches' bytes.
func TestSDKArrowReaderDictionaries(t *testing.T) {
	s := shop(t)
	st, err := s.Clients(ts.Connect, s.AdminToken).QueryArrow(context.Background(), &agnesv1.QueryStreamRequest{
		Sql: `SELECT i, (CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END)::ENUM('even', 'odd') AS parity FROM range(5000) t(i)`})
	require.NoError(t, err)
	defer st.Close()
	require.EqualValues(t, 5000, ipcRows(t, readArrow(t, st)))
}

// A batch far bigger than the usual ~1 MB message (three rows of 9 MB in one
// DuckDB chunk) comes through whole, over Connect and gRPC.
func TestArrowStreamHugeBatch(t *testing.T) {
	const width = 9_000_000
	s := shop(t, ts.WithConfig(func(c *configT) { c.Query.MaxBuilderSize = width }))
	for _, p := range ts.RPCProtocols {
		t.Run(string(p), func(t *testing.T) {
			st, err := s.Clients(p, s.AdminToken).QueryArrow(context.Background(), &agnesv1.QueryStreamRequest{
				Sql: fmt.Sprintf(`SELECT i, repeat(chr(65 + i::INTEGER), %d) AS s FROM range(3) t(i)`, width)})
			require.NoError(t, err)
			defer st.Close()
			r, err := ipc.NewReader(readArrow(t, st))
			require.NoError(t, err)
			defer r.Release()
			var got []string
			for r.Next() {
				col := r.RecordBatch().Column(1).(*array.String)
				for i := range col.Len() {
					got = append(got, col.Value(i))
				}
			}
			require.NoError(t, r.Err())
			require.Len(t, got, 3)
			for i, v := range got {
				require.Equal(t, strings.Repeat(string(rune('A'+i)), width), v, "row %d", i)
			}
		})
	}
}

// A Connect client speaking JSON gets the Arrow batches too.
func TestArrowStreamOverConnectJSON(t *testing.T) {
	s := shop(t)
	q := agnesv1connect.NewQueryServiceClient(ts.HTTP2Client(), s.URL, ts.Bearer(s.AdminToken), connect.WithProtoJSON())
	stream, err := q.QueryStream(context.Background(), &agnesv1.QueryStreamRequest{Sql: `SELECT i, 'x' || i AS s FROM range(50000) t(i)`})
	require.NoError(t, err)
	var buf bytes.Buffer
	var sum *agnesv1.QuerySummary
	for stream.Receive() {
		buf.Write(stream.Msg().GetSchema().GetArrowSchema())
		buf.Write(stream.Msg().GetBatch().GetArrowBatch())
		if m := stream.Msg().GetSummary(); m != nil {
			sum = m
		}
	}
	require.NoError(t, stream.Err())
	require.EqualValues(t, buf.Len(), sum.GetBytes())
	require.EqualValues(t, 50000, ipcRows(t, &buf))
	require.EqualValues(t, 50000, sum.GetRows())
}

// readArrow reads an SDK Arrow stream to its end: its schema and every
// batch, copied out before the next Next, as one Arrow IPC stream.
func readArrow(t *testing.T, st *sdk.ArrowStream) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(st.Schema())
	for st.Next() {
		buf.Write(st.Batch())
	}
	require.NoError(t, st.Err())
	return &buf
}

// labeledIDs reads an Arrow IPC stream of (id BIGINT, label 'row <id>') rows,
// checks every label against its id and returns the ids in stream order.
func labeledIDs(t *testing.T, stream io.Reader) []int64 {
	t.Helper()
	r, err := ipc.NewReader(stream)
	require.NoError(t, err)
	defer r.Release()
	var ids []int64
	for r.Next() {
		rec := r.RecordBatch()
		col, labels := rec.Column(0).(*array.Int64), rec.Column(1).(*array.String)
		for i := range col.Len() {
			require.Equal(t, fmt.Sprintf("row %d", col.Value(i)), labels.Value(i))
			ids = append(ids, col.Value(i))
		}
	}
	require.NoError(t, r.Err())
	return ids
}

// requireInOrder checks that ids are 0 .. n-1, in order: no batch was
// overwritten, reordered or lost.
func requireInOrder(t *testing.T, ids []int64, n int) {
	t.Helper()
	require.Len(t, ids, n)
	for i, id := range ids {
		if id != int64(i) {
			t.Fatalf("row %d has id %d: a batch was overwritten or reordered", i, id)
		}
	}
}

// ipcRows reads an Arrow IPC stream whole and counts its rows.
func ipcRows(t *testing.T, stream io.Reader) int64 {
	t.Helper()
	r, err := ipc.NewReader(stream)
	require.NoError(t, err)
	defer r.Release()
	var rows int64
	for r.Next() {
		rows += r.RecordBatch().NumRows()
	}
	require.NoError(t, r.Err())
	return rows
}
