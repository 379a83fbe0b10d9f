package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/internal/procfs"
)

// Scenarios H, I and J run against their own server ("agnes-dist") over the
// distribution data set: 5,000 tiny tables in 10 sources and one ~200 MB
// table, with non-admin users, groups and grants created through the REST
// API before the measurements.

const (
	hGroups = 20 // H: the user's groups, which together grant every tiny table
	jGroups = 4  // J: the user is in H's groups 0–3, which grant 1,000 tables
	// grantWorkers is how many grants are created at a time (the server
	// serializes its writes; a few in flight hide the round trips).
	grantWorkers = 4
	benchPass    = "bench-password-1"
)

// hGrants spreads the tiny tables over the 20 groups of H: table m (the
// m-th of Tables) goes to group m mod 20 and, in every tenth run of 20
// tables (m div 20 mod 10 = 0), also to the paired group (m mod 20) xor 1 —
// 5,500 grants, 500 tables granted twice, 25 in each group. Pairs never
// straddle groups 0–3, so those four grant exactly the tables with
// m mod 20 < 4: PullTables, J's 1,000.
func hGrants(tables []string) [][]string {
	per := make([][]string, hGroups)
	for m, t := range tables {
		g := m % hGroups
		per[g] = append(per[g], t)
		if (m/hGroups)%10 == 0 {
			per[g^1] = append(per[g^1], t)
		}
	}
	return per
}

// benchUser is a non-admin user the harness created.
type benchUser struct {
	ID, Email, Token string
}

// dist is the state of the distribution scenarios.
type dist struct {
	*run
	data  *DistDataset
	srv   *Server
	http  *http.Client // REST calls (admin setup, manifest, Agnes downloads)
	users map[string]*benchUser
	setup time.Duration // users, groups, grants and the rebuild
	// grants and memberships created
	nGroups, nGrants, nMembers int
	grantsOf                   map[string]int // user key → grants of their groups
	setupNote                  string
}

func (c Config) wantDist() bool { return slices.ContainsFunc([]string{"H", "I", "J"}, c.want) }

// runDist prepares the distribution data, starts its server, creates the
// users, groups and grants the selected scenarios need, and runs them.
func (r *run) runDist(ctx context.Context) error {
	data, err := PrepareDistData(ctx, r.cfg.DataRoot, r.cfg.RebuildData, r.logf)
	if err != nil {
		return err
	}
	if r.cfg.CleanData {
		defer func() {
			StopAll()
			r.logf("data: removing %s (-clean-data)", data.Dir)
			_ = os.RemoveAll(data.Dir)
		}()
	}
	gen := "reused from cache"
	if !data.Reused {
		gen = "built in " + data.Took.Round(time.Second).String()
	}
	r.rep.Machine = append(r.rep.Machine, [2]string{"distribution data (H–J)", fmt.Sprintf(
		"%d tiny tables (5 rows each) in %d sources + table %s (%d rows, Parquet %s, %d bytes), written by connectors/extract; %s (%s)",
		len(data.Tables), distSources, bulkTable, data.BulkRows, mb(data.BulkBytes), data.BulkBytes, gen, data.Dir)})

	// Only the data set's own extracts: no demo source (AGNES_DEMO=false), and
	// none left by an older server that had the demo on.
	if err := data.removeStrayExtracts(r.logf); err != nil {
		return err
	}
	t0 := time.Now()
	srv, err := StartServer(ctx, "agnes-dist", ServerOptions{Bin: r.cfg.ServerBin, DataDir: data.DataDir,
		LogPath: filepath.Join(r.cfg.OutDir, "logs", "agnes-dist.log"), Env: []string{"AGNES_DEMO=false"}})
	if err != nil {
		return err
	}
	startup := time.Since(t0)
	defer r.cleanup(srv)
	d := &dist{run: r, data: data, srv: srv, http: &http.Client{Transport: newTransport(HTTP1)}, users: map[string]*benchUser{}, grantsOf: map[string]int{}}
	r.rep.Machine = append(r.rep.Machine, [2]string{"distribution server", fmt.Sprintf("bin/agnes-server serve, pid %d, %d extracts, start-up (incl. rebuild) to healthy %s, log %s",
		srv.Pid, distSources+1, startup.Round(time.Millisecond), srv.LogPath)})

	t0 = time.Now()
	if err := d.prepare(ctx); err != nil {
		return fmt.Errorf("distribution setup: %w", err)
	}
	d.setup = time.Since(t0)
	r.rep.Machine = append(r.rep.Machine, [2]string{"distribution setup (H–J, not measured)", fmt.Sprintf(
		"%d users, %d groups, %d memberships, %d grants created through the REST API (%d concurrent requests); %s: %s",
		len(d.users), d.nGroups, d.nMembers, d.nGrants, grantWorkers, d.setupNote, d.setup.Round(time.Millisecond))})

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{{"H", d.manifest}, {"I", d.download}, {"J", d.pull}}
	for _, s := range steps {
		if !r.cfg.want(s.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !srv.Alive() {
			return fmt.Errorf("the distribution server exited; last lines of %s:\n%s", srv.LogPath, srv.Tail(20))
		}
		if _, ok := waitCPUQuiet(srv.Pid, 300*time.Millisecond, 1, 20*time.Second); !ok {
			r.logf("note: distribution server CPU not quiet after 20 s, going on")
		}
		if err := r.scenario(ctx, s.fn, s.name); err != nil {
			return err
		}
	}
	return nil
}

// call sends a REST request with a JSON body (nil: none) and decodes a JSON
// answer into out (nil: discarded); any 2xx status is success.
func (d *dist) call(ctx context.Context, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.srv.URL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, res.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w: %.200s", method, path, err, b)
		}
	}
	return nil
}

// forEach runs fn on every item, workers at a time; the first error stops
// the rest.
func forEach[T any](ctx context.Context, workers int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan T)
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for it := range work {
				if err := fn(ctx, it); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		})
	}
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

type grantJob struct{ group, table string }

// prepare creates, through the REST API as the bootstrapped admin, the users,
// groups, memberships and grants of the selected scenarios, rebuilds, and
// checks that every table is in the manifest with a content hash.
func (d *dist) prepare(ctx context.Context) error {
	admin := d.srv.Token
	type groupSpec struct {
		name   string
		users  []string // keys in d.users
		tables []string
	}
	var users []string
	var groups []groupSpec
	if d.cfg.want("H") {
		users = append(users, "h")
	}
	if d.cfg.want("J") {
		users = append(users, "j")
	}
	if d.cfg.want("H") || d.cfg.want("J") {
		for g, tables := range hGrants(d.data.Tables) {
			var members []string
			if d.cfg.want("H") {
				members = append(members, "h")
			}
			if d.cfg.want("J") && g < jGroups {
				members = append(members, "j")
			}
			if len(members) > 0 {
				groups = append(groups, groupSpec{name: fmt.Sprintf("readers-%02d", g), users: members, tables: tables})
			}
		}
	}
	if d.cfg.want("I") {
		users = append(users, "i")
		groups = append(groups, groupSpec{name: "bulk-readers", users: []string{"i"}, tables: []string{bulkTable}})
	}

	t0 := time.Now()
	for _, u := range users {
		email := u + "-reader@example.com"
		var out struct {
			ID string `json:"id"`
		}
		if err := d.call(ctx, http.MethodPost, "/api/users", admin, map[string]any{"email": email, "name": "bench " + u, "password": benchPass}, &out); err != nil {
			return err
		}
		var tok struct {
			AccessToken string `json:"access_token"`
			Role        string `json:"role"`
		}
		if err := d.call(ctx, http.MethodPost, "/auth/token", "", map[string]any{"email": email, "password": benchPass}, &tok); err != nil {
			return err
		}
		if tok.AccessToken == "" || tok.Role == "admin" {
			return fmt.Errorf("token of %s: role %q, token present %v", email, tok.Role, tok.AccessToken != "")
		}
		d.users[u] = &benchUser{ID: out.ID, Email: email, Token: tok.AccessToken}
	}
	ids := make([]string, len(groups))
	idx := make([]int, len(groups))
	for i := range idx {
		idx[i] = i
	}
	if err := forEach(ctx, 4, idx, func(ctx context.Context, i int) error {
		var g struct {
			ID string `json:"id"`
		}
		if err := d.call(ctx, http.MethodPost, "/api/admin/groups", admin, map[string]any{"name": groups[i].name, "description": "agnes-bench"}, &g); err != nil {
			return err
		}
		ids[i] = g.ID
		for _, u := range groups[i].users {
			if err := d.call(ctx, http.MethodPost, "/api/admin/groups/"+g.ID+"/members", admin, map[string]any{"user_id": d.users[u].ID}, nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	d.nGroups = len(groups)
	var jobs []grantJob
	for i, g := range groups {
		for _, t := range g.tables {
			jobs = append(jobs, grantJob{group: ids[i], table: t})
		}
		for _, u := range g.users {
			d.grantsOf[u] += len(g.tables)
			d.nMembers++
		}
	}
	d.logf("setup: %d users, %d groups and memberships in %s; creating %d grants ...", len(users), len(groups), time.Since(t0).Round(time.Millisecond), len(jobs))
	t0 = time.Now()
	if err := forEach(ctx, grantWorkers, jobs, func(ctx context.Context, j grantJob) error {
		return d.call(ctx, http.MethodPost, "/api/permissions", admin, map[string]any{"group_id": j.group, "resource_type": "table", "resource_id": j.table}, nil)
	}); err != nil {
		return err
	}
	d.nGrants = len(jobs)
	d.logf("setup: %d grants in %s", len(jobs), time.Since(t0).Round(time.Millisecond))

	// Every table is distributable: in the admin's manifest with a hash. The
	// server's start-up rebuild recorded the extracts written before it
	// started; POST /api/admin/rebuild (about 25 s with 5,000 tables) runs
	// only if a table is missing.
	missing := func() (string, error) {
		man, err := d.connect(admin).Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
		if err != nil {
			return "", fmt.Errorf("admin manifest: %w", err)
		}
		for _, t := range append(slices.Clone(d.data.Tables), bulkTable) {
			if mt := man.GetTables()[t]; mt == nil || len(mt.GetHash()) != 32 {
				return t, nil
			}
		}
		return "", nil
	}
	t, err := missing()
	if err != nil || t == "" {
		d.setupNote = "every table was in the admin's manifest with its hash after the start-up rebuild (no further rebuild needed)"
		return err
	}
	t0 = time.Now()
	if err := d.rebuild(ctx); err != nil {
		return err
	}
	d.logf("setup: %s was not in the manifest; POST /api/admin/rebuild in %s", t, time.Since(t0).Round(time.Millisecond))
	if t, err = missing(); err == nil && t != "" {
		err = fmt.Errorf("table %s is not in the manifest with a content hash after POST /api/admin/rebuild", t)
	}
	d.setupNote = "POST /api/admin/rebuild, then every table was in the admin's manifest with its hash"
	return err
}

// rebuild calls POST /api/admin/rebuild and fails on reported problems.
func (d *dist) rebuild(ctx context.Context) error {
	var out struct {
		Generation int64             `json:"generation"`
		Problems   []json.RawMessage `json:"problems"`
	}
	if err := d.call(ctx, http.MethodPost, "/api/admin/rebuild", d.srv.Token, map[string]any{}, &out); err != nil {
		return err
	}
	if len(out.Problems) > 0 {
		return fmt.Errorf("rebuild reported %d problems, first: %s", len(out.Problems), out.Problems[0])
	}
	return nil
}

// connect is an SDK client over HTTP/1.1 with the SDK's defaults.
func (d *dist) connect(token string) *sdk.Client {
	return sdk.New(d.srv.URL, token, sdk.WithHTTPClient(&http.Client{Transport: newTransport(HTTP1)}))
}

// manifest is scenario H: GET /api/sync/manifest and SyncService.GetManifest
// as a non-admin user whose 20 groups grant all 5,000 tables.
func (d *dist) manifest(ctx context.Context) error {
	u := d.users["h"]
	want := len(d.data.Tables)
	c := d.connect(u.Token)
	var restBytes int64
	var restEnc string
	const (
		vREST = "REST GET /api/sync/manifest"
		vConn = "Connect SyncService.GetManifest"
	)
	restOnce := func(ctx context.Context, keep *[]byte) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.srv.URL+"/api/sync/manifest", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+u.Token)
		res, err := d.http.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			return fmt.Errorf("HTTP %d: %s", res.StatusCode, bytes.TrimSpace(b))
		}
		restEnc = res.Header.Get("Content-Encoding")
		if restEnc == "" {
			restEnc = "identity"
		}
		if res.Uncompressed {
			restEnc = "gzip (decompressed by the transport)"
		}
		if keep != nil {
			*keep, err = io.ReadAll(res.Body)
			restBytes = int64(len(*keep))
			return err
		}
		n, err := io.Copy(io.Discard, res.Body)
		restBytes = n
		return err
	}
	// Check the REST answer once, outside the timings: exactly the 5,000
	// granted tables, each with its hash.
	var body []byte
	if err := restOnce(ctx, &body); err != nil {
		return fmt.Errorf("%s: %w", vREST, err)
	}
	var parsed struct {
		Tables map[string]struct {
			Hash string `json:"hash"`
		} `json:"tables"`
	}
	if err := json.Unmarshal(body, &parsed); err != nil {
		return fmt.Errorf("%s: %w", vREST, err)
	}
	if len(parsed.Tables) != want {
		return fmt.Errorf("%s: %d tables, want %d", vREST, len(parsed.Tables), want)
	}
	for id, t := range parsed.Tables {
		if len(t.Hash) != 32 {
			return fmt.Errorf("%s: table %s without a hash", vREST, id)
		}
	}
	vs := []variant{
		{name: vREST, run: func(ctx context.Context) error { return restOnce(ctx, nil) }},
		{name: vConn, run: func(ctx context.Context) error {
			res, err := c.Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
			if err != nil {
				return err
			}
			if n := len(res.GetTables()); n != want {
				return fmt.Errorf("%d tables, want %d", n, want)
			}
			return nil
		}},
	}
	s, err := interleave(ctx, vs, d.cfg.WarmManifest, d.cfg.ItersManifest)
	if err != nil {
		return err
	}
	var connBytes int
	if m, err := c.Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{}); err == nil {
		connBytes = proto.Size(m)
	}
	scen := fmt.Sprintf("H. manifest, %s tables, user in %d groups", thousands(want), hGroups)
	for _, v := range []string{vREST, vConn} {
		p50, p90 := s[v].Median(), s[v].Quantile(0.9)
		r := Row{Scenario: scen, Metric: "p50 (p90 in next column), " + v + " as a non-admin user",
			Agnes: ms(p50), Baseline: "—", Ratio: "p90 " + ms(p90), Target: "p50 ≤ 20 ms", Result: passIf(p50 <= 20*time.Millisecond)}
		d.rep.add(r)
	}
	d.rep.timing("H manifest", vREST, s[vREST], fmt.Sprintf("%s JSON body, content encoding %s; timed to the last byte, not decoded", mb1(restBytes), restEnc))
	d.rep.timing("H manifest", vConn, s[vConn], fmt.Sprintf("%s protobuf message; SDK over HTTP/1.1, decoded by the SDK", mb1(int64(connBytes))))
	d.rep.note("H: user %s is in %d groups holding %d grants (table m is granted to group m mod 20 and, when m div 20 mod 10 = 0, also to group (m mod 20) xor 1: 500 tables granted twice); the manifest lists exactly the %d granted tables (checked on the REST answer before timing, and on every Connect answer). %d warm-up and %d timed rounds, REST and Connect interleaved, one request at a time over keep-alive HTTP/1.1 connections.",
		u.Email, hGroups, d.grantsOf["h"], want, d.cfg.WarmManifest, d.cfg.ItersManifest)
	return nil
}

// download is scenario I: the ~200 MB Parquet file through Agnes's
// GET /api/data/{id}/download and through a plain http.FileServer in its
// own process, interleaved, each read to io.Discard with a fresh request.
func (d *dist) download(ctx context.Context) error {
	u := d.users["i"]
	fsrv, err := StartFileServer(ctx, d.cfg.Exe, filepath.Dir(d.data.BulkPath), filepath.Join(d.cfg.OutDir, "logs", "file-server.log"))
	if err != nil {
		return fmt.Errorf("file server: %w", err)
	}
	defer func() { _ = fsrv.Stop() }()
	const (
		vAgnes = "Agnes GET /api/data/{id}/download"
		vFS    = "net/http http.FileServer"
	)
	type acc struct {
		cpu  []float64 // server CPU seconds per download
		ttfb Sample    // request sent → response headers received
		enc  string
	}
	stats := map[string]*acc{vAgnes: {}, vFS: {}}
	// One client per server, each with its own keep-alive connection pool and
	// Go's default request headers (Accept-Encoding: gzip included).
	agnesC := &http.Client{Transport: newTransport(HTTP1)}
	fsC := &http.Client{Transport: newTransport(HTTP1)}
	get := func(name string, c *http.Client, url, token string, pid int) func(context.Context) error {
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			t0, _ := procfs.CPUTicks(pid)
			start := time.Now()
			res, err := c.Do(req)
			if err != nil {
				return err
			}
			ttfb := time.Since(start)
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
				return fmt.Errorf("HTTP %d: %s", res.StatusCode, bytes.TrimSpace(b))
			}
			n, err := io.Copy(io.Discard, res.Body)
			if err != nil {
				return err
			}
			if n != d.data.BulkBytes {
				return fmt.Errorf("got %d bytes, want %d", n, d.data.BulkBytes)
			}
			t1, _ := procfs.CPUTicks(pid)
			a := stats[name]
			a.cpu = append(a.cpu, float64(t1-t0)/procfs.ClockTicks)
			a.ttfb = append(a.ttfb, ttfb)
			a.enc = res.Header.Get("Content-Encoding")
			if res.Uncompressed {
				a.enc = "gzip"
			}
			return nil
		}
	}
	vs := []variant{
		{name: vAgnes, run: get(vAgnes, agnesC, d.srv.URL+"/api/data/"+bulkTable+"/download", u.Token, d.srv.Pid)},
		{name: vFS, run: get(vFS, fsC, fsrv.URL+"/files/"+bulkTable+".parquet", "", fsrv.Pid)},
	}
	s, err := interleave(ctx, vs, d.cfg.WarmDownload, d.cfg.ItersDownload)
	if err != nil {
		return err
	}
	mbps := func(t time.Duration) float64 { return float64(d.data.BulkBytes) / (1 << 20) / t.Seconds() }
	ag, fs := mbps(s[vAgnes].Median()), mbps(s[vFS].Median())
	x := ag / fs
	d.rep.add(Row{Scenario: fmt.Sprintf("I. download of a %s Parquet file", mb(d.data.BulkBytes)), Metric: "throughput (median), Agnes GET /api/data/{id}/download / http.FileServer, same file, loopback",
		Agnes: fmt.Sprintf("%.0f MB/s", ag), Baseline: fmt.Sprintf("%.0f MB/s", fs), Ratio: fmt.Sprintf("%.3f×", x), Target: "≥ 0.90×", Result: passIf(x >= 0.90)})
	for _, v := range []string{vAgnes, vFS} {
		a := stats[v]
		enc := a.enc
		if enc == "" {
			enc = "identity"
		}
		d.rep.timing("I download", v, s[v], fmt.Sprintf("%.0f MB/s at the median; response headers after %s (median); server CPU per download median %.2f s; content encoding %s",
			mbps(s[v].Median()), ms(a.ttfb.Median()), medianF(a.cpu), enc))
	}
	d.rep.note("I: %s (%d bytes) served by the distribution server (as %s, granted the table through a group) and by http.FileServer in a separate process (pid %d, the harness re-run with -serve-files, log %s), both on loopback; %d warm-up and %d timed rounds, interleaved; each download is a fresh GET on a keep-alive HTTP/1.1 connection, read to io.Discard and its length checked. MB/s = MiB per second of wall time, request to last byte.",
		d.data.BulkPath, d.data.BulkBytes, u.Email, fsrv.Pid, fsrv.LogPath, d.cfg.WarmDownload, d.cfg.ItersDownload)
	return nil
}

// pullResult is what agnes pull --json prints.
type pullResult struct {
	Downloaded []string `json:"downloaded"`
	Removed    []string `json:"removed"`
	Unchanged  int      `json:"unchanged"`
	Tables     int      `json:"tables"`
	Bytes      int64    `json:"bytes"`
	DurationMS int64    `json:"duration_ms"`
	Database   string   `json:"database"`
}

// pull is scenario J: agnes pull as a user granted 1,000 tables, after one
// of them changed.
func (d *dist) pull(ctx context.Context) error {
	u := d.users["j"]
	want := len(d.data.PullTables)
	dir := filepath.Join(d.cfg.OutDir, "pull-J")
	cfgDir := filepath.Join(d.cfg.OutDir, "pull-J-config")
	for _, p := range []string{dir, cfgDir} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		return err
	}
	if !d.cfg.Keep {
		defer os.RemoveAll(dir)
		defer os.RemoveAll(cfgDir)
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "AGNES_") {
			env = append(env, kv)
		}
	}
	env = append(env, "AGNES_SERVER="+d.srv.URL, "AGNES_TOKEN="+u.Token, "AGNES_CONFIG_DIR="+cfgDir)
	run := func(ctx context.Context) (pullResult, time.Duration, error) {
		var out, errb bytes.Buffer
		cmd := exec.CommandContext(ctx, d.cfg.AgnesBin, "pull", "--dir", dir, "--json")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &errb
		t0 := time.Now()
		err := cmd.Run()
		wall := time.Since(t0)
		var res pullResult
		if err != nil {
			return res, wall, fmt.Errorf("agnes pull: %w: %s", err, bytes.TrimSpace(errb.Bytes()))
		}
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			return res, wall, fmt.Errorf("agnes pull --json: %w: %.300s", err, out.Bytes())
		}
		return res, wall, nil
	}

	t0 := time.Now()
	first, wall, err := run(ctx)
	if err != nil {
		return err
	}
	if len(first.Downloaded) != want || first.Tables != want {
		return fmt.Errorf("first pull: %d downloaded of %d tables, want %d of %d", len(first.Downloaded), first.Tables, want, want)
	}
	d.logf("J: first pull of %d tables (%s) in %s", want, mb1(first.Bytes), wall.Round(time.Millisecond))
	d.rep.note("J: the first, full pull (setup, not measured) downloaded %d tables, %s, in %s (the command's own duration_ms %d).", want, mb1(first.Bytes), ms(time.Since(t0)), first.DurationMS)

	// Rewrite tables with a version no earlier run used (the cached data is
	// put back to version 0 at the end, also after a failure).
	base := int(time.Now().Unix()%1_000_000) + 1
	var changed []string
	defer func() {
		if len(changed) == 0 {
			return
		}
		rctx := context.WithoutCancel(ctx)
		// No rebuild: J runs last on this server, and the next start rebuilds.
		if err := d.data.rewriteTables(rctx, changed, 0); err != nil {
			d.rep.note("J: could not restore the changed tables in the cached data (%v); -rebuild-data regenerates it", err)
		}
	}()
	var walls, noop, own Sample
	var rebuilds Sample
	exact := 0
	var wrong []string
	for k := range d.cfg.Pulls {
		if err := ctx.Err(); err != nil {
			return err
		}
		table := d.data.PullTables[(k*101)%want]
		if err := d.data.rewriteTables(ctx, []string{table}, base+k); err != nil {
			return fmt.Errorf("change %s: %w", table, err)
		}
		changed = append(changed, table)
		t := time.Now()
		if err := d.rebuild(ctx); err != nil {
			return err
		}
		rebuilds = append(rebuilds, time.Since(t))
		_, _ = waitCPUQuiet(d.srv.Pid, 300*time.Millisecond, 1, 10*time.Second)
		res, wall, err := run(ctx)
		if err != nil {
			return err
		}
		walls, own = append(walls, wall), append(own, time.Duration(res.DurationMS)*time.Millisecond)
		if len(res.Downloaded) == 1 && res.Downloaded[0] == table && res.Tables == want && len(res.Removed) == 0 {
			exact++
		} else {
			wrong = append(wrong, fmt.Sprintf("round %d changed %s, pull downloaded %v (tables %d, removed %v)", k+1, table, res.Downloaded, res.Tables, res.Removed))
		}
		// Context: the same pull again, nothing changed.
		res, wall, err = run(ctx)
		if err != nil {
			return err
		}
		if len(res.Downloaded) != 0 {
			wrong = append(wrong, fmt.Sprintf("round %d: the pull after it downloaded %v, want nothing", k+1, res.Downloaded))
		}
		noop = append(noop, wall)
	}
	n := d.cfg.Pulls
	med := walls.Median()
	scen := fmt.Sprintf("J. agnes pull, %s tables, 1 changed", thousands(want))
	d.rep.add(Row{Scenario: scen, Metric: fmt.Sprintf("wall of `agnes pull --dir D --json` (subprocess), median of %d; exactly the changed table downloaded", n),
		Agnes: ms(med), Baseline: "—", Ratio: fmt.Sprintf("exactly 1: %d/%d", exact, n), Target: "≤ 2 s and exactly 1 every time",
		Result: passIf(med <= 2*time.Second && exact == n && len(wrong) == 0)})
	d.rep.add(Row{Scenario: "J. (context)", Metric: "wall of the same pull right after, nothing changed (median)",
		Agnes: ms(noop.Median()), Baseline: "—", Ratio: "—", Target: "—", Result: Info})
	d.rep.timing("J agnes pull", "1 table changed (wall)", walls, fmt.Sprintf("the command's own duration_ms: median %s", ms(own.Median())))
	d.rep.timing("J agnes pull", "nothing changed (wall)", noop, "")
	d.rep.timing("J agnes pull", "POST /api/admin/rebuild before each pull (not in the pull's time)", rebuilds, fmt.Sprintf("%d extracts, %d tables", distSources+1, len(d.data.Tables)+1))
	d.rep.note("J: user %s granted %d tables (%d of each source) through %d of H's groups; each round rewrites one granted table with the extract Writer (one WriteQuery and one Update of its source), calls POST /api/admin/rebuild, waits for the server's CPU to go quiet, then times `%s pull --dir %s --json` as a subprocess (AGNES_SERVER, AGNES_TOKEN, private AGNES_CONFIG_DIR) and checks that its JSON lists exactly that table as downloaded; then times the same pull again with nothing changed (context). Changed tables: %s (restored to their generated data afterwards).",
		u.Email, want, distPullPerSrc, jGroups, d.cfg.AgnesBin, dir, strings.Join(changed, ", "))
	for _, w := range wrong {
		d.rep.note("J: FAIL: %s", w)
	}
	return nil
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := slices.Clone(v)
	slices.Sort(c)
	return c[len(c)/2]
}

// mb1 formats bytes as MiB with one decimal (kB below 1 MiB).
func mb1(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%.1f kB", float64(b)/1024)
	}
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}

// thousands is 5000 → "5,000".
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
