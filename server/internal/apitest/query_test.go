package apitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// shop makes two sources with three tables and grants "orders" to the user.
func shop(t *testing.T, opts ...ts.Option) *ts.Server {
	s := ts.New(t, opts...)
	s.AddTable(t, "shop", "orders", `SELECT i AS id, i % 10 AS customer_id, (i * 1.5)::DECIMAL(10,2) AS amount,
		DATE '2026-01-01' + (i % 30)::INTEGER AS day, CASE WHEN i % 7 = 0 THEN NULL ELSE 'web' END AS channel FROM range(100) t(i)`)
	s.AddTable(t, "shop", "customers", `SELECT i AS id, 'customer ' || i AS name FROM range(10) t(i)`)
	s.AddTable(t, "crm", "accounts", `SELECT i AS id, 'acct' || i AS name FROM range(5) t(i)`)
	s.Rebuild(t)
	s.Grant(t, "orders")
	return s
}

func TestQueryOverEveryProtocol(t *testing.T) {
	s := shop(t)
	const sql = `SELECT channel, count(*) AS n, sum(amount) AS total FROM orders GROUP BY ALL ORDER BY channel NULLS LAST`
	for _, p := range ts.RPCProtocols {
		res, err := s.Clients(p, s.UserToken).Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: sql})
		require.NoError(t, err, p)
		require.Equal(t, []string{"channel", "n", "total"}, res.GetColumns())
		require.EqualValues(t, 2, res.GetRowCount())
		require.False(t, res.GetTruncated())
		require.Equal(t, "web", res.GetRows()[0].GetValues()[0].GetStringValue())
		require.EqualValues(t, 85, res.GetRows()[0].GetValues()[1].GetNumberValue())
	}
	// REST: the documented shape, positional rows, numbers as numbers, decimals as text.
	res := s.REST(t, http.MethodPost, "/api/query", s.UserToken, map[string]any{"sql": sql, "limit": 1})
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	var body struct {
		Columns   []string `json:"columns"`
		Rows      [][]any  `json:"rows"`
		RowCount  int      `json:"row_count"`
		Truncated bool     `json:"truncated"`
	}
	res.JSON(t, &body)
	require.Equal(t, 1, body.RowCount)
	require.True(t, body.Truncated, "limit 1 of 2 rows")
	require.Equal(t, []any{"web", float64(85), "6322.50"}, body.Rows[0])
}

func TestQueryRBAC(t *testing.T) {
	s := shop(t)
	ctx := context.Background()
	user := s.Clients(ts.Connect, s.UserToken)
	for _, sql := range []string{
		`SELECT * FROM customers`,
		`SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id`,
		`WITH x AS (SELECT * FROM accounts) SELECT count(*) FROM x`,
		`SELECT (SELECT max(id) FROM customers) AS m`,
		`SELECT * FROM orders WHERE customer_id IN (SELECT id FROM CUSTOMERS)`,
	} {
		_, err := user.Query.Query(ctx, &agnesv1.QueryRequest{Sql: sql})
		require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), sql)
		require.Contains(t, err.Error(), "access denied to table")
	}
	res := s.REST(t, http.MethodPost, "/api/query", s.UserToken, map[string]any{"sql": "SELECT * FROM customers"})
	require.Equal(t, http.StatusForbidden, res.Status)
	detail, _ := res.Error(t)
	require.Equal(t, "access denied to table 'customers'", detail)

	// Granted table, CTE shadowing a forbidden name, admin sees everything.
	_, err := user.Query.Query(ctx, &agnesv1.QueryRequest{Sql: `WITH customers AS (SELECT 1 AS id) SELECT * FROM customers JOIN orders USING (id)`})
	require.NoError(t, err)
	_, err = s.Clients(ts.GRPC, s.AdminToken).Query.Query(ctx, &agnesv1.QueryRequest{Sql: `SELECT * FROM customers, accounts`})
	require.NoError(t, err)
}

func TestQuerySandboxThroughTheAPI(t *testing.T) {
	s := shop(t)
	admin := s.Clients(ts.Connect, s.AdminToken)
	for _, sql := range []string{
		`DROP TABLE orders`,
		`SELECT 1; SELECT 2`,
		`SELECT * FROM read_csv('/etc/passwd')`,
		`SELECT * FROM '/etc/passwd'`,
		`SELECT * FROM shop.main._meta`,
		`SELECT * FROM query('SELECT 1')`,
		`SELECT getenv('HOME')`,
		`SELECT current_setting('threads')`,
		`ATTACH '/tmp/x.duckdb' AS x`,
		`COPY orders TO '/tmp/out.parquet'`,
		`DESCRIBE orders`,
		`SELECT * FROM no_such_table`,
	} {
		_, err := admin.Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: sql})
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), sql)
	}
	// Ordinary SQL the old blocklist refused.
	for _, sql := range []string{
		`SELECT 'a;b' AS s, 'DROP TABLE x' AS t`,
		`SELECT id AS last_update FROM orders LIMIT 1`,
		`FROM orders SELECT count(*)`,
	} {
		_, err := admin.Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: sql})
		require.NoError(t, err, sql)
	}
}

// A list or string builder whose size is known only when the row is computed
// runs with a runtime size check (query.max_builder_size): within the limit the
// answer and its column names are those of the query as written; over it, a
// 400 naming the limit.
func TestGuardedBuildersThroughTheAPI(t *testing.T) {
	s := shop(t)
	res := s.REST(t, http.MethodPost, "/api/query", s.UserToken, map[string]any{
		"sql": `SELECT customer_id, repeat('x', customer_id) FROM orders WHERE id = 3`})
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	var body struct {
		Columns []string `json:"columns"`
		Rows    [][]any  `json:"rows"`
	}
	res.JSON(t, &body)
	require.Equal(t, []string{"customer_id", "repeat('x', customer_id)"}, body.Columns)
	require.Equal(t, [][]any{{3.0, "xxx"}}, body.Rows)

	res = s.REST(t, http.MethodPost, "/api/query", s.UserToken, map[string]any{
		"sql": `SELECT max(length(list_resize([1], customer_id * 100000000))) FROM orders`})
	require.Equal(t, http.StatusBadRequest, res.Status, "%s", res.Body)
	require.Contains(t, string(res.Body), "query.max_builder_size")
}

func TestQueryStreamArrowAndJSON(t *testing.T) {
	s := shop(t)
	ctx := context.Background()
	for _, p := range ts.RPCProtocols {
		stream, err := s.Clients(p, s.UserToken).Query.QueryStream(ctx, &agnesv1.QueryStreamRequest{Sql: `SELECT id, channel FROM orders ORDER BY id`})
		require.NoError(t, err)
		var ipcBytes bytes.Buffer
		var summary *agnesv1.QuerySummary
		for stream.Receive() {
			switch ev := stream.Msg().GetEvent().(type) {
			case *agnesv1.QueryStreamResponse_Schema:
				require.Equal(t, agnesv1.ResultFormat_RESULT_FORMAT_ARROW, ev.Schema.GetFormat())
				ipcBytes.Write(ev.Schema.GetArrowSchema())
			case *agnesv1.QueryStreamResponse_Batch:
				ipcBytes.Write(ev.Batch.GetArrowBatch())
			case *agnesv1.QueryStreamResponse_Summary:
				summary = ev.Summary
			}
		}
		require.NoError(t, stream.Err())
		require.EqualValues(t, 100, summary.GetRows())
		// Schema + batches form a valid Arrow IPC stream.
		r, err := ipc.NewReader(&ipcBytes)
		require.NoError(t, err)
		var n int64
		var last int64
		for r.Next() {
			rec := r.RecordBatch()
			ids := rec.Column(0).(*array.Int64)
			last = ids.Value(ids.Len() - 1)
			n += rec.NumRows()
		}
		require.NoError(t, r.Err())
		require.EqualValues(t, 100, n)
		require.EqualValues(t, 99, last)
	}

	// JSON rows in bounded batches.
	stream, err := s.Clients(ts.Connect, s.UserToken).Query.QueryStream(ctx, &agnesv1.QueryStreamRequest{
		Sql: `SELECT id FROM orders`, Format: agnesv1.ResultFormat_RESULT_FORMAT_JSON, BatchRows: 30, Limit: 70})
	require.NoError(t, err)
	var sizes []int64
	var sum *agnesv1.QuerySummary
	for stream.Receive() {
		if b := stream.Msg().GetBatch(); b != nil {
			sizes = append(sizes, b.GetRowCount())
			require.Len(t, b.GetRows(), int(b.GetRowCount()))
		}
		if x := stream.Msg().GetSummary(); x != nil {
			sum = x
		}
	}
	require.NoError(t, stream.Err())
	require.Equal(t, []int64{30, 30, 10}, sizes)
	require.True(t, sum.GetTruncated())
}

func TestQueryStreamOverRESTIsNDJSON(t *testing.T) {
	s := shop(t)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/query/stream", strings.NewReader(`{"sql": "SELECT id FROM orders ORDER BY id", "batch_rows": 40}`))
	req.Header.Set("Authorization", "Bearer "+s.UserToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var kinds []string
	rows := 0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var line struct {
			Result map[string]json.RawMessage `json:"result"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		for k, v := range line.Result {
			kinds = append(kinds, k)
			if k == "batch" {
				var b struct {
					Rows [][]any `json:"rows"`
				}
				require.NoError(t, json.Unmarshal(v, &b))
				rows += len(b.Rows)
			}
		}
	}
	require.Equal(t, []string{"schema", "batch", "batch", "batch", "summary"}, kinds)
	require.Equal(t, 100, rows)

	// A denied stream answers 403 with the usual error body.
	denied := s.REST(t, http.MethodPost, "/api/query/stream", s.UserToken, map[string]string{"sql": "SELECT * FROM customers"})
	require.Equal(t, http.StatusForbidden, denied.Status)
	_, code := denied.Error(t)
	require.Equal(t, "permission_denied", code)
}

func TestQueryCancellationAndTimeout(t *testing.T) {
	s := shop(t, ts.WithConfig(func(c *configT) { c.Query.Timeout = 500 * time.Millisecond }))
	admin := s.Clients(ts.Connect, s.AdminToken)
	const slow = `SELECT count(*) FROM range(100000000000) a`
	start := time.Now()
	_, err := admin.Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: slow})
	require.Equal(t, connect.CodeDeadlineExceeded, connect.CodeOf(err))
	require.Less(t, time.Since(start), 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = admin.Query.Query(ctx, &agnesv1.QueryRequest{Sql: slow})
	require.Error(t, err)
	// The engine is free again at once.
	res, err := admin.Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: `SELECT 1 AS one`})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.GetRowCount())
}

func TestPerUserConcurrencyCap(t *testing.T) {
	s := shop(t, ts.WithConfig(func(c *configT) { c.Query.PerUserConcurrency = 1; c.Query.Timeout = 5 * time.Second }))
	admin := s.Clients(ts.Connect, s.AdminToken)
	// Hold the admin's one slot with a long query, then probe with another. The probe
	// can win the race for the slot (then the long query is the one refused), so
	// each attempt gives the long query a moment to be admitted first.
	var err error
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			stream, err := admin.Query.QueryStream(ctx, &agnesv1.QueryStreamRequest{Sql: `SELECT count(*) FROM range(100000000000) a`})
			if err == nil {
				for stream.Receive() {
				}
			}
		}()
		time.Sleep(200 * time.Millisecond)
		_, err = admin.Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: `SELECT 1`})
		if connect.CodeOf(err) == connect.CodeResourceExhausted {
			res := s.REST(t, http.MethodPost, "/api/query", s.AdminToken, map[string]string{"sql": "SELECT 1"})
			require.Equal(t, http.StatusTooManyRequests, res.Status)
			// Another user is not affected.
			s.Grant(t, "customers")
			_, err := s.Clients(ts.Connect, s.UserToken).Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: `SELECT 1`})
			require.NoError(t, err)
			cancel()
			return
		}
		cancel()
	}
	t.Fatalf("the second query was never refused: %v", err)
}

func TestRebuildKeepsQueriesWorking(t *testing.T) {
	s := shop(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			c := s.Clients(ts.Connect, s.AdminToken)
			for ctx.Err() == nil {
				_, err := c.Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: `SELECT count(*) FROM orders`})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	admin := s.Clients(ts.Connect, s.AdminToken)
	for range 5 {
		res, err := admin.Admin.RebuildAnalytics(context.Background(), &agnesv1.RebuildAnalyticsRequest{})
		require.NoError(t, err)
		require.EqualValues(t, 3, res.GetViews())
	}
	cancel()
	for range 4 {
		require.NoError(t, <-errs)
	}
}

var _ = errors.New
var _ = io.EOF

// TestRESTStreamRowsMatchTheRPC: REST streams write JSON rows straight from Arrow;
// every value must read exactly as in Query's rows (the RPC path).
func TestRESTStreamRowsMatchTheRPC(t *testing.T) {
	s := shop(t)
	const sql = `SELECT 1::TINYINT AS i8, 9007199254740993::BIGINT AS big, 42::UBIGINT AS u, 2.5::DOUBLE AS d,
		'nan'::DOUBLE AS nan, 1e-9::DOUBLE AS tiny, 1.25::FLOAT AS f, 12.30::DECIMAL(10,2) AS dec,
		-0.005::DECIMAL(10,3) AS neg, DATE '2026-03-04' AS day, TIMESTAMP '2026-03-04 05:06:07.5' AS ts,
		TIMESTAMPTZ '2026-03-04 05:06:07+00' AS tstz, TIME '01:02:03' AS tm,
		'a"b\c' || chr(10) || 'ünïcødé' || chr(1) AS s, true AS b, NULL::INTEGER AS n, [1, 2] AS l,
		{'k': 'v'} AS st, 'e7a0d1b4-1c8e-4f36-9d51-0a7b3f2c4d5e'::UUID AS id, '\xAA'::BLOB AS bl,
		INTERVAL 90 MINUTE AS iv`
	res, err := s.Clients(ts.Connect, s.AdminToken).Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: sql})
	require.NoError(t, err)
	rpcRow := res.GetRows()[0].AsSlice()

	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/query/stream", strings.NewReader(`{"sql": `+jsonString(sql)+`}`))
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	hres, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer hres.Body.Close()
	var restRow []any
	var types []string
	sc := bufio.NewScanner(hres.Body)
	for sc.Scan() {
		var line struct {
			Result struct {
				Schema *struct {
					Columns []struct{ Name, Type string } `json:"columns"`
				} `json:"schema"`
				Batch *struct {
					Rows [][]any `json:"rows"`
				} `json:"batch"`
			} `json:"result"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		if line.Result.Schema != nil {
			for _, c := range line.Result.Schema.Columns {
				types = append(types, c.Type)
			}
		}
		if line.Result.Batch != nil {
			restRow = line.Result.Batch.Rows[0]
		}
	}
	require.Equal(t, res.GetColumnTypes(), types, "the JSON format names DuckDB's types")
	require.Len(t, restRow, len(rpcRow))
	for i := range rpcRow {
		require.Equal(t, rpcRow[i], restRow[i], "column %s (%s)", res.GetColumns()[i], types[i])
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestArrowStreamWithDictionaries: ENUM columns arrive as Arrow dictionaries, which
// need dictionary batches in the IPC stream.
func TestArrowStreamWithDictionaries(t *testing.T) {
	s := shop(t)
	stream, err := s.Clients(ts.Connect, s.AdminToken).Query.QueryStream(context.Background(), &agnesv1.QueryStreamRequest{
		Sql: `SELECT i, (CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END)::ENUM('even', 'odd') AS parity FROM range(5000) t(i)`})
	require.NoError(t, err)
	var buf bytes.Buffer
	for stream.Receive() {
		if sc := stream.Msg().GetSchema(); sc != nil {
			buf.Write(sc.GetArrowSchema())
		}
		buf.Write(stream.Msg().GetBatch().GetArrowBatch())
	}
	require.NoError(t, stream.Err())
	require.EqualValues(t, 5000, ipcRows(t, &buf))
}

// A result of many chunks and several ~1 MB messages arrives whole and in
// order (chunks are converted and encoded on several goroutines), and a limit
// cuts it exactly, over Arrow and over REST NDJSON.
func TestQueryStreamLargeResultInOrder(t *testing.T) {
	s := ts.New(t)
	const total = 400_000
	s.AddTable(t, "big", "numbers", fmt.Sprintf(`SELECT i AS id, 'row ' || i AS label FROM range(%d) t(i)`, total))
	s.Rebuild(t)
	ctx := context.Background()
	const sql = `SELECT id, label FROM numbers ORDER BY id`

	arrowIDs := func(limit int64) ([]int64, *agnesv1.QuerySummary, int) {
		stream, err := s.Clients(ts.Connect, s.AdminToken).Query.QueryStream(ctx, &agnesv1.QueryStreamRequest{Sql: sql, Limit: limit})
		require.NoError(t, err)
		var ipcBytes bytes.Buffer
		var sum *agnesv1.QuerySummary
		messages := 0
		for stream.Receive() {
			switch ev := stream.Msg().GetEvent().(type) {
			case *agnesv1.QueryStreamResponse_Schema:
				ipcBytes.Write(ev.Schema.GetArrowSchema())
			case *agnesv1.QueryStreamResponse_Batch:
				ipcBytes.Write(ev.Batch.GetArrowBatch())
				messages++
			case *agnesv1.QueryStreamResponse_Summary:
				sum = ev.Summary
			}
		}
		require.NoError(t, stream.Err())
		return labeledIDs(t, &ipcBytes), sum, messages
	}

	ids, sum, messages := arrowIDs(0)
	requireInOrder(t, ids, total)
	require.EqualValues(t, total, sum.GetRows())
	require.False(t, sum.GetTruncated())
	require.Greater(t, messages, 2, "several ~1 MB messages")

	ids, sum, _ = arrowIDs(250_001)
	requireInOrder(t, ids, 250_001)
	require.True(t, sum.GetTruncated())

	// REST NDJSON: the same rows, in order.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/query/stream", strings.NewReader(`{"sql": `+jsonString(sql)+`}`))
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	ids = ids[:0]
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var line struct {
			Result struct {
				Batch *struct {
					Rows [][]any `json:"rows"`
				} `json:"batch"`
			} `json:"result"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line))
		if line.Result.Batch != nil {
			for _, r := range line.Result.Batch.Rows {
				ids = append(ids, int64(r[0].(float64)))
			}
		}
	}
	require.NoError(t, sc.Err())
	requireInOrder(t, ids, total)
}
