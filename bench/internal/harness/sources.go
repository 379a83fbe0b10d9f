package harness

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/bigquery/bqfake"
	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/keboola"
	"github.com/agnesdata/agnes/connectors/keboola/kbcfake"
	"github.com/agnesdata/agnes/internal/procfs"
)

// Scenarios M and N measure the company sources against fakes of their
// APIs on loopback:
//
//   - M: a Keboola sliced export of 1 M rows (8 gzip CSV slices served by
//     kbcfake) through the connector into Parquet (export, job polls,
//     downloads, typed conversion), in this process, against DuckDB's own
//     COPY (FROM read_csv(...)) TO parquet of the same slice files on local
//     disk; and this process's peak RSS growth over the scenario.
//   - N: a query over a remote BigQuery table through a running
//     agnes-server (sandbox, RBAC, translation, dry run, jobs.query, Arrow
//     answer) against the fake's own answer to the same jobs.query over
//     plain HTTP.

func (c Config) wantSources() bool { return slices.ContainsFunc([]string{"M", "N"}, c.want) }

// runSources runs scenarios M and N.
func (r *run) runSources(ctx context.Context) error {
	for _, s := range []struct {
		name string
		fn   func(context.Context) error
	}{{"M", r.keboolaExport}, {"N", r.bigQueryPushdown}} {
		if !r.cfg.want(s.name) {
			continue
		}
		if err := r.scenario(ctx, s.fn, s.name); err != nil {
			return err
		}
	}
	return nil
}

const exportRows, exportSlices = 1_000_000, 8

// exportTable is a table of generated rows typed by column metadata, with
// quotes, commas, newlines and non-ASCII in every tenth note.
func exportTable() kbcfake.Table {
	statuses := []string{"open", "pending", "shipped", "cancelled"}
	day := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	return kbcfake.Table{
		ID: "in.c-bench.events", Columns: []string{"id", "customer", "amount", "created_at", "status", "note"}, PrimaryKey: []string{"id"},
		ColumnMetadata: map[string][]kbcfake.Metadata{
			"id": {kbcfake.BaseType("user", "INTEGER")}, "amount": {kbcfake.BaseType("user", "NUMERIC"), {Key: "KBC.datatype.length", Value: "12,2", Provider: "user"}},
			"created_at": {kbcfake.BaseType("user", "TIMESTAMP")},
		},
		GeneratedRows: exportRows,
		Generate: func(i int) kbcfake.Row {
			at := day.Add(-time.Duration(i) * time.Second)
			note := "plain note"
			if i%10 == 0 {
				note = `a "quoted", multi-line` + "\nnote ž"
			}
			return kbcfake.Row{Values: []string{fmt.Sprint(i), fmt.Sprintf("customer_%d", i%5000), fmt.Sprintf("%d.%02d", i%100000, i%100),
				at.Format(time.DateTime), statuses[i%4], note}, Changed: at}
		},
	}
}

func (r *run) keboolaExport(ctx context.Context) error {
	work, err := os.MkdirTemp(r.cfg.OutDir, "keboola-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	f := kbcfake.New()
	defer f.Close()
	f.SetRowsPerSlice(exportRows / exportSlices)
	f.AddTable(exportTable())
	c, err := exportConnector(f.URL(), f.Token(), f.GCSEndpoint())
	if err != nil {
		return err
	}
	dir := filepath.Join(work, "kbc_bench")
	connector := func(ctx context.Context) error { return exportOnce(ctx, c, dir) }
	// The first export makes the fake generate and gzip the slices; later
	// ones are served from its cache, as Keboola serves a finished file.
	if err := connector(ctx); err != nil {
		return err
	}
	// Memory: one export in a process of its own, which does nothing else.
	mem, err := r.exportRSS(ctx, f, filepath.Join(work, "kbc_child"))
	if err != nil {
		return err
	}
	local := filepath.Join(work, "slices")
	if err := os.Mkdir(local, 0o755); err != nil {
		return err
	}
	var files []string
	var sliceBytes int64
	for i, s := range f.LastFileSlices() {
		p := filepath.Join(local, fmt.Sprintf("slice-%d.csv.gz", i))
		if err := os.WriteFile(p, s, 0o644); err != nil {
			return err
		}
		files = append(files, "'"+p+"'")
		sliceBytes += int64(len(s))
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	copySQL := "COPY (FROM read_csv([" + strings.Join(files, ", ") + `], header = false, auto_detect = false, delim = ',', quote = '"',
		escape = '"', new_line = '\n', columns = {'id': 'BIGINT', 'customer': 'VARCHAR', 'amount': 'DECIMAL(12,2)',
		'created_at': 'TIMESTAMP', 'status': 'VARCHAR', 'note': 'VARCHAR'})) TO '` + filepath.Join(local, "out.parquet") +
		"' (FORMAT parquet, COMPRESSION zstd)"
	const vConn, vCopy = "connector (fake on loopback → Parquet)", "DuckDB COPY of the local slices"
	s, err := interleave(ctx, []variant{
		{name: vConn, run: connector},
		{name: vCopy, run: func(ctx context.Context) error { _, err := db.ExecContext(ctx, copySQL); return err }},
	}, 0, r.cfg.ItersExport)
	if err != nil {
		return err
	}
	rowsPerSec := func(d time.Duration) float64 { return exportRows / d.Seconds() }
	for _, v := range []string{vConn, vCopy} {
		r.rep.timing("M keboola export", v, s[v], fmt.Sprintf("%.0f rows/s", rowsPerSec(s[v].Median())))
	}
	conn, cp := rowsPerSec(s[vConn].Median()), rowsPerSec(s[vCopy].Median())
	x := conn / cp
	r.rep.add(Row{Scenario: "M. Keboola sliced export, 1M rows in 8 gzip CSV slices", Metric: "throughput p50, connector / DuckDB COPY",
		Agnes: fmt.Sprintf("%.0f rows/s", conn), Baseline: fmt.Sprintf("%.0f rows/s", cp), Ratio: fmt.Sprintf("%.2f×", x),
		Target: "≥ 0.8×", Result: passIf(x >= 0.8)})
	growth := mem.peak - mem.base
	r.rep.add(Row{Scenario: "M. Keboola sliced export, 1M rows in 8 gzip CSV slices", Metric: "peak RSS growth of a process running one export (its whole peak in Baseline)",
		Agnes: mb(growth), Baseline: mb(mem.peak), Ratio: "—", Target: "≤ 256 MB", Result: passIf(growth <= 256<<20)})
	r.rep.note("M: the memory row is measured in a child process that runs one export and nothing else: its peak RSS "+
		"(sampled every 5 ms) less its RSS just before the export began (connector built, DuckDB not yet opened); "+
		"the slices are %s of gzip CSV.", mb(sliceBytes))
	return nil
}

func exportConnector(stackURL, token, gcs string) (*keboola.Connector, error) {
	return keboola.New("kbc_bench", keboola.Settings{StackURL: stackURL, Token: connectors.NewSecret(token),
		PollInterval: 5 * time.Millisecond, MaxPollInterval: 20 * time.Millisecond}, keboola.WithGCSEndpoint(gcs))
}

// exportOnce extracts the bench table into the extract folder dir.
func exportOnce(ctx context.Context, c *keboola.Connector, dir string) error {
	w, err := extract.NewWriter(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	tbl, err := c.Extract(ctx, connectors.TableSpec{ID: "events", Bucket: "in.c-bench", SourceTable: "events"}, w)
	if err == nil && tbl.Rows != exportRows {
		err = fmt.Errorf("the connector wrote %d rows, want %d", tbl.Rows, exportRows)
	}
	return err
}

// exportMemory is the RSS of the export's child process: before the export
// and at its peak.
type exportMemory struct{ base, peak int64 }

// exportRSS runs one export in a child process (ExportKeboola) and returns
// its RSS before the export (which the child prints) and at the peak.
func (r *run) exportRSS(ctx context.Context, f *kbcfake.Server, dir string) (exportMemory, error) {
	cmd := exec.CommandContext(ctx, r.cfg.Exe, "-export-keboola", dir)
	cmd.Env = append(os.Environ(), "AGNES_BENCH_KBC_URL="+f.URL(), "AGNES_BENCH_KBC_TOKEN="+f.Token(),
		"AGNES_BENCH_KBC_GCS="+f.GCSEndpoint())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return exportMemory{}, err
	}
	rss := procfs.WatchRSS(cmd.Process.Pid, 5*time.Millisecond)
	err := cmd.Wait()
	peak := rss.Stop()
	if err != nil {
		return exportMemory{}, fmt.Errorf("export process: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var base int64
	if _, err := fmt.Sscanf(stdout.String(), "rss-before-export %d", &base); err != nil || base <= 0 {
		return exportMemory{}, fmt.Errorf("export process: no RSS before the export in %q", stdout.String())
	}
	return exportMemory{base: base, peak: max(peak, base)}, nil
}

// ExportKeboola is scenario M's child process: one export of the bench
// table from the fake named by the environment into dir. It prints its RSS
// just before the export begins.
func ExportKeboola(dir string) error {
	c, err := exportConnector(os.Getenv("AGNES_BENCH_KBC_URL"), os.Getenv("AGNES_BENCH_KBC_TOKEN"), os.Getenv("AGNES_BENCH_KBC_GCS"))
	if err != nil {
		return err
	}
	base, err := procfs.RSS(os.Getpid())
	if err != nil {
		return err
	}
	fmt.Printf("rss-before-export %d\n", base)
	return exportOnce(context.Background(), c, dir)
}

// bigQueryPushdown is scenario N.
func (r *run) bigQueryPushdown(ctx context.Context) error {
	fake, err := bqfake.New("bench-proj")
	if err != nil {
		return err
	}
	defer fake.Close()
	if err := fake.AddDataset("sales", "EU"); err != nil {
		return err
	}
	rows := make([][]any, 10)
	for i := range rows {
		rows[i] = []any{i, fmt.Sprintf("customer %d", i), fmt.Sprintf("%d.5", i)}
	}
	if err := fake.AddTable("sales", bqfake.Table{ID: "orders", NumBytes: 1000, Rows: rows,
		Schema: []bqfake.Field{{Name: "id", Type: "INTEGER"}, {Name: "customer", Type: "STRING"}, {Name: "amount", Type: "NUMERIC"}}}); err != nil {
		return err
	}
	dataDir, err := os.MkdirTemp(r.cfg.OutDir, "bq-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	srv, err := StartServer(ctx, "agnes-bq", ServerOptions{Bin: r.cfg.ServerBin, DataDir: dataDir,
		LogPath: filepath.Join(r.cfg.OutDir, "logs", "agnes-bq.log"),
		Env: []string{"AGNES_DEMO=false", "BIGQUERY_PROJECT=bench-proj", "AGNES_BIGQUERY_ENDPOINT=" + fake.URL(),
			"AGNES_QUERY_REMOTE_DAILY_BYTES=0"}})
	if err != nil {
		return err
	}
	defer func() { _ = srv.Stop() }()
	a := NewAgnes(srv.URL, srv.Token)
	reg, _ := json.Marshal(map[string]any{"name": "orders", "source_type": "bigquery", "bucket": "sales",
		"source_table": "orders", "query_mode": "remote"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/admin/register-table", bytes.NewReader(reg))
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("register the remote table: HTTP %d: %s", res.StatusCode, msg)
	}

	const agnesSQL = `SELECT id, customer, amount FROM orders WHERE id < 10`
	raw, _ := json.Marshal(map[string]any{"query": "SELECT id, customer, amount FROM `bench-proj.sales.orders` AS `orders` WHERE id < 10",
		"useLegacySql": false, "formatOptions": map[string]any{"useInt64Timestamp": true}})
	client := &http.Client{Transport: newTransport(HTTP1)}
	direct := func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fake.URL()+"/projects/bench-proj/queries", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("the fake answered HTTP %d", res.StatusCode)
		}
		return nil
	}
	const vFake, vConnect, vREST = "fake's own jobs.query (plain HTTP)", "Agnes Connect (pushdown)", "Agnes REST (pushdown)"
	s, err := interleave(ctx, []variant{
		{name: vFake, run: direct},
		{name: vConnect, run: func(ctx context.Context) error {
			n, err := ConnectQuery(ctx, a.H1, agnesSQL, 0)
			return expectRows(10, n, err)
		}},
		{name: vREST, run: func(ctx context.Context) error {
			n, err := a.RESTQuery(ctx, agnesSQL, 0)
			return expectRows(10, n, err)
		}},
	}, r.cfg.WarmRemote, r.cfg.ItersRemote)
	if err != nil {
		return err
	}
	for _, v := range []string{vFake, vConnect, vREST} {
		r.rep.timing("N bigquery pushdown", v, s[v], "")
	}
	base := s[vFake].Median()
	for _, v := range []string{vConnect, vREST} {
		d := s[v].Median() - base
		r.rep.add(Row{Scenario: "N. BigQuery pushdown overhead, 10-row remote query", Metric: "p50, " + strings.TrimPrefix(v, "Agnes ") + " − the fake's answer",
			Agnes: ms(s[v].Median()), Baseline: ms(base), Ratio: signedMs(d), Target: "≤ +5 ms", Result: passIf(d <= 5*time.Millisecond)})
	}
	r.rep.note("N: the Agnes path makes two calls to the fake per query (the dry run that enforces the scan cap, then jobs.query); " +
		"the overhead includes both, the sandbox, RBAC, translation and the client's own HTTP hop to Agnes.")
	return nil
}
