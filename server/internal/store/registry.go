package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// RegisteredTable is a row of table_registry. ID is the one key for grants, sync
// state, files, the master view and the manifest.
type RegisteredTable struct {
	ID                    string
	Name                  string
	SourceType            string
	Bucket                string
	SourceTable           string
	SourceQuery           string
	SyncStrategy          string
	QueryMode             string
	SyncSchedule          string
	PrimaryKey            []string
	Folder                string
	Description           string
	RegisteredBy          string
	RegisteredAt          time.Time
	IncrementalColumn     string
	IncrementalWindowDays int
	PartitionBy           string
	PartitionGranularity  string
}

const registryColumns = `id, name, source_type, bucket, source_table, source_query, sync_strategy, query_mode,
	sync_schedule, primary_key, folder, description, registered_by, registered_at, incremental_column,
	incremental_window_days, partition_by, partition_granularity`

func scanTable(row scanner) (*RegisteredTable, error) {
	t := &RegisteredTable{}
	var pk string
	if err := row.Scan(&t.ID, &t.Name, &t.SourceType, &t.Bucket, &t.SourceTable, &t.SourceQuery, &t.SyncStrategy,
		&t.QueryMode, &t.SyncSchedule, &pk, &t.Folder, &t.Description, &t.RegisteredBy, &t.RegisteredAt,
		&t.IncrementalColumn, &t.IncrementalWindowDays, &t.PartitionBy, &t.PartitionGranularity); err != nil {
		return nil, err
	}
	t.RegisteredAt = t.RegisteredAt.UTC()
	if err := json.Unmarshal([]byte(pk), &t.PrimaryKey); err != nil {
		return nil, fmt.Errorf("table %s primary_key: %w", t.ID, err)
	}
	return t, nil
}

func (t *RegisteredTable) args() ([]any, error) {
	pk := t.PrimaryKey
	if pk == nil {
		pk = []string{}
	}
	raw, err := json.Marshal(pk)
	if err != nil {
		return nil, err
	}
	return []any{t.ID, t.Name, t.SourceType, t.Bucket, t.SourceTable, t.SourceQuery, t.SyncStrategy, t.QueryMode,
		t.SyncSchedule, string(raw), t.Folder, t.Description, t.RegisteredBy, t.RegisteredAt, t.IncrementalColumn,
		t.IncrementalWindowDays, t.PartitionBy, t.PartitionGranularity}, nil
}

// CreateTable registers a table. ErrAlreadyExists when the id or the name is taken.
func (s *Store) CreateTable(ctx context.Context, t *RegisteredTable) error {
	args, err := t.args()
	if err != nil {
		return err
	}
	return s.writeData(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM table_registry WHERE id = ? OR lower(name) = lower(?)`,
			t.ID, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("table %q: %w", t.ID, ErrAlreadyExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO table_registry (`+registryColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
		return err
	})
}

// GetTable returns a registered table.
func (s *Store) GetTable(ctx context.Context, id string) (*RegisteredTable, error) {
	t, err := scanTable(s.db.QueryRowContext(ctx, `SELECT `+registryColumns+` FROM table_registry WHERE id = ?`, id))
	return t, errNoRows(err)
}

// ListTables lists the registry ordered by id.
func (s *Store) ListTables(ctx context.Context) ([]*RegisteredTable, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+registryColumns+` FROM table_registry ORDER BY id`)
	return collect(rows, err, scanTable)
}

// UpdateTable replaces a registered table's row (the id stays). ErrAlreadyExists
// when the new name belongs to another table.
func (s *Store) UpdateTable(ctx context.Context, t *RegisteredTable) error {
	args, err := t.args()
	if err != nil {
		return err
	}
	return s.writeData(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM table_registry WHERE id <> ? AND lower(name) = lower(?)`,
			t.ID, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("table name %q: %w", t.Name, ErrAlreadyExists)
		}
		res, err := tx.ExecContext(ctx, `UPDATE table_registry SET name = ?, source_type = ?, bucket = ?, source_table = ?,
			source_query = ?, sync_strategy = ?, query_mode = ?, sync_schedule = ?, primary_key = ?, folder = ?,
			description = ?, registered_by = ?, registered_at = ?, incremental_column = ?, incremental_window_days = ?,
			partition_by = ?, partition_granularity = ? WHERE id = ?`, append(args[1:], t.ID)...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// DeleteTable unregisters a table with its grants, sync state, profile and user
// preferences, in one transaction.
func (s *Store) DeleteTable(ctx context.Context, id string) error {
	defer s.dataVersion.Add(1)
	return s.writeIdentity(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM table_registry WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
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
	})
}
