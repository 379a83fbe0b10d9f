package duckdbstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agnesdata/agnes/server/internal/store"
)

var registryColumns = []string{"id", "name", "source_type", "source", "bucket", "source_table", "source_query",
	"sync_strategy", "query_mode", "sync_schedule", "primary_key", "folder", "description", "registered_by",
	"registered_at", "incremental_column", "incremental_window_days", "partition_by", "partition_granularity",
	"where_filters"}

var registrySelect = `SELECT ` + strings.Join(registryColumns, ", ") + ` FROM table_registry`

func scanTable(row scanner) (*store.RegisteredTable, error) {
	t := &store.RegisteredTable{}
	var pk, filters string
	if err := row.Scan(&t.ID, &t.Name, &t.SourceType, &t.Source, &t.Bucket, &t.SourceTable, &t.SourceQuery,
		&t.SyncStrategy, &t.QueryMode, &t.SyncSchedule, &pk, &t.Folder, &t.Description, &t.RegisteredBy,
		&t.RegisteredAt, &t.IncrementalColumn, &t.IncrementalWindowDays, &t.PartitionBy, &t.PartitionGranularity,
		&filters); err != nil {
		return nil, err
	}
	t.RegisteredAt = t.RegisteredAt.UTC()
	if err := json.Unmarshal([]byte(pk), &t.PrimaryKey); err != nil {
		return nil, fmt.Errorf("table %s primary_key: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(filters), &t.WhereFilters); err != nil {
		return nil, fmt.Errorf("table %s where_filters: %w", t.ID, err)
	}
	return t, nil
}

// tableArgs are a table's values in registryColumns order.
func tableArgs(t *store.RegisteredTable) ([]any, error) {
	pk, err := json.Marshal(nonNil(t.PrimaryKey))
	if err != nil {
		return nil, err
	}
	filters, err := json.Marshal(nonNil(t.WhereFilters))
	if err != nil {
		return nil, err
	}
	return []any{t.ID, t.Name, t.SourceType, t.Source, t.Bucket, t.SourceTable, t.SourceQuery, t.SyncStrategy,
		t.QueryMode, t.SyncSchedule, string(pk), t.Folder, t.Description, t.RegisteredBy, t.RegisteredAt,
		t.IncrementalColumn, t.IncrementalWindowDays, t.PartitionBy, t.PartitionGranularity, string(filters)}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// CreateTable implements store.Registry.
func (s *Store) CreateTable(ctx context.Context, t *store.RegisteredTable) error {
	args, err := tableArgs(t)
	if err != nil {
		return op("register table "+t.ID, err)
	}
	return op("register table "+t.ID, s.writeData(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM table_registry WHERE id = ? OR lower(name) = lower(?)`,
			t.ID, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return store.ErrAlreadyExists
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO table_registry (`+strings.Join(registryColumns, ", ")+`)
			VALUES (`+placeholders(len(registryColumns))+`)`, args...)
		return err
	}))
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// GetTable implements store.Registry.
func (s *Store) GetTable(ctx context.Context, id string) (*store.RegisteredTable, error) {
	t, err := scanTable(s.db.QueryRowContext(ctx, registrySelect+` WHERE id = ?`, id))
	return t, op("get table "+id, err)
}

// ListTables implements store.Registry.
func (s *Store) ListTables(ctx context.Context) ([]*store.RegisteredTable, error) {
	rows, err := s.db.QueryContext(ctx, registrySelect+` ORDER BY id`)
	ts, err := collect(rows, err, scanTable)
	return ts, op("list tables", err)
}

// UpdateTable implements store.Registry.
func (s *Store) UpdateTable(ctx context.Context, t *store.RegisteredTable) error {
	args, err := tableArgs(t)
	if err != nil {
		return op("update table "+t.ID, err)
	}
	sets := make([]string, 0, len(registryColumns)-1)
	for _, c := range registryColumns[1:] {
		sets = append(sets, c+" = ?")
	}
	return op("update table "+t.ID, s.writeData(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM table_registry WHERE id <> ? AND lower(name) = lower(?)`,
			t.ID, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("name %q: %w", t.Name, store.ErrAlreadyExists)
		}
		res, err := tx.ExecContext(ctx, `UPDATE table_registry SET `+strings.Join(sets, ", ")+` WHERE id = ?`,
			append(args[1:], t.ID)...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		return nil
	}))
}

// DeleteTable implements store.Registry. Grants and preferences are identity
// data: both versions move.
func (s *Store) DeleteTable(ctx context.Context, id string) error {
	defer s.dataVersion.Add(1)
	return op("delete table "+id, s.writeIdentity(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM table_registry WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		for _, q := range []string{
			`DELETE FROM resource_grants WHERE resource_type = 'table' AND resource_id = ?`,
			`DELETE FROM sync_state WHERE table_id = ?`,
			`DELETE FROM table_profiles WHERE table_id = ?`,
			`DELETE FROM user_sync_settings WHERE table_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	}))
}
