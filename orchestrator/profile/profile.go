package profile

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Profile describes a table's data.
type Profile struct {
	RowCount int64
	// SampledRows is how many rows TopValues, Histogram and SampleValues
	// were counted over: RowCount, or about Options.SampleRows (a random
	// sample) when the table has more rows than that; 0 when no column has
	// them.
	SampledRows int64
	Columns     []Column
}

// Column describes one column. Text values (Min, Max, TopValues,
// SampleValues) are DuckDB's text form cut to 256 characters; timestamps
// with time zone are shown in UTC.
type Column struct {
	Name string
	Type string // DuckDB type name
	// NullPct is the share of NULLs, 0..100; 0 for an empty table.
	NullPct float64
	// DistinctCount is approximate (approx_count_distinct, at most the
	// non-NULL count). DuckDB's sketch is small: expect errors of up to
	// about 25%, exact only for a handful of values.
	DistinctCount int64
	// Min and Max are empty for types without a meaningful order (LIST,
	// STRUCT, MAP, BLOB...) and for columns without a non-NULL value. Text
	// is compared byte-wise.
	Min, Max string
	// Mean and Stddev (sample standard deviation) are set for numeric
	// columns only; FLOAT and DOUBLE skip NaN and ±Inf. Stddev needs two
	// values.
	Mean, Stddev *float64
	// TopValues are the most frequent non-NULL values, most frequent first,
	// ties by value; counts are within the sample (see Profile.SampledRows).
	TopValues []ValueCount
	// Histogram has equi-width bins between the exact min and max, for
	// numeric columns; its counts are within the sample and add up to the
	// sample's non-NULL (and, for FLOAT and DOUBLE, finite) values. A
	// column whose values are all equal gets a single bin.
	Histogram []Bin
	// SampleValues are up to 5 distinct non-NULL values from the sample,
	// picked by hash: spread over the values rather than the smallest, and
	// the same on every run over the same unsampled data.
	SampleValues []string
}

// ValueCount is a value and how often it occurs.
type ValueCount struct {
	Value string
	Count int64
}

// Bin is one histogram bin: Lower <= v < Upper, and the last bin also
// includes its Upper.
type Bin struct {
	Lower, Upper float64
	Count        int64
}

// Options tunes a Profiler. The zero value is usable.
type Options struct {
	// TopK is how many top values to keep. Default 10.
	TopK int
	// Bins is the number of histogram bins. Default 10.
	Bins int
	// SampleRows is about how many rows top values, histograms and sample
	// values are computed from on bigger tables (a Bernoulli sample: each
	// row kept with probability SampleRows/RowCount). Counts, NULLs,
	// min/max, mean and stddev are always exact over all rows. Default
	// 200_000.
	SampleRows int64
	// MemoryLimit is DuckDB's memory_limit for the profiler. Default
	// "512MB".
	MemoryLimit string
	// Threads is DuckDB's thread count. Default: half the CPUs, at least
	// one, since profiling runs in the background next to the query engine.
	Threads int
}

// ErrNoParquet is returned for a folder that holds no Parquet file.
var ErrNoParquet = errors.New("no parquet files")

// Defaults for Options.
const (
	defaultTopK        = 10
	defaultBins        = 10
	defaultSampleRows  = 200_000
	defaultMemoryLimit = "512MB"
	sampleValues       = 5
)

// Profiler owns a private in-memory DuckDB used only for profiling. It is
// safe for concurrent use.
type Profiler struct {
	db      *sql.DB
	opts    Options
	tempDir string
}

// New opens a Profiler. Close releases it.
func New(opts Options) (*Profiler, error) {
	if opts.TopK < 0 || opts.Bins < 0 || opts.SampleRows < 0 || opts.Threads < 0 {
		return nil, fmt.Errorf("profile: negative option in %+v", opts)
	}
	if opts.TopK == 0 {
		opts.TopK = defaultTopK
	}
	if opts.Bins == 0 {
		opts.Bins = defaultBins
	}
	if opts.SampleRows == 0 {
		opts.SampleRows = defaultSampleRows
	}
	if opts.MemoryLimit == "" {
		opts.MemoryLimit = defaultMemoryLimit
	}
	if opts.Threads == 0 {
		opts.Threads = max(1, runtime.NumCPU()/2)
	}
	// An in-memory DuckDB spills to ./.tmp by default; keep spills private.
	tempDir, err := os.MkdirTemp("", "agnes-profile-")
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	cfg := url.Values{
		"memory_limit":                 {opts.MemoryLimit},
		"threads":                      {strconv.Itoa(opts.Threads)},
		"preserve_insertion_order":     {"false"},
		"temp_directory":               {tempDir},
		"autoinstall_known_extensions": {"false"},
		"autoload_known_extensions":    {"false"},
	}
	connector, err := duckdb.NewConnector("?"+cfg.Encode(), func(conn driver.ExecerContext) error {
		// Timestamps with time zone print in the session's zone; make it fixed.
		_, err := conn.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil)
		return err
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("profile: open duckdb: %w", err), os.RemoveAll(tempDir))
	}
	return &Profiler{db: sql.OpenDB(connector), opts: opts, tempDir: tempDir}, nil
}

// Close closes the DuckDB and removes its temporary folder.
func (p *Profiler) Close() error {
	return errors.Join(p.db.Close(), os.RemoveAll(p.tempDir))
}

// ProfileFiles profiles Parquet data: one file path, or a directory (all
// *.parquet inside, recursively, skipping hidden files and folders, read
// by column name). Columns come from the files alone: key=value folder
// names are not turned into columns.
func (p *Profiler) ProfileFiles(ctx context.Context, path string) (*Profile, error) {
	files, err := parquetFiles(path)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	prof, err := p.profile(ctx, parquetSource(files))
	if err != nil {
		// A cancelled query's error wraps ctx.Err() (duckdb-go joins it).
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	return prof, nil
}

// parquetFiles lists the files behind path in lexical order.
func parquetFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// Hidden entries are temp files still being written, or not data.
		if p != path && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".parquet") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, ErrNoParquet
	}
	return files, nil
}

// parquetSource is the table function reading files. The list form reads
// each path literally, so names with glob characters are safe.
func parquetSource(files []string) string {
	quoted := make([]string, len(files))
	for i, f := range files {
		quoted[i] = quoteLiteral(f)
	}
	return "read_parquet([" + strings.Join(quoted, ", ") + "], union_by_name = true, hive_partitioning = false)"
}

// quoteIdent quotes a column name for SQL.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
