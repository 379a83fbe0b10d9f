package apitest

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/require"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// serverProcess is agnes-server running as a real process, so it can be killed.
type serverProcess struct {
	cmd *exec.Cmd
	url string
}

func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "agnes-server")
	out, err := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", bin, "../../cmd/agnes-server").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

func startServer(t *testing.T, bin, dataDir string) *serverProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "JWT_SECRET_KEY="+ts.Secret, "AGNES_DEMO=false", "AGNES_LOG_FORMAT=json")
	logf, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	p := &serverProcess{cmd: cmd, url: "http://" + addr}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(p.url + "/api/health")
		if err == nil {
			res.Body.Close()
			return p
		}
		require.True(t, time.Now().Before(deadline), "server did not start")
		time.Sleep(100 * time.Millisecond)
	}
}

// killWhileExtracting kills the server (SIGKILL) once an upload table's new
// Parquet file is being written under its temp name.
func (p *serverProcess) killWhileExtracting(t *testing.T, dataDir string) {
	t.Helper()
	dataFolder := filepath.Join(dataDir, "extracts", "upload", "data")
	require.Eventually(t, func() bool {
		entries, _ := os.ReadDir(dataFolder)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				return true
			}
		}
		return false
	}, 60*time.Second, 5*time.Millisecond, "no temp file appeared while extracting")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = p.cmd.Process.Wait()
}

func writeCSV(t *testing.T, path string, rows int) {
	t.Helper()
	c, err := duckdb.NewConnector("", nil)
	require.NoError(t, err)
	db := sql.OpenDB(c)
	defer db.Close()
	_, err = db.Exec(`COPY (SELECT i AS id, 'customer ' || (i % 1000) AS name, (i * 7) % 1000 / 3.0 AS amount,
		TIMESTAMP '2026-01-01' + INTERVAL (i % 100000) SECOND AS at FROM range(` + itoa(rows) + `) t(i))
		TO '` + strings.ReplaceAll(path, "'", "''") + `' (FORMAT csv, HEADER)`)
	require.NoError(t, err)
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestKillDuringSync kills the server process while a sync is writing, restarts
// it, and checks that nothing half-written is visible and the next sync succeeds.
func TestKillDuringSync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server process")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()

	token := seedOfflineAdmin(t, dataDir)

	uploads := filepath.Join(dataDir, "uploads")
	require.NoError(t, os.MkdirAll(uploads, 0o755))
	csv := filepath.Join(uploads, "events.csv")
	writeCSV(t, csv, 100)

	bin := buildServer(t)
	srv := startServer(t, bin, dataDir)
	c := clientsFor(srv.url, token)
	reg := restCall(t, srv.url, token, http.MethodPost, "/api/admin/register-table",
		`{"name": "events", "source_type": "upload", "source_table": "events.csv"}`)
	require.Equal(t, http.StatusCreated, reg, "register")
	job, err := c.Sync.TriggerSync(ctx, &agnesv1.TriggerSyncRequest{Tables: []string{"events"}})
	require.NoError(t, err)
	waitJob(t, c, job.GetJobId(), agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED)
	before, err := c.Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	goodHash := before.GetTables()["events"].GetHash()

	// A big new version of the source, and a sync killed while it extracts.
	writeCSV(t, csv, 3_000_000)
	job, err = c.Sync.TriggerSync(ctx, &agnesv1.TriggerSyncRequest{Tables: []string{"events"}})
	require.NoError(t, err)
	for {
		j, err := c.Sync.GetSyncJob(ctx, &agnesv1.GetSyncJobRequest{JobId: job.GetJobId()})
		require.NoError(t, err)
		require.NotEqual(t, agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, j.GetJob().GetState(), "the sync ended before the kill: make the CSV bigger")
		if j.GetJob().GetTables()[0].GetStep() == "extract" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Kill while the new Parquet is half-written under its temp name.
	srv.killWhileExtracting(t, dataDir)

	// Restart: the killed job is marked cancelled, the old data is what is served.
	srv = startServer(t, bin, dataDir)
	c = clientsFor(srv.url, token)
	j, err := c.Sync.GetSyncJob(ctx, &agnesv1.GetSyncJobRequest{JobId: job.GetJobId()})
	require.NoError(t, err)
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_CANCELLED, j.GetJob().GetState())
	after, err := c.Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	require.Equal(t, goodHash, after.GetTables()["events"].GetHash())
	res, err := c.Query.Query(ctx, &agnesv1.QueryRequest{Sql: "SELECT count(*) FROM events"})
	require.NoError(t, err)
	require.EqualValues(t, 100, res.GetRows()[0].GetValues()[0].GetNumberValue())
	_ = filepath.WalkDir(filepath.Join(dataDir, "extracts"), func(path string, d os.DirEntry, err error) error {
		require.NotContains(t, filepath.Base(path), ".tmp-", "leftover temp file %s", path)
		return nil
	})

	// The next sync succeeds.
	job, err = c.Sync.TriggerSync(ctx, &agnesv1.TriggerSyncRequest{Tables: []string{"events"}})
	require.NoError(t, err)
	waitJob(t, c, job.GetJobId(), agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED)
	res, err = c.Query.Query(ctx, &agnesv1.QueryRequest{Sql: "SELECT count(*) FROM events"})
	require.NoError(t, err)
	require.EqualValues(t, 3_000_000, res.GetRows()[0].GetValues()[0].GetNumberValue())
}

func clientsFor(url, token string) *ts.Clients {
	return (&ts.Server{URL: url}).Clients(ts.Connect, token)
}

func restCall(t *testing.T, url, token, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	return res.StatusCode
}

func waitJob(t *testing.T, c *ts.Clients, id string, want agnesv1.SyncJobState) {
	t.Helper()
	states := watch(t, c, id)
	last := states[len(states)-1]
	require.Equal(t, want, last.GetState(), "%v", last)
}

// TestKillDuringANewUpload kills the server while the sync of a new table's
// upload extracts it: the uploader never got an answer, so after the restart
// the table is not registered, its file is gone, and the same upload can be
// sent again.
func TestKillDuringANewUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server process")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	token := seedOfflineAdmin(t, dataDir)
	csv := filepath.Join(t.TempDir(), "orders.csv")
	writeCSV(t, csv, 3_000_000)

	bin := buildServer(t)
	srv := startServer(t, bin, dataDir)
	sent := make(chan error, 1)
	go func() { // the uploader: its answer never comes
		f, err := os.Open(csv)
		if err != nil {
			sent <- err
			return
		}
		defer f.Close()
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			fw, err := mw.CreateFormFile("file", "orders.csv")
			if err == nil {
				_, err = io.Copy(fw, f)
			}
			if err == nil {
				err = mw.Close()
			}
			pw.CloseWithError(err)
		}()
		req, _ := http.NewRequest(http.MethodPost, srv.url+"/api/upload", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			err = fmt.Errorf("the upload was answered %d before the kill: make the CSV bigger", res.StatusCode)
		}
		sent <- err
	}()
	srv.killWhileExtracting(t, dataDir)
	require.Error(t, <-sent, "the uploader got no answer")

	srv = startServer(t, bin, dataDir)
	c := clientsFor(srv.url, token)
	reg, err := c.Admin.ListRegistry(ctx, &agnesv1.ListRegistryRequest{})
	require.NoError(t, err)
	require.Empty(t, reg.GetTables(), "the new table of the unanswered upload is not registered")
	entries, err := os.ReadDir(filepath.Join(dataDir, "uploads"))
	require.NoError(t, err)
	require.Empty(t, entries, "no file of the unanswered upload is left")

	again := (&ts.Server{URL: srv.url}).Upload(t, token, "orders.csv", []byte("id,name\n1,ann\n"), nil)
	require.Equal(t, http.StatusCreated, again.Status, "%s", again.Body)
	res, err := c.Query.Query(ctx, &agnesv1.QueryRequest{Sql: "SELECT count(*) FROM orders"})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.GetRows()[0].GetValues()[0].GetNumberValue())
}
