package soak

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// manifestTable is what the manifest says of a table.
type manifestTable struct {
	Hash  string `json:"hash"`
	Parts []struct {
		Name string `json:"name"`
		Hash string `json:"hash"`
	} `json:"parts"`
}

// fingerprint is a table's hashes in one comparable string.
func (t manifestTable) fingerprint() string {
	s := t.Hash
	for _, p := range t.Parts {
		s += " " + p.Name + ":" + p.Hash
	}
	return s
}

func manifest(ctx context.Context, c *Client, token string) (map[string]manifestTable, error) {
	var m struct {
		Tables map[string]manifestTable `json:"tables"`
	}
	err := c.JSON(ctx, http.MethodGet, "/api/sync/manifest", token, nil, &m)
	return m.Tables, err
}

// verifyDownloads downloads every file of the manifest and compares its
// MD5 with the manifest's hash. It returns how many files matched.
func verifyDownloads(ctx context.Context, c *Client, token string, m map[string]manifestTable) (int, error) {
	n := 0
	check := func(id, part, want string) error {
		path := "/api/data/" + url.PathEscape(id) + "/download"
		if part != "" {
			path += "?part=" + url.QueryEscape(part)
		}
		res, err := c.Do(ctx, http.MethodGet, path, token, nil, nil)
		if err != nil {
			return err
		}
		if res.Status != http.StatusOK {
			return fmt.Errorf("download %s: HTTP %d %s", path, res.Status, res.Detail())
		}
		sum := md5.Sum(res.Body)
		if got := hex.EncodeToString(sum[:]); got != want {
			return fmt.Errorf("download %s: MD5 %s, the manifest says %s", path, got, want)
		}
		n++
		return nil
	}
	for _, id := range slices.Sorted(maps.Keys(m)) {
		t := m[id]
		if len(t.Parts) == 0 && t.Hash != "" {
			if err := check(id, "", t.Hash); err != nil {
				return n, err
			}
		}
		for _, p := range t.Parts {
			if err := check(id, p.Name, p.Hash); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// tempFiles lists what a crash may leave under dir: temp and build files.
func tempFiles(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // removed meanwhile
		}
		name := d.Name()
		if strings.Contains(name, ".tmp") || strings.HasSuffix(name, ".build") || strings.HasSuffix(name, ".previous") || strings.HasSuffix(name, ".before-replace") ||
			strings.HasPrefix(name, "upload_tmp_") {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// writeCSV writes rows of a CSV whose values depend on variant, so that
// two variants have different content. With stall, it flushes and calls
// stall before row stallAt.
func writeCSV(w io.Writer, rows, variant, stallAt int, stall func()) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString("id,name,amount,variant\n"); err != nil {
		return err
	}
	for i := range rows {
		if stall != nil && i == stallAt {
			if err := bw.Flush(); err != nil {
				return err
			}
			stall()
		}
		if _, err := fmt.Fprintf(bw, "%d,customer %d,%d.%02d,%d\n", i, (i*7+variant)%1000, (i*13+variant)%10000, i%100, variant); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// upload streams a multipart upload of a generated CSV as name.csv.
func upload(ctx context.Context, c *Client, token, name string, replace bool, write func(io.Writer) error) (*Response, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if replace {
				if err := mw.WriteField("replace", "true"); err != nil {
					return err
				}
			}
			part, err := mw.CreateFormFile("file", name+".csv")
			if err != nil {
				return err
			}
			if err := write(part); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/api/upload", pr)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.HTTP.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return &Response{Status: res.StatusCode, Header: res.Header, Body: b}, err
}

func uploadCSV(ctx context.Context, c *Client, token, name string, rows, variant int, replace bool) error {
	res, err := upload(ctx, c, token, name, replace, func(w io.Writer) error { return writeCSV(w, rows, variant, 0, nil) })
	if err != nil {
		return err
	}
	if res.Status != http.StatusCreated {
		return fmt.Errorf("upload %s: HTTP %d %s", name, res.Status, res.Detail())
	}
	return nil
}

// waitFor polls cond every interval until it holds or timeout passes.
func waitFor(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(interval)
	}
	return cond()
}

// crash is the state a kill must not disturb.
type crash struct {
	e     *env
	s     *Server
	c     *Client
	admin string
	good  map[string]manifestTable // the last good manifest
	rows  string                   // SELECT count(*) FROM events, last good
	table *Table
}

// countEvents is the answer of SELECT count(*) FROM events.
func (k *crash) countEvents(ctx context.Context) (string, error) {
	res, err := k.c.Query(ctx, k.admin, "SELECT count(*) AS n FROM events", 0)
	if err != nil {
		return "", err
	}
	if res.Status != http.StatusOK {
		return "", fmt.Errorf("count events: HTTP %d %s", res.Status, res.Detail())
	}
	var a struct {
		Rows [][]json.Number `json:"rows"`
	}
	if err := json.Unmarshal(res.Body, &a); err != nil || len(a.Rows) != 1 || len(a.Rows[0]) != 1 {
		return "", fmt.Errorf("count events: unexpected answer %s", res.Body)
	}
	return a.Rows[0][0].String(), nil
}

// killAndCheck kills the server (SIGKILL), starts it again on the same
// DATA_DIR, and checks it serves the last good data: the same manifest,
// every file downloading with its hash, nothing temporary left where data
// is served from, the same row count. It records a row of the table and
// the phase's target.
func (k *crash) killAndCheck(ctx context.Context, phase, while string) error {
	if err := k.s.Kill(); err != nil {
		return err
	}
	leftAtKill := tempFiles(k.s.DataDir)
	start := time.Now()
	if err := k.s.Start(ctx); err != nil {
		return fmt.Errorf("%s: restart after kill -9: %w", phase, err)
	}
	k.c = NewClient(k.s.URL, "")
	restart := time.Since(start)
	m, err := manifest(ctx, k.c, k.admin)
	if err != nil {
		return fmt.Errorf("%s: manifest after restart: %w", phase, err)
	}
	var diffs []string
	for _, id := range slices.Sorted(maps.Keys(k.good)) {
		if got, ok := m[id]; !ok {
			diffs = append(diffs, id+" missing")
		} else if got.fingerprint() != k.good[id].fingerprint() {
			diffs = append(diffs, fmt.Sprintf("%s: %s, was %s", id, got.fingerprint(), k.good[id].fingerprint()))
		}
	}
	for id := range m {
		if _, ok := k.good[id]; !ok {
			diffs = append(diffs, id+" appeared")
		}
	}
	files, derr := verifyDownloads(ctx, k.c, k.admin, m)
	downloads := fmt.Sprintf("%d files, every MD5 = the manifest's", files)
	if derr != nil {
		downloads = derr.Error()
	}
	var served []string // temp files where data is served from
	for _, sub := range []string{"extracts", "analytics"} {
		for _, f := range tempFiles(filepath.Join(k.s.DataDir, sub)) {
			served = append(served, filepath.Join(sub, f))
		}
	}
	uploads := tempFiles(filepath.Join(k.s.DataDir, "uploads"))
	rows, rerr := k.countEvents(ctx)
	if rerr != nil {
		rows = rerr.Error()
	}
	k.table.row(phase, while, strings.Join(leftAtKill, ", "), ms(restart), either(len(diffs) == 0, "same hashes", strings.Join(diffs, "; ")),
		downloads, either(len(served) == 0, "none", strings.Join(served, ", ")), rows+" (was "+k.rows+")",
		either(len(uploads) == 0, "none", strings.Join(uploads, ", ")))
	k.e.sc.target("kill -9 "+phase+": the next start serves the last good data",
		"same manifest hashes, every file downloads with its hash, no temp file in extracts/ or analytics/, same rows",
		fmt.Sprintf("%d hash differences, downloads: %s, %d temp files, rows %s", len(diffs), either(derr == nil, "ok", "FAILED"), len(served), rows),
		len(diffs) == 0 && derr == nil && len(served) == 0 && rows == k.rows)
	return nil
}

func either(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

// runCrash: kill -9 of the server during an upload (its body half sent),
// during a sync (an upload replacing a table's data), and during a rebuild;
// after each, the next start on the same DATA_DIR serves the last good data.
func runCrash(ctx context.Context, e *env) error {
	z := e.Sizes
	config := `demo: true
max_upload_bytes: 4294967296
limits:
  upload_timeout: 30m
`
	s, err := e.start(ctx, config)
	if err != nil {
		return err
	}
	defer s.Stop()
	k := &crash{e: e, s: s, c: NewClient(s.URL, "")}
	if k.admin, err = k.c.Bootstrap(ctx, "admin@example.com", adminPassword); err != nil {
		return err
	}
	// The demo syncs in the background on the first start.
	if !waitFor(2*time.Minute, 200*time.Millisecond, func() bool {
		m, err := manifest(ctx, k.c, k.admin)
		return err == nil && m["customers"].Hash != "" && m["products"].Hash != "" && m["orders"].Hash != ""
	}) {
		return errors.New("the demo tables did not appear in the manifest within 2 minutes")
	}
	if err := uploadCSV(ctx, k.c, k.admin, "events", 1000, 1, false); err != nil {
		return err
	}
	for i := range z.SmallTables { // more sources make a rebuild longer
		if err := uploadCSV(ctx, k.c, k.admin, fmt.Sprintf("small_%02d", i), 100, i, false); err != nil {
			return err
		}
	}
	if k.good, err = manifest(ctx, k.c, k.admin); err != nil {
		return err
	}
	files, err := verifyDownloads(ctx, k.c, k.admin, k.good)
	if err != nil {
		return fmt.Errorf("before any kill: %w", err)
	}
	if k.rows, err = k.countEvents(ctx); err != nil {
		return err
	}
	e.sc.note("before the kills: %d tables in the manifest (the demo's, events, %d small uploads), %d files downloaded and matched their hashes",
		len(k.good), z.SmallTables, files)
	k.table = e.sc.table("kill -9, then start again on the same DATA_DIR",
		"phase", "killed while", "temp files at the kill", "restart took", "manifest", "downloads", "temp files in extracts/ analytics/ after",
		"SELECT count(*) FROM events", "leftovers in uploads/")

	if err := k.duringUpload(ctx); err != nil {
		return err
	}
	if err := k.duringSync(ctx); err != nil {
		return err
	}
	if err := k.duringRebuild(ctx); err != nil {
		return err
	}

	// A sync of events after the kills: it must not publish the upload whose
	// sync was killed (its uploader never got an answer).
	state, err := k.syncTable(ctx, "events")
	if err != nil {
		return err
	}
	synced, err := k.countEvents(ctx)
	if err != nil {
		return err
	}
	e.sc.target("the next sync after the kills", "events keeps the last good data ("+k.rows+" rows): the killed upload is not published later",
		fmt.Sprintf("sync %s, %s rows", state, synced), synced == k.rows)

	// And the server goes on: a new upload of events replaces the data.
	if err := uploadCSV(ctx, k.c, k.admin, "events", 500, 4, true); err != nil {
		return fmt.Errorf("after the kills: %w", err)
	}
	m, err := manifest(ctx, k.c, k.admin)
	if err != nil {
		return err
	}
	n, derr := verifyDownloads(ctx, k.c, k.admin, m)
	rows, _ := k.countEvents(ctx)
	e.sc.target("after the kills the server goes on", "a new upload of events replaces its data; every file downloads with its hash",
		fmt.Sprintf("events hash changed: %v, rows %s, %d files verified, %v", m["events"].Hash != k.good["events"].Hash, rows, n, derr),
		m["events"].Hash != k.good["events"].Hash && rows == "500" && derr == nil)
	return nil
}

// duringUpload kills the server while an upload's body is half sent.
func (k *crash) duringUpload(ctx context.Context) error {
	half := k.e.Sizes.BigRows / 2
	halfway := make(chan struct{})
	stall := make(chan struct{})
	done := make(chan error, 1)
	c := k.c // killAndCheck replaces k.c
	go func() {
		_, err := upload(ctx, c, k.admin, "late", false, func(w io.Writer) error {
			return writeCSV(w, k.e.Sizes.BigRows, 2, half, func() {
				close(halfway)
				<-stall // the client stalls: the server holds a half-written upload
			})
		})
		done <- err
	}()
	defer close(stall)
	select {
	case <-halfway:
	case err := <-done:
		return fmt.Errorf("the upload ended before its body was half sent: %w", err)
	}
	uploads := filepath.Join(k.s.DataDir, "uploads")
	var seen string
	if !waitFor(time.Minute, 5*time.Millisecond, func() bool {
		for _, f := range tempFiles(uploads) {
			if fi, err := os.Stat(filepath.Join(uploads, f)); err == nil && fi.Size() > 0 {
				seen = fmt.Sprintf("the upload's body was half sent (%s at %s)", f, mib(fi.Size()))
				return true
			}
		}
		return false
	}) {
		return errors.New("no temp file of the upload appeared in uploads/")
	}
	return k.killAndCheck(ctx, "during an upload", seen)
}

// duringSync kills the server while an upload that replaces events syncs:
// the body is sent, the server extracts it to Parquet.
func (k *crash) duringSync(ctx context.Context) error {
	done := make(chan *Response, 1)
	c := k.c // killAndCheck replaces k.c
	go func() {
		res, err := upload(ctx, c, k.admin, "events", true, func(w io.Writer) error { return writeCSV(w, k.e.Sizes.BigRows, 3, 0, nil) })
		if err != nil {
			res = &Response{Body: []byte(err.Error())}
		}
		done <- res
	}()
	data := filepath.Join(k.s.DataDir, "extracts", "upload")
	var seen string
	for seen == "" {
		select {
		case res := <-done:
			return fmt.Errorf("the upload's sync ended before a temp file was seen (HTTP %d %s): make BigRows larger", res.Status, res.Detail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		for _, f := range tempFiles(data) {
			seen = "the sync of the replacing upload wrote " + filepath.Join("extracts/upload", f)
		}
	}
	return k.killAndCheck(ctx, "during a sync", seen)
}

// duringRebuild kills the server while POST /api/admin/rebuild builds the
// next generation; a rebuild is quick, so it tries up to 20 times to catch
// one in the act (and kills anyway at the last try).
func (k *crash) duringRebuild(ctx context.Context) error {
	gen := filepath.Join(k.s.DataDir, "analytics", "gen")
	for try := 1; ; try++ {
		done := make(chan struct{})
		c := k.c // killAndCheck replaces k.c
		go func() {
			defer close(done)
			_, _ = c.Do(ctx, http.MethodPost, "/api/admin/rebuild", k.admin, "{}", nil)
		}()
		var seen string
		for seen == "" {
			finished := false
			select {
			case <-done:
				finished = true
			default:
			}
			if entries, err := os.ReadDir(gen); err == nil {
				for _, e := range entries {
					if strings.HasSuffix(e.Name(), ".build") {
						seen = fmt.Sprintf("the rebuild wrote analytics/gen/%s (try %d)", e.Name(), try)
					}
				}
			}
			if finished || seen != "" {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if seen != "" || try == 20 {
			return k.killAndCheck(ctx, "during a rebuild", either(seen != "", seen, "a rebuild had just ended (20 tries missed one in the act)"))
		}
		<-done
	}
}

// syncTable triggers a sync of one table and waits for its job to end.
func (k *crash) syncTable(ctx context.Context, table string) (string, error) {
	var job struct {
		JobID string `json:"job_id"`
	}
	if err := k.c.JSON(ctx, http.MethodPost, "/api/sync/trigger", k.admin, map[string]any{"tables": []string{table}}, &job); err != nil {
		return "", err
	}
	var state string
	if !waitFor(5*time.Minute, 100*time.Millisecond, func() bool {
		var j struct {
			State string `json:"state"`
		}
		if err := k.c.JSON(ctx, http.MethodGet, "/api/sync/jobs/"+url.PathEscape(job.JobID), k.admin, nil, &j); err != nil {
			return false
		}
		state = strings.TrimPrefix(j.State, "SYNC_JOB_STATE_")
		return state != "PENDING" && state != "RUNNING" && state != "UNSPECIFIED" && state != ""
	}) {
		return "", fmt.Errorf("the sync of %s did not end within 5 minutes", table)
	}
	return strings.ToLower(state), nil
}
