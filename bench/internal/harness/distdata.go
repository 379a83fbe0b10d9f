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
	"sync"
	"time"

	"github.com/agnesdata/agnes/connectors/extract"
)

// The distribution data set (scenarios H, I, J): many tiny tables for the
// manifest and for agnes pull, and one ~200 MB table for the download. It
// lives in its own DATA_DIR, served by its own agnes-server.
const (
	distLayout     = "agnes-bench dist data v1"
	distSources    = 10  // sources dist00 … dist09
	distPerSource  = 500 // tables per source: 5,000 tables in all
	distPullPerSrc = 100 // J: 100 tables of each source are granted (1,000; see PullTables)
	bulkSource     = "bulk"
	bulkTable      = "bulk_200mb"
	bulkTarget     = 200 << 20 // bytes of the download file
	bulkFirstRows  = 6_100_000 // first guess of the rows that make bulkTarget (≈ 34.4 bytes a row)
)

func distSource(s int) string   { return fmt.Sprintf("dist%02d", s) }
func distTable(s, i int) string { return fmt.Sprintf("d%02d_t%03d", s, i) }

// tinySQL is the query of tiny table number k (5 rows); version 0 is the
// generated data, J rewrites tables with other versions (and back).
func tinySQL(k, version int) string {
	return fmt.Sprintf(`SELECT i AS id, %d AS k, 'row ' || i AS name, %d AS version FROM range(5) t(i)`, k, version)
}

// bulkSQL makes rows of pseudo-random doubles and hex strings (deterministic:
// hash of the row number), which zstd cannot shrink much: about 36 bytes a
// row in Parquet.
func bulkSQL(rows int64) string {
	return fmt.Sprintf(`SELECT i AS id, hash(i)::DOUBLE AS x, hash(i + 1000000007)::DOUBLE AS y, md5(i::VARCHAR) AS s FROM range(%d) t(i)`, rows)
}

// DistDataset is the generated distribution data.
type DistDataset struct {
	Dir     string // cache directory of this spec (manifest.json, data/)
	DataDir string // the server's DATA_DIR
	// Tables are the 5,000 tiny tables, source by source.
	Tables []string
	// PullTables are the 1,000 tables J's user is granted (a subset of
	// Tables): table i of each source with i mod 20 < 4, which are exactly
	// the tables H's groups 0–3 grant (see hGrants).
	PullTables []string
	BulkPath   string // the download file (Parquet of table bulk_200mb)
	BulkBytes  int64
	BulkRows   int64
	Reused     bool
	Took       time.Duration
}

type distManifest struct {
	Spec     string    `json:"spec"`
	Created  time.Time `json:"created"`
	BulkRows int64     `json:"bulk_rows"`
}

// tableIndex is the k of tinySQL for table i of source s.
func tableIndex(s, i int) int { return s*distPerSource + i }

// PrepareDistData makes sure root/dist holds the distribution data set,
// reusing it when its manifest matches (and every extract validates) and
// building it otherwise (or when force).
func PrepareDistData(ctx context.Context, root string, force bool, logf func(string, ...any)) (*DistDataset, error) {
	spec := strings.Join([]string{distLayout, tinySQL(-1, -1), bulkSQL(-1),
		fmt.Sprint(distSources, distPerSource, distPullPerSrc, bulkTarget)}, "\n")
	sum := sha256.Sum256([]byte(spec))
	dir := filepath.Join(root, "dist")
	d := &DistDataset{Dir: dir, DataDir: filepath.Join(dir, "data")}
	d.BulkPath = filepath.Join(d.DataDir, "extracts", bulkSource, extract.DataDir, bulkTable+".parquet")
	for s := range distSources {
		for i := range distPerSource {
			d.Tables = append(d.Tables, distTable(s, i))
			if i%hGroups < jGroups {
				d.PullTables = append(d.PullTables, distTable(s, i))
			}
		}
	}
	want := distManifest{Spec: hex.EncodeToString(sum[:])}
	if !force {
		var have distManifest
		if b, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err == nil && json.Unmarshal(b, &have) == nil &&
			have.Spec == want.Spec && d.complete() {
			t0 := time.Now()
			if d.valid(logf) {
				st, _ := os.Stat(d.BulkPath)
				d.BulkBytes, d.BulkRows, d.Reused = st.Size(), have.BulkRows, true
				logf("data: reusing %s (built %s; validated in %s)", dir, have.Created.Format(time.RFC3339), time.Since(t0).Round(time.Millisecond))
				return d, nil
			}
		}
	}
	start := time.Now()
	logf("data: building %s (%d sources × %d tiny tables + a %s table; cached for later runs)", dir, distSources, distPerSource, mb(bulkTarget))
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := d.build(ctx, logf); err != nil {
		return nil, fmt.Errorf("build distribution data: %w", err)
	}
	want.Created, want.BulkRows = time.Now().UTC(), d.BulkRows
	b, _ := json.MarshalIndent(want, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		return nil, err
	}
	d.Took = time.Since(start)
	logf("data: distribution data built in %s", d.Took.Round(time.Millisecond))
	return d, nil
}

func (d *DistDataset) complete() bool {
	paths := []string{d.BulkPath, filepath.Join(d.DataDir, "extracts", bulkSource, extract.DBFile)}
	for s := range distSources {
		paths = append(paths, filepath.Join(d.DataDir, "extracts", distSource(s), extract.DBFile),
			filepath.Join(d.DataDir, "extracts", distSource(s), extract.DataDir, distTable(s, distPerSource-1)+".parquet"))
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// valid validates every extract and checks that each source declares all
// its tables (a run interrupted while J rewrote a table leaves a valid
// extract with another version of that table, which is fine).
func (d *DistDataset) valid(logf func(string, ...any)) bool {
	dirs := []string{filepath.Join(d.DataDir, "extracts", bulkSource)}
	for s := range distSources {
		dirs = append(dirs, filepath.Join(d.DataDir, "extracts", distSource(s)))
	}
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, dir := range dirs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rep, err := extract.Validate(dir)
			if err == nil && filepath.Base(dir) != bulkSource && len(rep.Contents.Tables) != distPerSource {
				err = fmt.Errorf("%s declares %d tables, want %d", dir, len(rep.Contents.Tables), distPerSource)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		logf("data: cached distribution extract no longer valid, rebuilding: %v", err)
		return false
	}
	return true
}

func (d *DistDataset) build(ctx context.Context, logf func(string, ...any)) error {
	t0 := time.Now()
	// Two sources at a time (the machine has two cores); inside a source, one
	// Writer, one WriteQuery per table and a single Update at the end.
	errs := make([]error, distSources)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for s := range distSources {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[s] = d.writeSource(ctx, s)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logf("data: %d tiny tables in %d sources, %s", len(d.Tables), distSources, time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	rows := int64(bulkFirstRows)
	for attempt := 1; ; attempt++ {
		f, err := writeTable(ctx, filepath.Join(d.DataDir, "extracts", bulkSource), bulkTable, bulkSQL(rows), "",
			fmt.Sprintf("download benchmark table, %d rows of pseudo-random doubles and strings", rows))
		if err != nil {
			return err
		}
		d.BulkBytes, d.BulkRows = f.SizeBytes, f.Rows
		dev := float64(f.SizeBytes)/bulkTarget - 1
		logf("data: %s.%s: %d rows, %s (%+.1f%% of the target), %s", bulkSource, bulkTable, f.Rows, mb(f.SizeBytes), 100*dev, time.Since(t0).Round(time.Millisecond))
		if dev >= -0.05 && dev <= 0.05 {
			return nil
		}
		if attempt == 3 {
			return fmt.Errorf("%s is %s after 3 attempts, want %s ± 5%%", bulkTable, mb(f.SizeBytes), mb(bulkTarget))
		}
		rows = int64(float64(rows) * bulkTarget / float64(f.SizeBytes))
	}
}

func (d *DistDataset) writeSource(ctx context.Context, s int) (err error) {
	w, err := extract.NewWriter(filepath.Join(d.DataDir, "extracts", distSource(s)))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, w.Close()) }()
	tables := make([]extract.Table, 0, distPerSource)
	for i := range distPerSource {
		f, err := w.WriteQuery(ctx, distTable(s, i), tinySQL(tableIndex(s, i), 0))
		if err != nil {
			return err
		}
		tables = append(tables, extract.Table{Meta: f.Meta("tiny distribution benchmark table")})
	}
	return w.Update(ctx, tables...)
}

// rewriteTables rewrites tables (by name) with the given version of their
// data, one Writer and one Update per source, as a connector's sync would.
func (d *DistDataset) rewriteTables(ctx context.Context, tables []string, version int) error {
	bySource := map[int][]int{}
	for _, t := range tables {
		var s, i int
		if _, err := fmt.Sscanf(t, "d%02d_t%03d", &s, &i); err != nil {
			return fmt.Errorf("table %q: %w", t, err)
		}
		bySource[s] = append(bySource[s], i)
	}
	for s, idx := range bySource {
		if err := func() (err error) {
			w, err := extract.NewWriter(filepath.Join(d.DataDir, "extracts", distSource(s)))
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, w.Close()) }()
			var metas []extract.Table
			for _, i := range idx {
				f, err := w.WriteQuery(ctx, distTable(s, i), tinySQL(tableIndex(s, i), version))
				if err != nil {
					return err
				}
				metas = append(metas, extract.Table{Meta: f.Meta("tiny distribution benchmark table")})
			}
			return w.Update(ctx, metas...)
		}(); err != nil {
			return err
		}
	}
	return nil
}

// removeStrayExtracts deletes source folders in the data set's extracts/
// that are not its own (a demo source synced by a server started with the
// demo on), so the server attaches exactly the data set.
func (d *DistDataset) removeStrayExtracts(logf func(string, ...any)) error {
	entries, err := os.ReadDir(filepath.Join(d.DataDir, "extracts"))
	if err != nil {
		return err
	}
	own := map[string]bool{bulkSource: true}
	for s := range distSources {
		own[distSource(s)] = true
	}
	for _, e := range entries {
		if !own[e.Name()] {
			logf("data: removing %s from the distribution data (not part of it)", e.Name())
			if err := os.RemoveAll(filepath.Join(d.DataDir, "extracts", e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
