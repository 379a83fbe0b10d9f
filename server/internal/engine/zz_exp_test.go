package engine

import (
	"os"
	"strings"
	"fmt"
	"testing"
	"time"

	bindings "github.com/duckdb/duckdb-go-bindings"
)

func expOpen(t *testing.T) (bindings.Database, bindings.Connection) {
	var cfg bindings.Config
	bindings.CreateConfig(&cfg)
	defer bindings.DestroyConfig(&cfg)
	var db bindings.Database
	var msg string
	if bindings.OpenExt("", &db, cfg, &msg) == bindings.StateError {
		t.Fatal(msg)
	}
	var c bindings.Connection
	if bindings.Connect(db, &c) == bindings.StateError {
		t.Fatal("connect")
	}
	return db, c
}

func expStream(t *testing.T, c bindings.Connection, q string, maxChunks int) {
	var ps bindings.PreparedStatement
	if bindings.Prepare(c, q, &ps) == bindings.StateError {
		t.Log("prepare:", bindings.PrepareError(ps))
		bindings.DestroyPrepare(&ps)
		return
	}
	defer bindings.DestroyPrepare(&ps)
	start := time.Now()
	var pending bindings.PendingResult
	if bindings.PendingPreparedStreaming(ps, &pending) == bindings.StateError {
		t.Log("pending:", bindings.PendingError(pending))
		bindings.DestroyPending(&pending)
		return
	}
	var res bindings.Result
	st := bindings.ExecutePending(pending, &res)
	bindings.DestroyPending(&pending)
	defer bindings.DestroyResult(&res)
	if st == bindings.StateError {
		t.Log("exec:", bindings.ResultError(&res), bindings.ResultErrorType(&res))
		return
	}
	t.Logf("executed in %s streaming=%v", time.Since(start), bindings.ResultIsStreaming(res))
	n := 0
	for i := 0; i < maxChunks; i++ {
		ch := bindings.FetchChunk(res)
		if ch.Ptr == nil {
			t.Logf("nil chunk after %d: err=%q type=%v", i, bindings.ResultError(&res), bindings.ResultErrorType(&res))
			break
		}
		n += int(bindings.DataChunkGetSize(ch))
		if i == 0 {
			t.Logf("first chunk after %s, size %d", time.Since(start), n)
		}
		bindings.DestroyDataChunk(&ch)
	}
	t.Logf("%d rows in %s", n, time.Since(start))
}

func TestExpStreaming(t *testing.T) {
	db, c := expOpen(t)
	defer bindings.Close(&db)
	defer bindings.Disconnect(&c)
	expStream(t, c, "SELECT * FROM range(200000000) t(i)", 5)
	expStream(t, c, "SELECT 1", 5)
	// interrupt while idle, then query
	bindings.Interrupt(c)
	expStream(t, c, "SELECT 42", 5)
	// interrupt while running
	go func() { time.Sleep(200 * time.Millisecond); bindings.Interrupt(c) }()
	expStream(t, c, "SELECT count(*) FROM range(10000000000)", 5)
	expStream(t, c, "SELECT 43", 5)
	// interrupt during fetch of streaming
	go func() { time.Sleep(200 * time.Millisecond); bindings.Interrupt(c) }()
	expStream(t, c, "SELECT i FROM range(10000000000) t(i) WHERE i % 1000000000 = 999999999", 5)
	expStream(t, c, "SELECT 44", 5)
	fmt.Println()
}

func TestExpArrowTypes(t *testing.T) {
	db, c := expOpen(t)
	defer bindings.Close(&db)
	defer bindings.Disconnect(&c)
	q := `SELECT 1::TINYINT a, 2::UTINYINT b, 3::HUGEINT c, 4::UHUGEINT d, 1.5::DECIMAL(4,1) e, 1.5::DECIMAL(30,2) f,
	 'ab'::VARCHAR g, 'x'::BLOB h, gen_random_uuid() i, DATE '2024-01-02' j, TIME '12:34:56.789' k,
	 TIMETZ '12:34:56+02' l, TIMESTAMP '2024-01-02 03:04:05.123456' m, TIMESTAMPTZ '2024-01-02 03:04:05+01' n,
	 TIMESTAMP_NS '2024-01-02 03:04:05.123456789' o, TIMESTAMP_S '2024-01-02 03:04:05' p, TIMESTAMP_MS '2024-01-02 03:04:05.123' q,
	 INTERVAL '1 month 2 days 3 seconds' r, '101'::BIT s, 12345678901234567890123456789::BIGNUM tt, 'a'::ENUM('a','b') u,
	 [1,2] v, {'x': 1, 'y': 'z'} w, MAP {'k': 1} x, [1,2,3]::INTEGER[3] y, union_value(num := 2)::UNION(num INTEGER, str VARCHAR) z,
	 '{"a":1}'::JSON aa, NULL ab, 1.5::FLOAT ac, 2.5::DOUBLE ad, true ae, 'POINT(1 2)'::GEOMETRY af`
	var ps bindings.PreparedStatement
	if bindings.Prepare(c, q, &ps) == bindings.StateError {
		t.Fatal("prepare:", bindings.PrepareError(ps))
	}
	defer bindings.DestroyPrepare(&ps)
	var res bindings.Result
	if bindings.ExecutePreparedStreaming(ps, &res) == bindings.StateError {
		t.Fatal(bindings.ResultError(&res))
	}
	defer bindings.DestroyResult(&res)
	var opts bindings.ArrowOptions
	bindings.ConnectionGetArrowOptions(c, &opts)
	defer bindings.DestroyArrowOptions(&opts)
	n := bindings.ColumnCount(&res)
	var types []bindings.LogicalType
	var names []string
	for i := range n {
		types = append(types, bindings.ColumnLogicalType(&res, i))
		names = append(names, bindings.ColumnName(&res, i))
	}
	schema, ed := bindings.NewArrowSchema(opts, types, names)
	if bindings.ErrorDataHasError(ed) {
		t.Fatal(bindings.ErrorDataMessage(ed))
	}
	bindings.DestroyErrorData(&ed)
	ch := bindings.FetchChunk(res)
	rec, ed := bindings.DataChunkToArrowArray(opts, schema, ch)
	if bindings.ErrorDataHasError(ed) {
		t.Fatal(bindings.ErrorDataMessage(ed))
	}
	bindings.DestroyErrorData(&ed)
	bindings.DestroyDataChunk(&ch)
	for i, f := range schema.Fields() {
		t.Logf("%s: %v meta=%v alias=%q id=%v | %v", f.Name, f.Type, f.Metadata, bindings.LogicalTypeGetAlias(types[i]), bindings.GetTypeId(types[i]), rec.Column(i))
	}
	rec.Release()
}

func rss() string {
	b, _ := os.ReadFile("/proc/self/status")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(out, " ")
}

func TestExpLinger(t *testing.T) {
	db, c := expOpen(t)
	defer bindings.Close(&db)
	t.Log("start", rss())
	expStream(t, c, "SELECT i, i::VARCHAR s FROM range(30000000) t(i) ORDER BY i DESC", 2)
	t.Log("after early stop", rss(), "cpu", cpuDuring(500*time.Millisecond))
	var c2 bindings.Connection
	bindings.Connect(db, &c2)
	defer bindings.Disconnect(&c2)
	t.Log("duckdb MB", expScalar(t, c2, "SELECT sum(memory_usage_bytes)::BIGINT//1000000 FROM duckdb_memory()"))
	start := time.Now()
	if os.Getenv("DISC") != "" {
		bindings.Interrupt(c)
		bindings.Disconnect(&c)
		t.Log("disconnect took", time.Since(start), rss())
		bindings.Connect(db, &c)
	} else {
		expStream(t, c, "SELECT 1", 2)
		t.Log("next query took", time.Since(start), rss())
	}
	t.Log("duckdb MB", expScalar(t, c2, "SELECT sum(memory_usage_bytes)::BIGINT//1000000 FROM duckdb_memory()"))
	bindings.Disconnect(&c)
}

func expScalar(t *testing.T, c bindings.Connection, q string) string {
	var res bindings.Result
	if bindings.Query(c, q, &res) == bindings.StateError {
		defer bindings.DestroyResult(&res)
		return "ERR " + bindings.ResultError(&res)
	}
	defer bindings.DestroyResult(&res)
	ch := bindings.FetchChunk(res)
	defer bindings.DestroyDataChunk(&ch)
	opts := bindings.ResultGetArrowOptions(&res)
	defer bindings.DestroyArrowOptions(&opts)
	lt := bindings.ColumnLogicalType(&res, 0)
	defer bindings.DestroyLogicalType(&lt)
	sc, _ := bindings.NewArrowSchema(opts, []bindings.LogicalType{lt}, []string{"x"})
	rec, _ := bindings.DataChunkToArrowArray(opts, sc, ch)
	defer rec.Release()
	return rec.Column(0).ValueStr(0)
}
