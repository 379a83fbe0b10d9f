package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors/extract"
)

// dataLayout changes whenever the generated data or its layout changes, so
// that a cached data set from an older harness is rebuilt.
const dataLayout = "agnes-bench data v1"

// The big table: one source "sales" with one table "big".
const (
	bigSource = "sales"
	bigTable  = "big"
)

func bigSQL(rows int64) string {
	return fmt.Sprintf(`SELECT i AS id, i %% 1000 AS customer_id, (i %% 97) * 1.25 AS amount, 'c' || (i %% 10) AS category,
	TIMESTAMP '2026-01-01' + INTERVAL (i %% 86400) SECOND AS ts FROM range(%d) t(i)`, rows)
}

// smallSQL is the table of each small source.
const smallSQL = `SELECT i AS id, i % 10 AS k, (i * 0.5)::DOUBLE AS v, 'x' || i AS name FROM range(1000) t(i)`

func smallSource(i int) string { return fmt.Sprintf("src%02d", i) }
func smallTable(i int) string  { return fmt.Sprintf("small%02d", i) }

// Dataset is the generated data: two DATA_DIRs sharing nothing but content.
type Dataset struct {
	Dir     string // the cache directory of this spec
	ManyDir string // DATA_DIR with the big source and the small ones
	OneDir  string // DATA_DIR with only the big source
	// BigParquet is the Parquet of table big in ManyDir, which the in-process
	// and plain baselines read.
	BigParquet  string
	BigBytes    int64
	Rows        int64
	SmallTables []string
	Reused      bool
	Took        time.Duration
}

// Sources is the number of extracts of the many-source server.
func (d *Dataset) Sources() int { return 1 + len(d.SmallTables) }

type manifest struct {
	Spec    string    `json:"spec"`
	Created time.Time `json:"created"`
}

// PrepareData makes sure root/rows-<n> holds the data of this spec, reusing
// it when its manifest matches and rebuilding it otherwise (or when force).
func PrepareData(ctx context.Context, root string, rows int64, small int, force bool, logf func(string, ...any)) (*Dataset, error) {
	spec := strings.Join([]string{dataLayout, bigSQL(rows), smallSQL, fmt.Sprint(small)}, "\n")
	sum := sha256.Sum256([]byte(spec))
	dir := filepath.Join(root, fmt.Sprintf("rows-%d", rows))
	d := &Dataset{
		Dir: dir, ManyDir: filepath.Join(dir, "many"), OneDir: filepath.Join(dir, "one"),
		Rows: rows,
	}
	d.BigParquet = filepath.Join(d.ManyDir, "extracts", bigSource, extract.DataDir, bigTable+".parquet")
	for i := 1; i <= small; i++ {
		d.SmallTables = append(d.SmallTables, smallTable(i))
	}
	want := manifest{Spec: hex.EncodeToString(sum[:])}

	if !force {
		var have manifest
		if b, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err == nil && json.Unmarshal(b, &have) == nil &&
			have.Spec == want.Spec && d.complete() && d.valid(logf) {
			d.Reused = true
			st, _ := os.Stat(d.BigParquet)
			d.BigBytes = st.Size()
			logf("data: reusing %s (built %s)", dir, have.Created.Format(time.RFC3339))
			return d, nil
		}
	}
	start := time.Now()
	logf("data: building %s (%d rows + %d small sources; cached for later runs)", dir, rows, small)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := d.build(ctx, rows, small, logf); err != nil {
		return nil, fmt.Errorf("build data: %w", err)
	}
	want.Created = time.Now().UTC()
	b, _ := json.MarshalIndent(want, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		return nil, err
	}
	st, err := os.Stat(d.BigParquet)
	if err != nil {
		return nil, err
	}
	d.BigBytes = st.Size()
	d.Took = time.Since(start)
	logf("data: built in %s", d.Took.Round(time.Millisecond))
	return d, nil
}

// complete checks that every extract the spec needs is there.
func (d *Dataset) complete() bool {
	paths := []string{
		d.BigParquet,
		filepath.Join(d.ManyDir, "extracts", bigSource, extract.DBFile),
		filepath.Join(d.OneDir, "extracts", bigSource, extract.DBFile),
		filepath.Join(d.OneDir, "extracts", bigSource, extract.DataDir, bigTable+".parquet"),
	}
	for i := range d.SmallTables {
		paths = append(paths, filepath.Join(d.ManyDir, "extracts", smallSource(i+1), extract.DBFile))
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// valid runs extract.Validate on every cached extract, so that data written
// under an older extract contract is rebuilt rather than served broken.
func (d *Dataset) valid(logf func(string, ...any)) bool {
	for _, root := range []string{d.ManyDir, d.OneDir} {
		dirs, err := filepath.Glob(filepath.Join(root, "extracts", "*"))
		if err != nil {
			return false
		}
		for _, dir := range dirs {
			if _, err := extract.Validate(dir); err != nil {
				logf("data: cached extract no longer valid, rebuilding: %v", err)
				return false
			}
		}
	}
	return true
}

func (d *Dataset) build(ctx context.Context, rows int64, small int, logf func(string, ...any)) error {
	// The big table, written by DuckDB through the extract Writer (COPY ... TO
	// parquet), for the many-source server ...
	t0 := time.Now()
	big, err := writeTable(ctx, filepath.Join(d.ManyDir, "extracts", bigSource), bigTable, bigSQL(rows), "",
		fmt.Sprintf("benchmark table, %d rows", rows))
	if err != nil {
		return err
	}
	logf("data: %s.%s: %d rows, %s, %s", bigSource, bigTable, big.Rows, mb(big.SizeBytes), time.Since(t0).Round(time.Millisecond))
	// ... and the same file for the one-source server, in its own DATA_DIR (the
	// engine allows reads only inside each source's own data/ folder).
	if _, err := writeTable(ctx, filepath.Join(d.OneDir, "extracts", bigSource), bigTable, "", big.Path,
		fmt.Sprintf("benchmark table, %d rows", rows)); err != nil {
		return err
	}
	t0 = time.Now()
	for i := 1; i <= small; i++ {
		if _, err := writeTable(ctx, filepath.Join(d.ManyDir, "extracts", smallSource(i)), smallTable(i), smallSQL, "",
			"small benchmark table"); err != nil {
			return err
		}
	}
	logf("data: %d small sources, %s", small, time.Since(t0).Round(time.Millisecond))
	return nil
}

// writeTable writes one table into the extract at dir, from a query or a
// file, and records it in extract.duckdb.
func writeTable(ctx context.Context, dir, table, query, file, description string) (f extract.File, err error) {
	w, err := extract.NewWriter(dir)
	if err != nil {
		return f, err
	}
	defer func() { err = errors.Join(err, w.Close()) }()
	if file != "" {
		f, err = w.WriteFile(ctx, table, file)
	} else {
		f, err = w.WriteQuery(ctx, table, query)
	}
	if err != nil {
		return f, err
	}
	return f, w.Update(ctx, extract.Table{Meta: f.Meta(description)})
}
