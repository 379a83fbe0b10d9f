package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// UpsertSyncStates records the tables a rebuild found, in one transaction. Rows
// that did not change are skipped and the rest are written in multi-row statements:
// a rebuild of thousands of tables, most unchanged, costs a few statements.
func (s *Store) UpsertSyncStates(ctx context.Context, states []store.SyncState) error {
	current, err := s.SyncStates(ctx)
	if err != nil {
		return err
	}
	old := make(map[string]*store.SyncState, len(current))
	for _, st := range current {
		old[st.TableID] = st
	}
	var args []any
	rows := 0
	for _, st := range states {
		if st.Status == "" {
			st.Status = "ok"
		}
		if prev := old[st.TableID]; prev != nil && sameState(prev, &st) {
			continue
		}
		parts, err := json.Marshal(nonNilParts(st.Parts))
		if err != nil {
			return err
		}
		args = append(args, st.TableID, st.Source, st.QueryMode, st.LastSync, st.Rows, st.SizeBytes,
			st.Hash, string(parts), st.Path, st.Status, st.Error)
		rows++
	}
	if rows == 0 {
		return nil
	}
	const perStatement = 500
	const columns = 11
	return op("upsert sync states", s.writeData(ctx, func(tx *sql.Tx) error {
		for start := 0; start < rows; start += perStatement {
			n := min(perStatement, rows-start)
			values := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", n), ", ")
			if _, err := tx.ExecContext(ctx, `INSERT INTO sync_state
				(table_id, source, query_mode, last_sync, rows, file_size_bytes, hash, parts, path, status, error)
				VALUES `+values+`
				ON CONFLICT (table_id) DO UPDATE SET source = excluded.source, query_mode = excluded.query_mode,
					last_sync = excluded.last_sync, rows = excluded.rows, file_size_bytes = excluded.file_size_bytes,
					hash = excluded.hash, parts = excluded.parts, path = excluded.path, status = excluded.status,
					error = excluded.error`, args[start*columns:(start+n)*columns]...); err != nil {
				return fmt.Errorf("sync state: %w", err)
			}
		}
		return nil
	}))
}

func sameState(a, b *store.SyncState) bool {
	sameTime := (a.LastSync == nil) == (b.LastSync == nil) && (a.LastSync == nil || a.LastSync.Equal(*b.LastSync))
	return sameTime && a.Source == b.Source && a.QueryMode == b.QueryMode && a.Rows == b.Rows &&
		a.SizeBytes == b.SizeBytes && a.Hash == b.Hash && slices.Equal(nonNilParts(a.Parts), nonNilParts(b.Parts)) &&
		a.Path == b.Path && a.Status == b.Status && a.Error == b.Error
}

func nonNilParts(p []store.Part) []store.Part {
	if p == nil {
		return []store.Part{}
	}
	return p
}

// MarkSyncError records a failed sync of a table, keeping its last good data.
func (s *Store) MarkSyncError(ctx context.Context, tableID, source, msg string) error {
	return op("mark sync error", s.writeData(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sync_state (table_id, source, status, error) VALUES (?, ?, 'error', ?)
			ON CONFLICT (table_id) DO UPDATE SET status = 'error', error = excluded.error`, tableID, source, msg)
		return err
	}))
}

// DeleteSyncState forgets a table's data.
func (s *Store) DeleteSyncState(ctx context.Context, tableID string) error {
	return op("delete sync state", s.writeData(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sync_state WHERE table_id = ?`, tableID)
		return err
	}))
}

const syncStateSelect = `SELECT table_id, source, query_mode, last_sync, coalesce(rows, 0), coalesce(file_size_bytes, 0),
	hash, parts, path, status, error FROM sync_state`

func scanSyncState(row scanner) (*store.SyncState, error) {
	st := &store.SyncState{}
	var last sql.NullTime
	var parts string
	if err := row.Scan(&st.TableID, &st.Source, &st.QueryMode, &last, &st.Rows, &st.SizeBytes, &st.Hash, &parts,
		&st.Path, &st.Status, &st.Error); err != nil {
		return nil, err
	}
	st.LastSync = nullTime(last)
	if err := json.Unmarshal([]byte(parts), &st.Parts); err != nil {
		return nil, fmt.Errorf("sync state %s parts: %w", st.TableID, err)
	}
	return st, nil
}

// SyncStates lists every table's sync state ordered by id.
func (s *Store) SyncStates(ctx context.Context) ([]*store.SyncState, error) {
	rows, err := s.db.QueryContext(ctx, syncStateSelect+` ORDER BY table_id`)
	res, err := collect(rows, err, scanSyncState)
	return res, op("sync states", err)
}

// GetSyncState returns one table's sync state.
func (s *Store) GetSyncState(ctx context.Context, tableID string) (*store.SyncState, error) {
	st, err := scanSyncState(s.db.QueryRowContext(ctx, syncStateSelect+` WHERE table_id = ?`, tableID))
	return st, op("get sync state", err)
}
