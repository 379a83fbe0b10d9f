package apitest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/config"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// rpcVariant is one protocol and codec a client may use for the unary Query.
type rpcVariant struct {
	name string
	opts []connect.ClientOption
}

var rpcVariants = []rpcVariant{
	{"connect+proto", nil},
	{"connect+json", []connect.ClientOption{connect.WithProtoJSON()}},
	{"grpc+proto", []connect.ClientOption{connect.WithGRPC()}},
	{"grpc+json", []connect.ClientOption{connect.WithGRPC(), connect.WithProtoJSON()}},
	{"grpc-web+proto", []connect.ClientOption{connect.WithGRPCWeb()}},
	{"grpc-web+json", []connect.ClientOption{connect.WithGRPCWeb(), connect.WithProtoJSON()}},
}

func (v rpcVariant) client(s *ts.Server, token string) agnesv1connect.QueryServiceClient {
	return agnesv1connect.NewQueryServiceClient(ts.HTTP2Client(), s.URL, append([]connect.ClientOption{ts.Bearer(token)}, v.opts...)...)
}

// restAnswer is POST /api/query's JSON.
type restAnswer struct {
	Columns     []string `json:"columns"`
	Rows        [][]any  `json:"rows"`
	RowCount    int64    `json:"row_count"`
	Truncated   bool     `json:"truncated"`
	ColumnTypes []string `json:"column_types"`
}

func restQuery(t *testing.T, s *ts.Server, body map[string]any) (restAnswer, int) {
	t.Helper()
	res := s.REST(t, http.MethodPost, "/api/query", s.AdminToken, body)
	require.Equal(t, http.StatusOK, res.Status, "%.300s", res.Body)
	var a restAnswer
	res.JSON(t, &a)
	return a, len(res.Body)
}

// A large answer arrives whole, in order, over REST and every RPC protocol
// and codec; with a small byte limit it is cut at a row boundary within the
// limit (counted in encoded bytes) and marked truncated.
func TestQueryLargeAnswer(t *testing.T) {
	const total = 200_000
	table := fmt.Sprintf(`SELECT i AS id, 'row ' || i AS label, i * 0.5 AS half, DATE '2026-01-01' + (i %% 365)::INTEGER AS day FROM range(%d) t(i)`, total)
	check := func(t *testing.T, rows int64, id func(i int) float64, label func(i int) string) {
		for _, i := range []int{0, 1, int(rows) / 2, int(rows) - 1} {
			require.EqualValues(t, i, id(i), "row %d", i)
			require.Equal(t, fmt.Sprintf("row %d", i), label(i), "row %d", i)
		}
	}
	const sql = `SELECT id, label, half, day FROM numbers ORDER BY id`

	t.Run("whole", func(t *testing.T) {
		s := ts.New(t)
		s.AddTable(t, "big", "numbers", table)
		s.Rebuild(t)
		a, _ := restQuery(t, s, map[string]any{"sql": sql, "limit": total})
		require.Len(t, a.Rows, total)
		require.EqualValues(t, total, a.RowCount)
		require.False(t, a.Truncated)
		require.Equal(t, []string{"BIGINT", "VARCHAR", "DECIMAL(21,1)", "DATE"}, a.ColumnTypes)
		check(t, total, func(i int) float64 { return a.Rows[i][0].(float64) }, func(i int) string { return a.Rows[i][1].(string) })
		for _, v := range rpcVariants {
			res, err := v.client(s, s.AdminToken).Query(context.Background(), &agnesv1.QueryRequest{Sql: sql, Limit: total})
			require.NoError(t, err, v.name)
			require.Len(t, res.GetRows(), total, v.name)
			require.EqualValues(t, total, res.GetRowCount(), v.name)
			require.False(t, res.GetTruncated(), v.name)
			require.Equal(t, a.ColumnTypes, res.GetColumnTypes(), v.name)
			check(t, total, func(i int) float64 { return res.GetRows()[i].GetValues()[0].GetNumberValue() },
				func(i int) string { return res.GetRows()[i].GetValues()[1].GetStringValue() })
			require.Equal(t, []any{float64(total - 1), fmt.Sprintf("row %d", total-1), a.Rows[total-1][2], a.Rows[total-1][3]},
				res.GetRows()[total-1].AsSlice(), v.name)
		}
	})

	t.Run("byte limit", func(t *testing.T) {
		const limit = 1 << 20
		s := ts.New(t, ts.WithConfig(func(c *config.Config) { c.Query.MaxBytes = limit }))
		s.AddTable(t, "big", "numbers", table)
		s.Rebuild(t)
		a, size := restQuery(t, s, map[string]any{"sql": sql, "limit": total})
		require.True(t, a.Truncated)
		require.EqualValues(t, len(a.Rows), a.RowCount)
		require.Greater(t, len(a.Rows), 10_000, "a 1 MiB answer holds many rows")
		require.Less(t, len(a.Rows), total)
		require.LessOrEqual(t, size, limit+200, "rows within the limit, plus the answer's head and tail")
		check(t, a.RowCount, func(i int) float64 { return a.Rows[i][0].(float64) }, func(i int) string { return a.Rows[i][1].(string) })
		for _, v := range rpcVariants {
			res, err := v.client(s, s.AdminToken).Query(context.Background(), &agnesv1.QueryRequest{Sql: sql, Limit: total})
			require.NoError(t, err, v.name)
			require.True(t, res.GetTruncated(), v.name)
			require.EqualValues(t, len(res.GetRows()), res.GetRowCount(), v.name)
			require.Greater(t, len(res.GetRows()), 10_000, v.name)
			check(t, res.GetRowCount(), func(i int) float64 { return res.GetRows()[i].GetValues()[0].GetNumberValue() },
				func(i int) string { return res.GetRows()[i].GetValues()[1].GetStringValue() })
		}
		// The row limit still cuts first where it is lower.
		a, _ = restQuery(t, s, map[string]any{"sql": sql, "limit": 10})
		require.Len(t, a.Rows, 10)
		require.True(t, a.Truncated)
	})
}

// valuesSQL has a column of each kind of value the API formats.
const valuesSQL = `SELECT 1::TINYINT AS i8, 9007199254740993::BIGINT AS big, 42::UBIGINT AS u, 2.5::DOUBLE AS d,
	'nan'::DOUBLE AS nan, 1e-9::DOUBLE AS tiny, 1.25::FLOAT AS f, 12.30::DECIMAL(10,2) AS dec,
	-0.005::DECIMAL(10,3) AS neg, 3::HUGEINT AS huge, 170141183460469231731687303715884105727::HUGEINT AS hugemax,
	-12345678901234567890123::BIGNUM AS bignum, '101'::BIT AS bits,
	DATE '2026-03-04' AS day, TIMESTAMP '2026-03-04 05:06:07.5' AS ts, TIMESTAMPTZ '2026-03-04 05:06:07+00' AS tstz,
	TIME '01:02:03' AS tm, 'a"b\c' || chr(10) || 'ünïcødé' || chr(1) AS s, true AS b, NULL::INTEGER AS n,
	[1, 2] AS l, [DATE '2026-01-02'] AS days, {'k': 'v', 'n': 1.50::DECIMAL(4,2)} AS st, MAP {'a': 1} AS m,
	'e7a0d1b4-1c8e-4f36-9d51-0a7b3f2c4d5e'::UUID AS id, '\xAA'::BLOB AS bl, INTERVAL 90 MINUTE AS iv,
	'{"x": [1, 2]}'::JSON AS js, 'b'::ENUM('a', 'b') AS e`

// The values of valuesSQL in the API's conventions.
var wantValues = []any{float64(1), "9007199254740993", float64(42), 2.5,
	"NaN", 1e-9, 1.25, "12.30",
	"-0.005", float64(3), "170141183460469231731687303715884105727",
	"-12345678901234567890123", "101",
	"2026-03-04", "2026-03-04 05:06:07.5", "2026-03-04 05:06:07Z",
	"01:02:03", "a\"b\\c\nünïcødé\x01", true, nil,
	"[1,2]", `["2026-01-02"]`, `{"k":"v","n":"1.50"}`, `{"a":1}`,
	"e7a0d1b4-1c8e-4f36-9d51-0a7b3f2c4d5e", `\xaa`, "01:30:00",
	`{"x": [1, 2]}`, "b"}

// Every route and protocol writes a value the same way: one formatter.
func TestQueryValuesOverEveryProtocol(t *testing.T) {
	s := shop(t)
	a, _ := restQuery(t, s, map[string]any{"sql": valuesSQL})
	require.Len(t, a.Rows, 1)
	require.Len(t, wantValues, len(a.Columns))
	for i, want := range wantValues {
		require.Equal(t, want, a.Rows[0][i], "REST, column %s (%s)", a.Columns[i], a.ColumnTypes[i])
	}
	for _, v := range rpcVariants {
		res, err := v.client(s, s.AdminToken).Query(context.Background(), &agnesv1.QueryRequest{Sql: valuesSQL})
		require.NoError(t, err, v.name)
		require.Equal(t, a.ColumnTypes, res.GetColumnTypes(), v.name)
		for i, want := range wantValues {
			require.Equal(t, want, res.GetRows()[0].GetValues()[i].AsInterface(), "%s, column %s", v.name, a.Columns[i])
		}
		// The JSON format of the stream.
		stream, err := v.client(s, s.AdminToken).QueryStream(context.Background(), &agnesv1.QueryStreamRequest{
			Sql: valuesSQL, Format: agnesv1.ResultFormat_RESULT_FORMAT_JSON})
		require.NoError(t, err, v.name)
		var rows []*structpb.ListValue
		for stream.Receive() {
			rows = append(rows, stream.Msg().GetBatch().GetRows()...)
		}
		require.NoError(t, stream.Err(), v.name)
		require.Len(t, rows, 1, v.name)
		for i, want := range wantValues {
			require.Equal(t, want, rows[0].GetValues()[i].AsInterface(), "%s stream, column %s", v.name, a.Columns[i])
		}
	}
	// The REST stream.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/query/stream", strings.NewReader(`{"sql": `+jsonString(valuesSQL)+`}`))
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	hres, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer hres.Body.Close()
	sc := bufio.NewScanner(hres.Body)
	var row []any
	for sc.Scan() {
		var line struct {
			Result struct {
				Batch *struct {
					Rows [][]any `json:"rows"`
				} `json:"batch"`
			} `json:"result"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		if line.Result.Batch != nil {
			row = line.Result.Batch.Rows[0]
		}
	}
	require.Equal(t, wantValues, row)
}

// POST /api/query's errors keep their REST shape: status, detail, code.
func TestQueryRESTErrors(t *testing.T) {
	s := shop(t, ts.WithConfig(func(c *config.Config) { c.MaxBodyBytes = 4096 }))
	for _, c := range []struct {
		body   any
		token  string
		status int
		code   string
		detail string
	}{
		{map[string]any{"sql": "SELECT 1"}, "", http.StatusUnauthorized, "unauthenticated", ""},
		{map[string]any{}, s.UserToken, http.StatusBadRequest, "invalid_argument", "sql is required"},
		{`{"sql": `, s.UserToken, http.StatusBadRequest, "invalid_argument", "malformed JSON body"},
		{map[string]any{"sql": "SELECT 1", "limit": -1}, s.UserToken, http.StatusBadRequest, "invalid_argument", "limit must not be negative, got -1"},
		{map[string]any{"sql": "SELECT * FROM customers"}, s.UserToken, http.StatusForbidden, "permission_denied", "access denied to table 'customers'"},
		{map[string]any{"sql": "SELECT " + strings.Repeat("1+", 3000) + "1"}, s.UserToken, http.StatusRequestEntityTooLarge, "resource_exhausted", "request body too large (max 4096 bytes)"},
	} {
		res := s.REST(t, http.MethodPost, "/api/query", c.token, c.body)
		require.Equal(t, c.status, res.Status, "%v: %s", c.body, res.Body)
		detail, code := res.Error(t)
		require.Equal(t, c.code, code)
		require.Contains(t, detail, c.detail)
	}
}
