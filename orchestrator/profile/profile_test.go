package profile

import (
	"context"
	"database/sql"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// duck is a separate DuckDB that writes the fixtures and computes the
// expected values independently of the Profiler.
func duck(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// lit is the test's own SQL string quoting, so the fixtures do not depend
// on the code under test.
func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func writeParquet(t testing.TB, db *sql.DB, query, path string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	_, err := db.Exec("COPY (" + query + ") TO " + lit(path) + " (FORMAT parquet)")
	require.NoError(t, err)
}

func newProfiler(t testing.TB, opts Options) *Profiler {
	t.Helper()
	p, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return p
}

func col(t testing.TB, p *Profile, name string) Column {
	t.Helper()
	for _, c := range p.Columns {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no column %q in %+v", name, p.Columns)
	return Column{}
}

func binTotal(bins []Bin) int64 {
	var n int64
	for _, b := range bins {
		n += b.Count
	}
	return n
}

// mixedQuery has one column of each kind, 1000 rows.
const mixedQuery = `SELECT
	CAST(i AS INTEGER) AS i_int,
	CAST(i * i AS DOUBLE) / 1000 AS d_double,
	CAST((i % 100) * 0.25 AS DECIMAL(10,2)) AS dec,
	CASE WHEN i % 10 = 0 THEN NULL WHEN i % 10 < 6 THEN 'apple' WHEN i % 10 < 9 THEN 'banana' ELSE 'cherry' END AS fruit,
	i % 4 = 0 AS flag,
	DATE '2024-01-01' + CAST(i % 366 AS INTEGER) AS day,
	TIMESTAMP '2024-01-01 00:00:00' + to_seconds(i) AS ts,
	TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i) AS tstz,
	CASE WHEN i % 2 = 0 THEN NULL ELSE [i, i + 1] END AS lst,
	{'a': i, 'b': 'x'} AS st,
	encode('b' || i) AS bin
FROM range(1000) r(i)`

func mixedFile(t testing.TB, db *sql.DB) string {
	path := filepath.Join(t.TempDir(), "mixed.parquet")
	writeParquet(t, db, mixedQuery, path)
	return path
}

func TestMixedTypes(t *testing.T) {
	db := duck(t)
	path := mixedFile(t, db)
	p := newProfiler(t, Options{})
	prof, err := p.ProfileFiles(context.Background(), path)
	require.NoError(t, err)

	require.EqualValues(t, 1000, prof.RowCount)
	require.EqualValues(t, 1000, prof.SampledRows)
	var names, types []string
	for _, c := range prof.Columns {
		names = append(names, c.Name)
		types = append(types, c.Type)
	}
	assert.Equal(t, []string{"i_int", "d_double", "dec", "fruit", "flag", "day", "ts", "tstz", "lst", "st", "bin"}, names)
	assert.Equal(t, []string{"INTEGER", "DOUBLE", "DECIMAL(10,2)", "VARCHAR", "BOOLEAN", "DATE", "TIMESTAMP",
		"TIMESTAMP WITH TIME ZONE", "BIGINT[]", "STRUCT(a BIGINT, b VARCHAR)", "BLOB"}, types)

	t.Run("by construction", func(t *testing.T) {
		i := col(t, prof, "i_int")
		assert.Equal(t, "0", i.Min)
		assert.Equal(t, "999", i.Max)
		assert.Zero(t, i.NullPct)
		require.NotNil(t, i.Mean)
		require.NotNil(t, i.Stddev)
		assert.InDelta(t, 499.5, *i.Mean, 1e-9)
		assert.InDelta(t, math.Sqrt(1000*1001/12.0), *i.Stddev, 1e-9) // sample stddev of 0..n-1
		assert.InEpsilon(t, 1000, i.DistinctCount, 0.3)
		require.Len(t, i.Histogram, 10)
		for k, b := range i.Histogram {
			assert.EqualValues(t, 100, b.Count, "bin %d", k)
			assert.InDelta(t, 99.9*float64(k), b.Lower, 1e-9)
		}
		assert.Equal(t, 999.0, i.Histogram[9].Upper)
		// All counts tie at 1: ties go by value, numerically.
		require.Len(t, i.TopValues, 10)
		for k, v := range i.TopValues {
			assert.Equal(t, ValueCount{Value: string(rune('0' + k)), Count: 1}, v)
		}

		f := col(t, prof, "fruit")
		assert.InDelta(t, 10, f.NullPct, 1e-9)
		assert.Equal(t, "apple", f.Min)
		assert.Equal(t, "cherry", f.Max)
		assert.Equal(t, []ValueCount{{"apple", 500}, {"banana", 300}, {"cherry", 100}}, f.TopValues)
		assert.EqualValues(t, 3, f.DistinctCount)
		assert.ElementsMatch(t, []string{"apple", "banana", "cherry"}, f.SampleValues)
		assert.Nil(t, f.Mean)
		assert.Nil(t, f.Histogram)

		b := col(t, prof, "flag")
		assert.Equal(t, "false", b.Min)
		assert.Equal(t, "true", b.Max)
		assert.Equal(t, []ValueCount{{"false", 750}, {"true", 250}}, b.TopValues)
		assert.Nil(t, b.Mean)
		assert.Nil(t, b.Histogram)

		d := col(t, prof, "dec")
		assert.Equal(t, "0.00", d.Min)
		assert.Equal(t, "24.75", d.Max)
		require.NotNil(t, d.Mean)
		assert.InDelta(t, 12.375, *d.Mean, 1e-9)
		assert.Equal(t, ValueCount{"0.00", 10}, d.TopValues[0])
		assert.Equal(t, ValueCount{"0.25", 10}, d.TopValues[1])

		day := col(t, prof, "day")
		assert.Equal(t, "2024-01-01", day.Min)
		assert.Equal(t, "2024-12-31", day.Max)
		assert.Equal(t, ValueCount{"2024-01-01", 3}, day.TopValues[0]) // i % 366 < 268 occurs 3 times
		assert.Nil(t, day.Mean)
		assert.Nil(t, day.Stddev)
		assert.Nil(t, day.Histogram)

		ts := col(t, prof, "ts")
		assert.Equal(t, "2024-01-01 00:00:00", ts.Min)
		assert.Equal(t, "2024-01-01 00:16:39", ts.Max)
		assert.Nil(t, ts.Histogram)
		tz := col(t, prof, "tstz")
		assert.Equal(t, "2024-01-01 00:00:00+00", tz.Min)
		assert.Equal(t, "2024-01-01 00:16:39+00", tz.Max)

		for _, name := range []string{"lst", "st", "bin"} {
			c := col(t, prof, name)
			assert.Empty(t, c.Min, name)
			assert.Empty(t, c.Max, name)
			assert.Nil(t, c.Mean, name)
			assert.Nil(t, c.TopValues, name)
			assert.Nil(t, c.Histogram, name)
			assert.Nil(t, c.SampleValues, name)
		}
		assert.InDelta(t, 50, col(t, prof, "lst").NullPct, 1e-9)
		assert.InEpsilon(t, 500, col(t, prof, "lst").DistinctCount, 0.3)
		assert.Zero(t, col(t, prof, "st").NullPct)
		assert.InEpsilon(t, 1000, col(t, prof, "st").DistinctCount, 0.3)
		assert.InEpsilon(t, 1000, col(t, prof, "bin").DistinctCount, 0.3)
	})

	t.Run("against duckdb", func(t *testing.T) {
		src := "read_parquet(" + lit(path) + ")"
		for _, name := range []string{"i_int", "d_double", "dec"} {
			c := col(t, prof, name)
			var mean, stddev float64
			var nonNull int64
			var lo, hi string
			require.NoError(t, db.QueryRow("SELECT avg("+name+"), stddev_samp("+name+"), count("+name+"), min("+name+")::VARCHAR, max("+name+")::VARCHAR FROM "+src).
				Scan(&mean, &stddev, &nonNull, &lo, &hi))
			require.NotNil(t, c.Mean, name)
			assert.InDelta(t, mean, *c.Mean, 1e-9*math.Abs(mean), name)
			assert.InDelta(t, stddev, *c.Stddev, 1e-9*stddev, name)
			assert.Equal(t, lo, c.Min, name)
			assert.Equal(t, hi, c.Max, name)
			// Not sampled: the histogram holds every non-NULL value.
			assert.Equal(t, nonNull, binTotal(c.Histogram), name)
			assert.Len(t, c.Histogram, 10, name)
		}
		for _, c := range prof.Columns {
			var sketch, nonNull int64
			require.NoError(t, db.QueryRow("SELECT approx_count_distinct("+c.Name+"), count("+c.Name+") FROM "+src).Scan(&sketch, &nonNull))
			assert.Equal(t, min(sketch, nonNull), c.DistinctCount, c.Name)
		}
		for _, name := range []string{"i_int", "d_double", "dec", "fruit", "flag", "day", "ts", "tstz"} {
			c := col(t, prof, name)
			rows, err := db.Query("SELECT " + name + "::VARCHAR, count(*) FROM " + src + " WHERE " + name + " IS NOT NULL GROUP BY " + name + " ORDER BY count(*) DESC, " + name + " LIMIT 10")
			require.NoError(t, err)
			var want []ValueCount
			for rows.Next() {
				var v ValueCount
				require.NoError(t, rows.Scan(&v.Value, &v.Count))
				want = append(want, v)
			}
			require.NoError(t, rows.Err())
			assert.Equal(t, want, c.TopValues, name)

			// Sample values are distinct values of the column.
			var distinct int
			require.NoError(t, db.QueryRow("SELECT count(DISTINCT "+name+") FROM "+src).Scan(&distinct))
			assert.Len(t, c.SampleValues, min(5, distinct), name)
			seen := map[string]bool{}
			for _, v := range c.SampleValues {
				assert.False(t, seen[v], "%s: %q twice", name, v)
				seen[v] = true
				var n int
				require.NoError(t, db.QueryRow("SELECT count(*) FROM "+src+" WHERE "+name+"::VARCHAR = ?", v).Scan(&n))
				assert.Positive(t, n, "%s: sample %q is not in the data", name, v)
			}
		}
	})
}

func TestOptions(t *testing.T) {
	db := duck(t)
	path := mixedFile(t, db)
	p := newProfiler(t, Options{TopK: 2, Bins: 4, Threads: 1, MemoryLimit: "100MB"})
	prof, err := p.ProfileFiles(context.Background(), path)
	require.NoError(t, err)
	assert.Equal(t, []ValueCount{{"apple", 500}, {"banana", 300}}, col(t, prof, "fruit").TopValues)
	i := col(t, prof, "i_int")
	require.Len(t, i.Histogram, 4)
	assert.Equal(t, []int64{250, 250, 250, 250}, []int64{i.Histogram[0].Count, i.Histogram[1].Count, i.Histogram[2].Count, i.Histogram[3].Count})

	for _, bad := range []Options{{TopK: -1}, {Bins: -1}, {SampleRows: -1}, {Threads: -1}, {MemoryLimit: "lots"}} {
		_, err := New(bad)
		assert.Error(t, err, "%+v", bad)
	}
}

// stripFloats checks that Mean and Stddev agree within rounding (sums in
// another order) and clears them, so the rest compares exactly.
func stripFloats(t *testing.T, want, got *Profile) {
	t.Helper()
	for i := range want.Columns {
		w, g := &want.Columns[i], &got.Columns[i]
		for _, pair := range [][2]**float64{{&w.Mean, &g.Mean}, {&w.Stddev, &g.Stddev}} {
			if *pair[0] == nil || *pair[1] == nil {
				assert.Equal(t, *pair[0], *pair[1], w.Name)
			} else {
				assert.InDelta(t, **pair[0], **pair[1], 1e-9*math.Abs(**pair[0])+1e-12, w.Name)
			}
			*pair[0], *pair[1] = nil, nil
		}
	}
}

func TestPartitionedFolderEqualsFile(t *testing.T) {
	db := duck(t)
	file := mixedFile(t, db)
	dir := t.TempDir()
	writeParquet(t, db, "SELECT * FROM ("+mixedQuery+") WHERE i_int < 300", filepath.Join(dir, "part-0.parquet"))
	writeParquet(t, db, "SELECT * FROM ("+mixedQuery+") WHERE i_int >= 300 AND i_int < 700", filepath.Join(dir, "sub", "part-1.parquet"))
	writeParquet(t, db, "SELECT * FROM ("+mixedQuery+") WHERE i_int >= 700", filepath.Join(dir, "part-2.parquet"))
	// Neither a file still being written nor other files are data.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".part-3.parquet"), []byte("half written"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.txt"), []byte("hello"), 0o644))

	p := newProfiler(t, Options{})
	want, err := p.ProfileFiles(context.Background(), file)
	require.NoError(t, err)
	got, err := p.ProfileFiles(context.Background(), dir)
	require.NoError(t, err)
	stripFloats(t, want, got)
	assert.Equal(t, want, got)
}

func TestEmptyTable(t *testing.T) {
	db := duck(t)
	path := filepath.Join(t.TempDir(), "empty.parquet")
	writeParquet(t, db, "SELECT CAST(i AS INTEGER) AS a, CAST(i AS VARCHAR) AS b, [i] AS l FROM range(0) r(i)", path)
	prof, err := newProfiler(t, Options{}).ProfileFiles(context.Background(), path)
	require.NoError(t, err)
	assert.Equal(t, &Profile{Columns: []Column{
		{Name: "a", Type: "INTEGER"},
		{Name: "b", Type: "VARCHAR"},
		{Name: "l", Type: "BIGINT[]"},
	}}, prof)
}

func TestOnlyNestedColumns(t *testing.T) {
	db := duck(t)
	path := filepath.Join(t.TempDir(), "nested.parquet")
	writeParquet(t, db, "SELECT [i] AS l, {'a': i} AS s FROM range(10) r(i)", path)
	prof, err := newProfiler(t, Options{}).ProfileFiles(context.Background(), path)
	require.NoError(t, err)
	assert.EqualValues(t, 10, prof.RowCount)
	assert.Zero(t, prof.SampledRows)
	assert.Equal(t, []string{"l", "s"}, []string{prof.Columns[0].Name, prof.Columns[1].Name})
	assert.InEpsilon(t, 10, prof.Columns[0].DistinctCount, 0.3)
}

func TestNullsAndEdgeValues(t *testing.T) {
	db := duck(t)
	path := filepath.Join(t.TempDir(), "edge.parquet")
	writeParquet(t, db, `SELECT i AS id,
		CAST(NULL AS DOUBLE) AS nd, CAST(NULL AS VARCHAR) AS ns, CAST(NULL AS INTEGER[]) AS nl,
		CAST(7 AS INTEGER) AS seven,
		CASE WHEN i = 0 THEN 'NaN'::DOUBLE WHEN i = 1 THEN 'inf'::DOUBLE WHEN i = 2 THEN NULL ELSE i END AS f,
		CASE WHEN i = 0 THEN repeat('x', 1000) ELSE 'short' END AS long
		FROM range(100) r(i)`, path)
	prof, err := newProfiler(t, Options{}).ProfileFiles(context.Background(), path)
	require.NoError(t, err)

	for _, name := range []string{"nd", "ns", "nl"} {
		c := col(t, prof, name)
		assert.Equal(t, 100.0, c.NullPct, name)
		assert.Zero(t, c.DistinctCount, name)
		assert.Empty(t, c.Min, name)
		assert.Empty(t, c.Max, name)
		assert.Nil(t, c.Mean, name)
		assert.Nil(t, c.Stddev, name)
		assert.Nil(t, c.Histogram, name)
		assert.Nil(t, c.TopValues, name)
		assert.Nil(t, c.SampleValues, name)
	}

	seven := col(t, prof, "seven")
	assert.Equal(t, []Bin{{Lower: 7, Upper: 7, Count: 100}}, seven.Histogram)
	assert.Equal(t, 0.0, *seven.Stddev)
	assert.Equal(t, []string{"7"}, seven.SampleValues)

	// NaN and Inf stay in min/max and top values, not in the numbers.
	f := col(t, prof, "f")
	assert.InDelta(t, 1, f.NullPct, 1e-9)
	assert.Equal(t, "3.0", f.Min)
	assert.Equal(t, "nan", strings.ToLower(f.Max))
	assert.InDelta(t, 51.0, *f.Mean, 1e-9) // 3..99
	assert.EqualValues(t, 97, binTotal(f.Histogram))
	assert.Equal(t, 3.0, f.Histogram[0].Lower)
	assert.Equal(t, 99.0, f.Histogram[9].Upper)

	long := col(t, prof, "long")
	assert.Equal(t, strings.Repeat("x", maxText), long.Max)
	assert.Equal(t, ValueCount{strings.Repeat("x", maxText), 1}, long.TopValues[1])
}

func TestQuoting(t *testing.T) {
	db := duck(t)
	dir := filepath.Join(t.TempDir(), `it's a "dir" ünï`)
	path := filepath.Join(dir, "o'brien's [data].parquet")
	writeParquet(t, db, `SELECT i AS "my col", 'v' || (i % 3) AS "it's ""quoted""", i * 2 AS "ünï cødé 列",
		i AS "x"") FROM t; DROP TABLE y; --", i AS "a'b" FROM range(10) r(i)`, path)

	p := newProfiler(t, Options{})
	for _, target := range []string{path, dir} {
		prof, err := p.ProfileFiles(context.Background(), target)
		require.NoError(t, err, target)
		require.EqualValues(t, 10, prof.RowCount)
		assert.Equal(t, "9", col(t, prof, "my col").Max)
		assert.Equal(t, []ValueCount{{"v0", 4}, {"v1", 3}, {"v2", 3}}, col(t, prof, `it's "quoted"`).TopValues)
		assert.Equal(t, "18", col(t, prof, "ünï cødé 列").Max)
		assert.Equal(t, "9", col(t, prof, `x") FROM t; DROP TABLE y; --`).Max)
		assert.Equal(t, 4.5, *col(t, prof, "a'b").Mean)
	}
}

func TestErrors(t *testing.T) {
	db := duck(t)
	dir := t.TempDir()
	p := newProfiler(t, Options{})
	ctx := context.Background()

	_, err := p.ProfileFiles(ctx, filepath.Join(dir, "missing.parquet"))
	assert.ErrorIs(t, err, fs.ErrNotExist)

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.Mkdir(empty, 0o755))
	_, err = p.ProfileFiles(ctx, empty)
	assert.ErrorIs(t, err, ErrNoParquet)

	garbage := filepath.Join(dir, "garbage.parquet")
	require.NoError(t, os.WriteFile(garbage, []byte(strings.Repeat("not parquet ", 100)), 0o644))
	_, err = p.ProfileFiles(ctx, garbage)
	require.Error(t, err)
	assert.Contains(t, err.Error(), garbage)

	// A real file cut in half: footer gone.
	good := mixedFile(t, db)
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	truncated := filepath.Join(dir, "truncated.parquet")
	require.NoError(t, os.WriteFile(truncated, data[:len(data)/2], 0o644))
	_, err = p.ProfileFiles(ctx, truncated)
	require.Error(t, err)
	assert.Contains(t, err.Error(), truncated)

	// The Profiler still works after errors.
	_, err = p.ProfileFiles(ctx, good)
	assert.NoError(t, err)
}

// big is a shared 2M-row table with a high-cardinality string column.
var big struct {
	once sync.Once
	path string
	err  error
}

const bigRows = 2_000_000

func bigTable(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("2M-row table in -short mode")
	}
	big.once.Do(func() {
		dir, err := os.MkdirTemp("", "agnes-profile-test-")
		if err != nil {
			big.err = err
			return
		}
		big.path = filepath.Join(dir, "big.parquet")
		db, err := sql.Open("duckdb", "")
		if err != nil {
			big.err = err
			return
		}
		defer db.Close()
		_, big.err = db.Exec(`COPY (SELECT i AS id, md5(CAST(i AS VARCHAR)) AS h, i % 100 AS k,
			CASE WHEN i % 5 = 0 THEN NULL ELSE CAST(i % 1000 AS DOUBLE) / 10 END AS x
			FROM range(2000000) r(i)) TO ` + lit(big.path) + ` (FORMAT parquet)`)
	})
	require.NoError(t, big.err)
	return big.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if big.path != "" {
		os.RemoveAll(filepath.Dir(big.path))
	}
	os.Exit(code)
}

func TestBigTableSampled(t *testing.T) {
	path := bigTable(t)
	const sample = 100_000
	p := newProfiler(t, Options{SampleRows: sample})

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	prof, err := p.ProfileFiles(context.Background(), path)
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	// TotalAlloc only grows, so its growth bounds the peak heap growth.
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("2M rows in %s; Go allocated %d KB in total, heap %+d KB", took,
		allocated>>10, (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10)
	assert.Less(t, allocated, uint64(64<<20), "Go heap growth")
	assert.Less(t, took, time.Minute)

	require.EqualValues(t, bigRows, prof.RowCount)
	// A Bernoulli sample: its size is binomial, sd ≈ 300 here.
	require.InDelta(t, sample, prof.SampledRows, sample*0.03)

	// Exact stats are exact.
	id := col(t, prof, "id")
	assert.Equal(t, "0", id.Min)
	assert.Equal(t, "1999999", id.Max)
	assert.InDelta(t, 999999.5, *id.Mean, 1e-6)
	assert.InDelta(t, math.Sqrt(bigRows*(bigRows+1)/12.0), *id.Stddev, 1e-6)
	assert.InEpsilon(t, bigRows, id.DistinctCount, 0.3)
	h := col(t, prof, "h")
	assert.InEpsilon(t, bigRows, h.DistinctCount, 0.3)
	assert.Len(t, h.SampleValues, 5)
	x := col(t, prof, "x")
	assert.InDelta(t, 20, x.NullPct, 1e-9)
	assert.Equal(t, "0.1", x.Min)
	assert.Equal(t, "99.9", x.Max)

	// Distributions come from the sample: counts are sample counts.
	assert.Equal(t, prof.SampledRows, binTotal(id.Histogram))
	assert.InDelta(t, float64(prof.SampledRows)*0.8, binTotal(x.Histogram), sample*0.02)
	assert.Equal(t, 0.1, x.Histogram[0].Lower)
	k := col(t, prof, "k")
	require.Len(t, k.TopValues, 10)
	var top int64
	for i, v := range k.TopValues {
		// Each k is 1% of the table: about 1000 in the sample.
		assert.InDelta(t, sample/100, v.Count, sample/100*0.3, v.Value)
		if i > 0 {
			assert.LessOrEqual(t, v.Count, k.TopValues[i-1].Count)
		}
		top += v.Count
	}
	assert.Less(t, top, prof.SampledRows)
	assert.Len(t, h.TopValues, 10)
}

func TestCancelledContext(t *testing.T) {
	path := mixedFile(t, duck(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, err := newProfiler(t, Options{}).ProfileFiles(ctx, path)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), time.Second)
}

// TestCancelWhileScanning cancels while DuckDB scans 2M rows on one thread
// (about a second): the call returns soon after, with ctx's error.
func TestCancelWhileScanning(t *testing.T) {
	path := bigTable(t)
	p := newProfiler(t, Options{Threads: 1})
	ctx, cancel := context.WithCancel(context.Background())
	var at time.Time
	timer := time.AfterFunc(100*time.Millisecond, func() {
		at = time.Now()
		cancel()
	})
	defer timer.Stop()
	_, err := p.ProfileFiles(ctx, path)
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(at), 2*time.Second, "returned long after cancel")

	// The Profiler still works.
	db := duck(t)
	prof, err := p.ProfileFiles(context.Background(), mixedFile(t, db))
	require.NoError(t, err)
	assert.EqualValues(t, 1000, prof.RowCount)
}

func TestConcurrent(t *testing.T) {
	db := duck(t)
	path := mixedFile(t, db)
	p := newProfiler(t, Options{})
	want, err := p.ProfileFiles(context.Background(), path)
	require.NoError(t, err)

	const n = 4
	got := make([]*Profile, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = p.ProfileFiles(context.Background(), path) })
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		w := *want
		w.Columns = append([]Column(nil), want.Columns...)
		stripFloats(t, &w, got[i])
		assert.Equal(t, &w, got[i])
	}
}

func BenchmarkProfile(b *testing.B) {
	db := duck(b)
	path := filepath.Join(b.TempDir(), "bench.parquet")
	writeParquet(b, db, `SELECT i AS id, random() AS r, CAST(i % 10000 AS DECIMAL(12,2)) AS amount,
		'cat' || (i % 50) AS category, i % 3 = 0 AS flag, DATE '2020-01-01' + CAST(i % 2000 AS INTEGER) AS day,
		TIMESTAMP '2020-01-01' + to_seconds(i) AS ts, md5(CAST(i AS VARCHAR)) AS h
		FROM range(1000000) r(i)`, path)
	p := newProfiler(b, Options{})
	ctx := context.Background()
	for b.Loop() {
		if _, err := p.ProfileFiles(ctx, path); err != nil {
			b.Fatal(err)
		}
	}
}
