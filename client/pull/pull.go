// Package pull mirrors the tables a user may see into a local folder: the manifest
// says what exists and its content hashes; only changed files are downloaded (in
// parallel, resumable, hash-verified, atomically replaced); tables no longer granted
// are removed; and a local DuckDB file gets one view per table.
package pull

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

// Layout inside the pull directory.
const (
	ParquetDir = "parquet"      // parquet/<table>.parquet or parquet/<table>/<part>.parquet
	DBFile     = "agnes.duckdb" // one view per table
	stateFile  = ".agnes-pull.json"
)

// Options configure a pull.
type Options struct {
	Dir      string
	Parallel int                     // concurrent downloads (default 4)
	Progress func(done, total int64) // called as bytes arrive (may be nil)
}

// Result says what a pull did.
type Result struct {
	Downloaded []string `json:"downloaded"`
	Removed    []string `json:"removed"`
	Unchanged  int      `json:"unchanged"`
	Tables     int      `json:"tables"`
	Bytes      int64    `json:"bytes"`
	DurationMS int64    `json:"duration_ms"`
	Database   string   `json:"database"`
}

// state is what the last pull left: the hash of every local file, so the next pull
// compares hashes without re-reading files.
type state struct {
	Server string                `json:"server"`
	Tables map[string]tableState `json:"tables"`
	// Views is the shape agnes.duckdb was last built for (tables, partitioned or
	// not, folder): views read files by path, so new data under the same paths
	// needs no rebuild of the database.
	Views string `json:"views,omitempty"`
}

type tableState struct {
	Hash  string            `json:"hash"`
	Parts map[string]string `json:"parts,omitempty"` // part → hash
}

// file is one download: a table or one part of it.
type file struct {
	table, part string
	hash        string
	size        int64
	dest        string
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.=-]{0,127}$`)

// Run pulls. It is safe to interrupt: partial downloads are kept as .part files and
// resumed next time; nothing is replaced until its hash checks out.
func Run(ctx context.Context, c *sdk.Client, opts Options) (*Result, error) {
	start := time.Now()
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	// The data is the user's: readable by them only (a shared machine's other
	// accounts must not read what the server granted this one).
	if err := os.MkdirAll(filepath.Join(dir, ParquetDir), 0o700); err != nil {
		return nil, err
	}
	man, err := c.Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	if err != nil {
		return nil, err
	}
	prev := loadState(dir)
	next := state{Server: c.BaseURL, Tables: map[string]tableState{}}
	res := &Result{Downloaded: []string{}, Removed: []string{}, Database: filepath.Join(dir, DBFile)}

	var todo []file
	ids := make([]string, 0, len(man.GetTables()))
	for id := range man.GetTables() {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		mt := man.GetTables()[id]
		if !safeName.MatchString(id) || (mt.GetHash() == "" && len(mt.GetParts()) == 0) {
			continue // remote tables have no file to mirror
		}
		res.Tables++
		old := prev.Tables[id]
		ts := tableState{Hash: mt.GetHash()}
		changed := false
		if len(mt.GetParts()) == 0 {
			f := file{table: id, hash: mt.GetHash(), size: mt.GetSizeBytes(), dest: filepath.Join(dir, ParquetDir, id+".parquet")}
			if old.Hash != f.hash || !present(f.dest, f.size) {
				todo, changed = append(todo, f), true
			}
		} else {
			ts.Parts = map[string]string{}
			for _, p := range mt.GetParts() {
				if !safeName.MatchString(p.GetName()) {
					continue
				}
				ts.Parts[p.GetName()] = p.GetHash()
				f := file{table: id, part: p.GetName(), hash: p.GetHash(), size: p.GetSizeBytes(),
					dest: filepath.Join(dir, ParquetDir, id, p.GetName()+".parquet")}
				if old.Parts[p.GetName()] != f.hash || !present(f.dest, f.size) {
					todo, changed = append(todo, f), true
				}
			}
		}
		if changed {
			res.Downloaded = append(res.Downloaded, id)
		} else {
			res.Unchanged++
		}
		next.Tables[id] = ts
	}

	bytes, err := download(ctx, c, todo, opts)
	res.Bytes = bytes
	if err != nil {
		// Keep what succeeded: record the tables whose files are all in place.
		_ = saveState(dir, merge(prev, next, todo)) // best effort: the pull's own error is the one to report
		return res, err
	}
	res.Removed = prune(dir, prev, next)
	next.Views = viewsShape(dir, next)
	if _, err := os.Stat(res.Database); err != nil || next.Views != prev.Views {
		if err := writeDatabase(ctx, dir, next); err != nil {
			return res, err
		}
	}
	if err := saveState(dir, next); err != nil {
		return res, err
	}
	res.DurationMS = time.Since(start).Milliseconds()
	return res, nil
}

// viewsShape summarizes what the local database's views depend on.
func viewsShape(dir string, s state) string {
	ids := make([]string, 0, len(s.Tables))
	for id, t := range s.Tables {
		ids = append(ids, fmt.Sprintf("%s:%t", id, len(t.Parts) > 0))
	}
	sort.Strings(ids)
	h := md5.Sum([]byte(dir + "\n" + strings.Join(ids, "\n")))
	return hex.EncodeToString(h[:])
}

func present(path string, size int64) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() == size
}

// download fetches the files, opts.Parallel at a time; the first error stops the rest.
func download(ctx context.Context, c *sdk.Client, files []file, opts Options) (int64, error) {
	var total int64
	for _, f := range files {
		total += f.size
	}
	var done atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan file)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range opts.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := fetch(ctx, c, f, func(n int64) {
					d := done.Add(n)
					if opts.Progress != nil {
						opts.Progress(d, total)
					}
				}); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		}()
	}
	for _, f := range files {
		select {
		case work <- f:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return done.Load(), firstErr
}

// fetch downloads one file to <dest>.part (resuming with a Range request when a
// partial file is there and the server's ETag still matches), checks its MD5
// against the manifest and renames it into place.
func fetch(ctx context.Context, c *sdk.Client, f file, progress func(int64)) error {
	if err := os.MkdirAll(filepath.Dir(f.dest), 0o700); err != nil {
		return err
	}
	tmp := f.dest + ".part"
	path := "/api/data/" + f.table + "/download"
	if f.part != "" {
		path += "?part=" + f.part
	}
	req, err := c.NewRequest(ctx, http.MethodGet, path)
	if err != nil {
		return err
	}
	var have int64
	if fi, err := os.Stat(tmp); err == nil && fi.Size() > 0 && fi.Size() < f.size {
		have = fi.Size()
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		req.Header.Set("If-Range", `"`+f.hash+`"`)
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", f.table, err)
	}
	defer res.Body.Close()
	var out *os.File
	switch res.StatusCode {
	case http.StatusPartialContent:
		out, err = os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND, 0o600)
		progress(have)
	case http.StatusOK:
		out, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	default:
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		var e struct{ Detail string }
		if json.Unmarshal(body, &e) == nil && e.Detail != "" {
			return fmt.Errorf("download %s: %s (HTTP %d)", f.table, e.Detail, res.StatusCode)
		}
		return fmt.Errorf("download %s: HTTP %d", f.table, res.StatusCode)
	}
	if err != nil {
		return err
	}
	_, err = io.Copy(out, &countingReader{r: res.Body, n: progress})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", f.table, err) // the .part stays, to resume
	}
	sum, err := md5File(tmp)
	if err != nil {
		return err
	}
	if sum != f.hash {
		_ = os.Remove(tmp)
		return fmt.Errorf("download %s: content hash %s does not match the manifest's %s (the table may have changed meanwhile: pull again)", f.table, sum, f.hash)
	}
	return os.Rename(tmp, f.dest)
}

type countingReader struct {
	r io.Reader
	n func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n(int64(n))
	}
	return n, err
}

func md5File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// merge records, after a failed pull, the tables whose every file is in place.
func merge(prev, next state, todo []file) state {
	failed := map[string]bool{}
	for _, f := range todo {
		if !present(f.dest, f.size) {
			failed[f.table] = true
		}
	}
	out := state{Server: next.Server, Tables: map[string]tableState{}}
	for id, ts := range next.Tables {
		if failed[id] {
			if old, ok := prev.Tables[id]; ok {
				out.Tables[id] = old
			}
			continue
		}
		out.Tables[id] = ts
	}
	return out
}

// prune removes the files of tables no longer in the manifest (revoked or deleted)
// and of parts that no longer exist.
func prune(dir string, prev, next state) []string {
	removed := []string{}
	for id := range prev.Tables {
		if _, ok := next.Tables[id]; !ok {
			_ = os.Remove(filepath.Join(dir, ParquetDir, id+".parquet"))
			_ = os.RemoveAll(filepath.Join(dir, ParquetDir, id))
			removed = append(removed, id)
		}
	}
	for id, ts := range next.Tables {
		for part := range prev.Tables[id].Parts {
			if _, ok := ts.Parts[part]; !ok {
				_ = os.Remove(filepath.Join(dir, ParquetDir, id, part+".parquet"))
			}
		}
	}
	sort.Strings(removed)
	return removed
}

func loadState(dir string) state {
	s := state{Tables: map[string]tableState{}}
	raw, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err == nil {
		_ = json.Unmarshal(raw, &s)
	}
	if s.Tables == nil {
		s.Tables = map[string]tableState{}
	}
	return s
}

func saveState(dir string, s state) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}
