package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	bindings "github.com/duckdb/duckdb-go-bindings"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/orchestrator"
)

// generation is one opened master. refs, retired and deleteFile are guarded
// by Engine.mu; the rest never changes after openGeneration.
type generation struct {
	num   uint64
	path  string
	db    bindings.Database // owned: no instance cache, closed with the generation
	pool  *pool
	views map[string]string // lower-case name → name
	names []string          // sorted

	refs       int
	retired    bool // replaced or engine closed: close when refs reaches 0
	deleteFile bool // replaced: delete the file once closed
}

// openGeneration opens the master read-only, attaches what its
// _agnes_sources lists, hardens the instance and reads its views. No query
// reaches the pool before the hardening is done.
func openGeneration(ctx context.Context, path string, num uint64, opts Options) (*generation, []string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open generation %d: %w", num, err)
	}
	db, err := openDatabase(abs, map[string]string{
		"access_mode":                  "READ_ONLY",
		"autoinstall_known_extensions": "false",
		"autoload_known_extensions":    "false",
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open generation %d: %w", num, err)
	}
	g := &generation{num: num, path: abs, db: db, pool: newPool(db, opts.MaxConns)}
	warnings, err := g.setup(ctx, opts)
	if err != nil {
		g.pool.close()
		bindings.Close(&g.db)
		return nil, warnings, fmt.Errorf("open generation %d: %w", num, err)
	}
	return g, warnings, nil
}

// setup runs on a connection of its own, through database/sql so that the
// shared helpers (which take an extract.Conn) work unchanged. The pool's
// connections are opened after the attachments and before the lock, which
// would refuse their streaming setting; the global settings of the
// hardening apply to them as to any connection.
func (g *generation) setup(ctx context.Context, opts Options) ([]string, error) {
	db := openSQL(g.db)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	sources, err := orchestrator.ReadSources(ctx, conn)
	if err != nil {
		return nil, err
	}
	var warnings []string
	var files, dirs []string
	for _, s := range sources {
		if err := extract.Attach(ctx, conn, s.Path, s.Name); err != nil {
			warnings = append(warnings, fmt.Sprintf("source %s: %v", s.Name, err))
			continue
		}
		f, d, err := parquetAllowList(filepath.Join(filepath.Dir(s.Path), extract.DataDir))
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("source %s: %v", s.Name, err))
		}
		files, dirs = append(files, f...), append(dirs, d...)
		for _, r := range s.Remotes {
			var token string
			if r.TokenEnv != "" {
				token = opts.Getenv(r.TokenEnv)
			}
			if err := extract.AttachRemote(ctx, conn, r, token, false); err != nil {
				warnings = append(warnings, fmt.Sprintf("source %s: %v", s.Name, err))
			}
		}
	}
	if err := g.pool.fill(ctx); err != nil {
		return warnings, fmt.Errorf("connection pool: %w", err)
	}
	if err := harden(ctx, conn, files, dirs, opts); err != nil {
		return warnings, err
	}
	if err := g.readViews(ctx, conn); err != nil {
		return warnings, err
	}
	return warnings, nil
}

// parquetAllowList lists what queries may read in a source's data/: each
// single-file table exactly (no directory grant, so nothing can be written
// next to it), and each partitioned table's folder (its views glob).
func parquetAllowList(dataDir string) (files, dirs []string, err error) {
	entries, err := os.ReadDir(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil // a source with only remote tables
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		p := filepath.Join(dataDir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), "."): // a writer's temp file
		case e.IsDir():
			dirs = append(dirs, p+string(filepath.Separator))
		case strings.HasSuffix(e.Name(), ".parquet"):
			files = append(files, p)
		}
	}
	return files, dirs, nil
}

// harden locks the instance down. DuckDB adds the attached databases and
// its temp directory to the allowed paths itself.
func harden(ctx context.Context, conn *sql.Conn, files, dirs []string, opts Options) error {
	// Memory, threads and spill space are bounded per instance: what the
	// sandbox lets through still cannot take the machine. (They go first:
	// DuckDB refuses to move temp_directory once external access is off.)
	var stmts []string
	if opts.MemoryLimit != "" {
		stmts = append(stmts, "SET GLOBAL memory_limit = "+quoteString(opts.MemoryLimit))
	}
	if opts.Threads > 0 {
		stmts = append(stmts, fmt.Sprintf("SET GLOBAL threads = %d", opts.Threads))
	}
	if opts.TempDir != "" {
		stmts = append(stmts, "SET GLOBAL temp_directory = "+quoteString(opts.TempDir))
	}
	if opts.MaxTempSize != "" {
		stmts = append(stmts, "SET GLOBAL max_temp_directory_size = "+quoteString(opts.MaxTempSize))
	}
	stmts = append(stmts,
		"SET GLOBAL allowed_paths = "+stringList(files),
		"SET GLOBAL allowed_directories = "+stringList(dirs),
		"SET GLOBAL enable_external_access = false",
		"SET GLOBAL autoinstall_known_extensions = false",
		"SET GLOBAL autoload_known_extensions = false",
		"SET GLOBAL allow_community_extensions = false",
		"SET GLOBAL allow_unsigned_extensions = false",
		// Its validation can miss a file replaced within the same second (see rerunnable).
		"SET GLOBAL enable_external_file_cache = false",
	)
	stmts = append(stmts, "SET GLOBAL lock_configuration = true")
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("harden: %s: %w", s, err)
		}
	}
	var locked, external bool
	err := conn.QueryRowContext(ctx,
		"SELECT current_setting('lock_configuration'), current_setting('enable_external_access')").Scan(&locked, &external)
	if err != nil {
		return fmt.Errorf("harden: %w", err)
	}
	if !locked || external {
		return fmt.Errorf("harden: settings did not take (lock_configuration=%v, enable_external_access=%v)", locked, external)
	}
	return nil
}

func (g *generation) readViews(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, `SELECT view_name FROM duckdb_views()
		WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal`)
	if err != nil {
		return fmt.Errorf("list views: %w", err)
	}
	defer rows.Close()
	g.views = map[string]string{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("list views: %w", err)
		}
		g.views[strings.ToLower(name)] = name
		g.names = append(g.names, name)
	}
	slices.Sort(g.names)
	return rows.Err()
}

// close closes the pool and the instance (no query is running: refs is 0)
// and, for a replaced generation, deletes its file with DuckDB's side
// files.
func (g *generation) close() error {
	g.pool.close()
	bindings.Close(&g.db)
	if !g.deleteFile {
		return nil
	}
	var err error
	for _, p := range []string{g.path, g.path + ".wal"} {
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return errors.Join(err, os.RemoveAll(g.path+".tmp")) // DuckDB's spill directory
}

func stringList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = quoteString(s)
	}
	return "[" + strings.Join(q, ", ") + "]::VARCHAR[]"
}

func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
