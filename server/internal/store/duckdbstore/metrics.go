package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"fmt"
)

// UpsertMetrics creates or replaces metric definitions in one transaction.
func (s *Store) UpsertMetrics(ctx context.Context, rows ...store.MetricRow) error {
	return op("upsert metrics", s.write(ctx, func(tx *sql.Tx) error {
		for _, m := range rows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO metric_definitions VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET category = excluded.category, name = excluded.name,
					definition = excluded.definition, updated_at = excluded.updated_at`,
				m.ID, m.Category, m.Name, string(m.Definition), s.now()); err != nil {
				return fmt.Errorf("metric %s: %w", m.ID, err)
			}
		}
		return nil
	}))
}

// ListMetrics lists metric definitions ordered by id, optionally of one category.
func (s *Store) ListMetrics(ctx context.Context, category string) ([]store.MetricRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, category, name, definition FROM metric_definitions
		WHERE (? = '' OR category = ?) ORDER BY id`, category, category)
	if err != nil {
		return nil, fmt.Errorf("list metrics: %w", err)
	}
	defer rows.Close()
	var out []store.MetricRow
	for rows.Next() {
		var m store.MetricRow
		var def string
		if err := rows.Scan(&m.ID, &m.Category, &m.Name, &def); err != nil {
			return nil, err
		}
		m.Definition = []byte(def)
		out = append(out, m)
	}
	return out, op("list metrics", rows.Err())
}

// GetMetric returns one metric definition.
func (s *Store) GetMetric(ctx context.Context, id string) (*store.MetricRow, error) {
	m := &store.MetricRow{}
	var def string
	err := s.db.QueryRowContext(ctx, `SELECT id, category, name, definition FROM metric_definitions WHERE id = ?`, id).
		Scan(&m.ID, &m.Category, &m.Name, &def)
	if err != nil {
		return nil, op("get metric "+id, err)
	}
	m.Definition = []byte(def)
	return m, nil
}

// DeleteMetric deletes a metric definition.
func (s *Store) DeleteMetric(ctx context.Context, id string) error {
	return op("delete metric", s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM metric_definitions WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		return nil
	}))
}
