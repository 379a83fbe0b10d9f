package orchestrator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors/extract"
)

// Directory and file names under $DATA_DIR.
const (
	extractsDir  = "extracts"
	analyticsDir = "analytics"
	genDir       = "gen"
	masterFile   = "server.duckdb"
)

// sourcesTable is the master's record of what to attach; the leading
// underscore and the _agnes prefix keep it out of the user's view namespace.
const sourcesTable = "_agnes_sources"

// ExtractDir is where the connector for source writes its extract.
func ExtractDir(dataDir, source string) string {
	return filepath.Join(dataDir, extractsDir, source)
}

// Options tunes an Orchestrator. The zero value is usable.
type Options struct {
	// RemoteExtensions are the extensions a _remote_attach row may name.
	// Default: keboola, bigquery.
	RemoteExtensions []string
	// TokenEnvs are the environment variables a _remote_attach row may read
	// its token from; an extract must not be able to send any other secret
	// of the server to a URL it chooses. Default: KBC_TOKEN,
	// KBC_STORAGE_TOKEN, KEBOOLA_STORAGE_TOKEN.
	TokenEnvs []string
	// Getenv reads tokens. Default: os.Getenv.
	Getenv func(string) string
}

// Orchestrator rebuilds the master database of one data directory. It
// assumes it is the only one doing so: on its first rebuild it deletes the
// generation files earlier processes left behind.
type Orchestrator struct {
	dataDir string
	opts    Options

	mu      sync.Mutex
	pending *call // the next rebuild, not started yet; later callers join it
	running bool
	gen     uint64 // last generation built; 0 until the first rebuild
}

type call struct {
	ctx  context.Context
	done chan struct{}
	res  *Result
	err  error
}

// New returns an Orchestrator for dataDir.
func New(dataDir string, opts Options) *Orchestrator {
	if opts.RemoteExtensions == nil {
		opts.RemoteExtensions = []string{"keboola", "bigquery"}
	}
	if opts.TokenEnvs == nil {
		opts.TokenEnvs = []string{"KBC_TOKEN", "KBC_STORAGE_TOKEN", "KEBOOLA_STORAGE_TOKEN"}
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	return &Orchestrator{dataDir: dataDir, opts: opts}
}

// Rebuild builds a new generation of the master from the extracts on disk
// and publishes it. Rebuilds never overlap. A call made while one runs waits
// for the next one, and every call waiting then shares that next rebuild:
// a burst of triggers costs at most two rebuilds, and each caller gets a
// result that started after its call. ctx bounds the wait only; a started
// rebuild runs to the end so that the files stay consistent.
//
// The error is for failures of the rebuild as a whole (disk, DuckDB);
// trouble with single sources is in Result.Problems.
func (o *Orchestrator) Rebuild(ctx context.Context) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	o.mu.Lock()
	c := o.pending
	if c == nil {
		c = &call{ctx: context.WithoutCancel(ctx), done: make(chan struct{})}
		o.pending = c
		if !o.running {
			o.running = true
			go o.loop()
		}
	}
	o.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return nil, fmt.Errorf("rebuild: %w", ctx.Err())
	}
}

func (o *Orchestrator) loop() {
	for {
		o.mu.Lock()
		c := o.pending
		o.pending = nil
		if c == nil {
			o.running = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		c.res, c.err = o.rebuild(c.ctx)
		close(c.done)
	}
}

// rebuild runs in the loop goroutine only, so o.gen needs no lock.
func (o *Orchestrator) rebuild(ctx context.Context) (*Result, error) {
	start := time.Now()
	dir := filepath.Join(o.dataDir, analyticsDir, genDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	if o.gen == 0 {
		last, err := clearGenerations(dir)
		if err != nil {
			return nil, fmt.Errorf("rebuild: %w", err)
		}
		o.gen = last
	}
	gen := o.gen + 1
	res := &Result{Generation: gen, Master: filepath.Join(dir, strconv.FormatUint(gen, 10)+".duckdb")}
	tmp := res.Master + ".build"
	removeDB(tmp)
	defer removeDB(tmp)

	if err := o.build(ctx, tmp, res); err != nil {
		return nil, fmt.Errorf("rebuild generation %d: %w", gen, err)
	}
	if err := publish(tmp, res.Master, filepath.Join(o.dataDir, analyticsDir, masterFile)); err != nil {
		return nil, fmt.Errorf("rebuild generation %d: %w", gen, err)
	}
	o.gen = gen
	res.BuiltAt = time.Now().UTC()
	res.Took = time.Since(start)
	return res, nil
}

// build writes the master into path: attaches every source, records it in
// _agnes_sources, creates the views, checkpoints.
func (o *Orchestrator) build(ctx context.Context, path string, res *Result) (err error) {
	connector, err := duckdb.NewConnector(path+"?autoinstall_known_extensions=false&autoload_known_extensions=false", nil)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer func() { err = errors.Join(err, db.Close()) }()
	conn, err := db.Conn(ctx) // one connection: attachments and views in order
	if err != nil {
		return err
	}
	defer conn.Close()

	if _, err := conn.ExecContext(ctx, `CREATE TABLE `+sourcesTable+` (
		source VARCHAR NOT NULL, kind VARCHAR NOT NULL, path VARCHAR,
		alias VARCHAR, extension VARCHAR, url VARCHAR, token_env VARCHAR)`); err != nil {
		return err
	}
	names, err := o.sourceNames(res)
	if err != nil {
		return err
	}
	b := &builder{o: o, conn: conn, res: res, names: names, claimed: map[string]string{}, aliases: map[string]bool{}}
	for _, name := range names {
		if err := b.source(ctx, name); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, "CHECKPOINT")
	return err
}

// sourceNames lists the usable source directories in sorted order and
// reports the unusable ones. Plain files are ignored silently.
func (o *Orchestrator) sourceNames(res *Result) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(o.dataDir, extractsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if !e.IsDir() {
			continue
		}
		if !extract.ValidName(name) {
			res.Problems = append(res.Problems, Problem{Kind: ProblemSkipped, Source: name, Message: "not a valid source name"})
			continue
		}
		if _, err := os.Stat(filepath.Join(o.dataDir, extractsDir, name, extract.DBFile)); err != nil {
			res.Problems = append(res.Problems, Problem{Kind: ProblemSkipped, Source: name, Message: "no " + extract.DBFile})
			continue
		}
		names = append(names, name)
	}
	return names, nil
}

type builder struct {
	o       *Orchestrator
	conn    *sql.Conn
	res     *Result
	names   []string          // every source about to be attached
	claimed map[string]string // lower-case view name → source that owns it
	aliases map[string]bool   // lower-case remote aliases taken
}

func (b *builder) problem(kind ProblemKind, source, table, format string, args ...any) {
	b.res.Problems = append(b.res.Problems, Problem{Kind: kind, Source: source, Table: table, Message: fmt.Sprintf(format, args...)})
}

// source attaches one extract and creates its views. Only failures of the
// master itself are returned; the source's own trouble becomes Problems.
func (b *builder) source(ctx context.Context, name string) error {
	path, err := filepath.Abs(filepath.Join(b.o.dataDir, extractsDir, name, extract.DBFile))
	if err != nil {
		return err
	}
	if err := extract.Attach(ctx, b.conn, path, name); err != nil {
		b.problem(ProblemBroken, name, "", "%v", err)
		return nil
	}
	contents, err := extract.ReadAttached(ctx, b.conn, name)
	if err != nil {
		b.problem(ProblemBroken, name, "", "%v", err)
		_, derr := b.conn.ExecContext(ctx, "DETACH "+quoteIdent(name))
		return derr
	}
	src := Source{Name: name, Path: path}
	remotesOK := true
	for _, r := range contents.Remotes {
		if err := b.remote(ctx, name, r); err != nil {
			b.problem(ProblemRemote, name, "", "%v", err)
			remotesOK = false
			continue
		}
		src.Remotes = append(src.Remotes, r)
	}
	if err := b.record(ctx, src); err != nil {
		return err
	}
	objects, err := b.objects(ctx, name)
	if err != nil {
		return err
	}
	for _, t := range contents.Tables {
		b.view(ctx, name, t, objects, remotesOK)
	}
	b.res.Sources = append(b.res.Sources, src)
	return nil
}

// remote checks a _remote_attach row against the policy and attaches it.
func (b *builder) remote(ctx context.Context, source string, r extract.RemoteAttach) error {
	if err := r.Check(); err != nil {
		return err
	}
	alias := strings.ToLower(r.Alias)
	switch {
	case !slices.Contains(b.o.opts.RemoteExtensions, r.Extension):
		return fmt.Errorf("alias %s: extension %s is not allowed", r.Alias, r.Extension)
	case r.TokenEnv != "" && !slices.Contains(b.o.opts.TokenEnvs, r.TokenEnv):
		return fmt.Errorf("alias %s: token_env %s is not allowed", r.Alias, r.TokenEnv)
	case b.aliases[alias] || slices.ContainsFunc(b.names, func(n string) bool { return strings.EqualFold(n, r.Alias) }):
		return fmt.Errorf("alias %s is already taken by another source or remote", r.Alias)
	}
	var token string
	if r.TokenEnv != "" {
		if token = b.o.opts.Getenv(r.TokenEnv); token == "" {
			return fmt.Errorf("alias %s: environment variable %s is empty", r.Alias, r.TokenEnv)
		}
	}
	if err := extract.AttachRemote(ctx, b.conn, r, token, true); err != nil {
		return err
	}
	b.aliases[alias] = true
	return nil
}

// record writes what the engine must attach for src's views to resolve.
func (b *builder) record(ctx context.Context, src Source) error {
	const ins = "INSERT INTO " + sourcesTable + " VALUES (?, ?, ?, ?, ?, ?, ?)"
	if _, err := b.conn.ExecContext(ctx, ins, src.Name, "extract", src.Path, nil, nil, nil, nil); err != nil {
		return err
	}
	for _, r := range src.Remotes {
		if _, err := b.conn.ExecContext(ctx, ins, src.Name, "remote", nil, r.Alias, r.Extension, r.URL, r.TokenEnv); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) objects(ctx context.Context, catalog string) (map[string]bool, error) {
	rows, err := b.conn.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_catalog = ? AND table_schema = 'main'`, catalog)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[strings.ToLower(n)] = true
	}
	return out, rows.Err()
}

// view creates the master view for one _meta row, or reports why not.
func (b *builder) view(ctx context.Context, source string, t extract.Table, objects map[string]bool, remotesOK bool) {
	m := t.Meta
	name, key := m.TableName, strings.ToLower(m.TableName)
	switch {
	case !extract.ValidName(name):
		b.problem(ProblemTable, source, name, "not a valid table name")
	case extract.Reserved(name):
		b.problem(ProblemTable, source, name, "reserved table name")
	case !objects[key]:
		b.problem(ProblemTable, source, name, "no view or table %s in the extract", name)
	case m.QueryMode == extract.ModeRemote && !remotesOK:
		b.problem(ProblemRemote, source, name, "remote view skipped: its remote source is not attached")
	case b.claimed[key] == source:
		b.problem(ProblemTable, source, name, "appears twice in _meta; the first row is used")
	case b.claimed[key] != "":
		b.problem(ProblemConflict, source, name, "view name already taken by source %s", b.claimed[key])
	default:
		q := "CREATE VIEW main." + quoteIdent(name) + " AS SELECT * FROM " + quoteIdent(source) + ".main." + quoteIdent(name)
		if _, err := b.conn.ExecContext(ctx, q); err != nil {
			b.problem(ProblemTable, source, name, "create view: %v", err)
			return
		}
		b.claimed[key] = source
		b.res.Views = append(b.res.Views, View{Source: source, Meta: m, Parts: t.Parts, Select: t.View})
	}
}

// publish moves the finished build to its generation path, then points
// analytics/server.duckdb at it through a hard link renamed into place, so
// both names switch atomically.
func publish(tmp, gen, master string) error {
	if err := os.Rename(tmp, gen); err != nil {
		return err
	}
	link := master + ".tmp"
	_ = os.Remove(link)
	if err := os.Link(gen, link); err != nil {
		return err
	}
	// A WAL next to server.duckdb would belong to the previous file.
	if err := os.Remove(master + ".wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(link, master); err != nil {
		return err
	}
	return errors.Join(syncDir(filepath.Dir(gen)), syncDir(filepath.Dir(master)))
}

// clearGenerations deletes what earlier processes left in the generation
// directory and returns the highest generation number found, so numbers
// (and therefore paths) are never reused.
func clearGenerations(dir string) (uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, e := range entries {
		num, _, _ := strings.Cut(e.Name(), ".")
		if n, err := strconv.ParseUint(num, 10, 64); err == nil && n > last {
			last = n
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return 0, err
		}
	}
	return last, nil
}

// ReadSources returns the attachments recorded in a master database opened
// on c, in the order they were made.
func ReadSources(ctx context.Context, c extract.Conn) ([]Source, error) {
	rows, err := c.QueryContext(ctx, `SELECT source, kind, coalesce(path, ''), coalesce(alias, ''),
		coalesce(extension, ''), coalesce(url, ''), coalesce(token_env, '') FROM main.`+sourcesTable+` ORDER BY rowid`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", sourcesTable, err)
	}
	defer rows.Close()
	var out []Source
	for rows.Next() {
		var name, kind, path string
		var r extract.RemoteAttach
		if err := rows.Scan(&name, &kind, &path, &r.Alias, &r.Extension, &r.URL, &r.TokenEnv); err != nil {
			return nil, fmt.Errorf("read %s: %w", sourcesTable, err)
		}
		switch {
		case kind == "extract":
			out = append(out, Source{Name: name, Path: path})
		case len(out) > 0 && out[len(out)-1].Name == name:
			out[len(out)-1].Remotes = append(out[len(out)-1].Remotes, r)
		default:
			return nil, fmt.Errorf("read %s: remote %s before its source %s", sourcesTable, r.Alias, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", sourcesTable, err)
	}
	return out, nil
}

func removeDB(path string) {
	for _, p := range []string{path, path + ".wal"} {
		_ = os.Remove(p) // best effort: a leftover only costs disk until the next start
	}
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
