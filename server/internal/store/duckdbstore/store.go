package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is system.duckdb. Reads run concurrently; writes are serialized by one mutex,
// because DuckDB's optimistic concurrency would otherwise abort concurrent writers and
// admin writes are rare enough that a queue costs nothing.
type Store struct {
	db  *sql.DB
	wmu sync.Mutex
	now func() time.Time

	// The versions move after every committed write of their domain (store.Versions).
	identityVersion atomic.Uint64
	dataVersion     atomic.Uint64

	// The webhook inbox's group commit (AddWebhookEvent).
	inboxMu    sync.Mutex // guards inbox
	inbox      []*inboxAdd
	inboxWrite sync.Mutex // held by the caller writing the queued rows

	quotaPruned atomic.Value // string: the UTC date of the last pruning of remote_usage

	auditMu   sync.RWMutex // guards audits against Close
	audits    chan auditRow
	auditDone chan struct{}
}

var _ store.Store = (*Store)(nil)

// DataVersion implements store.Versions.
func (s *Store) DataVersion() uint64 { return s.dataVersion.Load() }

// IdentityVersion implements store.Versions.
func (s *Store) IdentityVersion() uint64 { return s.identityVersion.Load() }

// writeIdentity is write for users, groups, memberships, grants, tokens,
// sessions and settings: it moves IdentityVersion after the commit.
func (s *Store) writeIdentity(ctx context.Context, fn func(tx *sql.Tx) error) error {
	defer s.identityVersion.Add(1)
	return s.write(ctx, fn)
}

// writeData is write for the registry and sync state: it moves DataVersion.
func (s *Store) writeData(ctx context.Context, fn func(tx *sql.Tx) error) error {
	defer s.dataVersion.Add(1)
	return s.write(ctx, fn)
}

// Open opens (creating if needed) the database file, applies pending migrations and
// seeds the system groups. path ":memory:" gives a private in-memory database.
func Open(ctx context.Context, path string) (*Store, error) {
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("create state dir: %w", err)
		}
	} else {
		path = ""
	}
	connector, err := duckdb.NewConnector(path, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	s := &Store{db: db, now: func() time.Time { return time.Now().UTC() }}
	if err := s.Migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.seed(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.audits, s.auditDone = make(chan auditRow, 4096), make(chan struct{})
	go s.auditLoop(s.audits, s.auditDone)
	return s, nil
}

// Close writes the queued audit rows and closes the database.
func (s *Store) Close() error {
	s.stopAudit()
	return s.db.Close()
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %q: name must start with NNNN_", e.Name())
		}
		body, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must be 1..n without gaps", m.name)
		}
	}
	return out, nil
}

// LatestSchemaVersion is the schema version this binary expects.
func LatestSchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// SchemaVersion implements store.Schema.
func (s *Store) SchemaVersion(ctx context.Context) (applied, latest int, err error) {
	applied, err = s.appliedVersion(ctx)
	return applied, LatestSchemaVersion(), err
}

func (s *Store) appliedVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

// Migrate applies pending migrations, each in its own transaction. A database newer
// than this binary is refused rather than guessed at.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	current, err := s.appliedVersion(ctx)
	if err != nil {
		return err
	}
	if current > len(ms) {
		return fmt.Errorf("database schema version %d is newer than this binary (%d): upgrade agnes-server", current, len(ms))
	}
	for _, m := range ms[current:] {
		err := s.write(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_version VALUES (?, ?, ?)`, m.version, m.name, s.now())
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
	}
	return nil
}

// write runs fn in a write transaction, serialized with every other write.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	// The transaction itself ignores ctx: the driver interrupts a BEGIN or a
	// COMMIT cut short by it without knowing whether DuckDB ran it, and the
	// pooled connection stayed inside a transaction, failing every later
	// write on it. The statements in fn still end with ctx, and a failed one
	// is rolled back here.
	tx, err := s.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return classify(err)
	}
	if err := tx.Commit(); err != nil {
		return classify(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// writeStatement runs one statement as its own transaction (DuckDB's
// auto-commit), serialized with every other write: what write does for a
// single statement, without the BEGIN and COMMIT statements, which are a
// third of a small insert's CPU. Like write's BEGIN and COMMIT, it ignores
// ctx's cancellation, so an interrupted statement never leaves its outcome
// unknown.
func (s *Store) writeStatement(ctx context.Context, query string, args ...any) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(context.WithoutCancel(ctx), query, args...); err != nil {
		return classify(err)
	}
	return nil
}

// classify turns DuckDB constraint violations into store.ErrAlreadyExists, keeping the
// original error in the chain for logs.
func classify(err error) error {
	var de *duckdb.Error
	if errors.As(err, &de) && de.Type == duckdb.ErrorTypeConstraint &&
		(strings.Contains(de.Msg, "Duplicate key") || strings.Contains(de.Msg, "unique")) {
		return fmt.Errorf("%w: %w", store.ErrAlreadyExists, err)
	}
	return err
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// collect reads every row of a query with scan.
func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// nullTime converts a nullable timestamp for the API layer.
func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time.UTC()
	return &v
}

// op wraps an error with the operation that failed, turning sql.ErrNoRows into
// store.ErrNotFound; sentinels stay comparable with errors.Is.
func op(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", name, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", name, err)
}
