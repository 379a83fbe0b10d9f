package duckdbstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/agnesdata/agnes/server/internal/store"
)

const webhookSelect = `SELECT source, delivery_id, event, issue_key, body, received_at, attempts, next_attempt_at,
	last_error, processed_at FROM webhook_events`

func scanWebhookEvent(row scanner) (*store.WebhookEvent, error) {
	e := &store.WebhookEvent{}
	var next, processed sql.NullTime
	if err := row.Scan(&e.Source, &e.DeliveryID, &e.Event, &e.IssueKey, &e.Body, &e.ReceivedAt, &e.Attempts, &next,
		&e.LastError, &processed); err != nil {
		return nil, err
	}
	e.ReceivedAt = e.ReceivedAt.UTC()
	e.NextAttemptAt, e.ProcessedAt = nullTime(next), nullTime(processed)
	return e, nil
}

// AddWebhookEvent implements store.WebhookEvents.
func (s *Store) AddWebhookEvent(ctx context.Context, e *store.WebhookEvent) error {
	if e.Source == "" || e.DeliveryID == "" || e.ReceivedAt.IsZero() {
		return op("add webhook event", fmt.Errorf("source, delivery id and received time are required"))
	}
	body := e.Body
	if body == nil {
		body = []byte{}
	}
	return op("add webhook event", s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_events (source, delivery_id, event, issue_key, body, received_at)
			VALUES (?, ?, ?, ?, ?, ?)`, e.Source, e.DeliveryID, e.Event, e.IssueKey, body, e.ReceivedAt.UTC())
		return err
	}))
}

// DueWebhookEvents implements store.WebhookEvents.
func (s *Store) DueWebhookEvents(ctx context.Context, source string, now time.Time, limit int) ([]*store.WebhookEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.QueryContext(ctx, webhookSelect+` WHERE source = ? AND processed_at IS NULL
		AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY received_at, delivery_id LIMIT ?`,
		source, now.UTC(), limit)
	out, err := collect(rows, err, scanWebhookEvent)
	return out, op("due webhook events", err)
}

// FinishWebhookEvents implements store.WebhookEvents.
func (s *Store) FinishWebhookEvents(ctx context.Context, source string, ids []string, at time.Time, note string) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{at.UTC(), note, source}
	for _, id := range ids {
		args = append(args, id)
	}
	return op("finish webhook events", s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE webhook_events SET processed_at = ?, last_error = ?, next_attempt_at = NULL
			WHERE source = ? AND processed_at IS NULL AND delivery_id IN (`+placeholders(len(ids))+`)`, args...)
		return err
	}))
}

// RetryWebhookEvents implements store.WebhookEvents.
func (s *Store) RetryWebhookEvents(ctx context.Context, source string, retries []store.WebhookRetry) error {
	if len(retries) == 0 {
		return nil
	}
	return op("retry webhook events", s.write(ctx, func(tx *sql.Tx) error {
		for _, r := range retries {
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = ?,
				last_error = ? WHERE source = ? AND delivery_id = ? AND processed_at IS NULL`,
				r.At.UTC(), r.Error, source, r.DeliveryID); err != nil {
				return err
			}
		}
		return nil
	}))
}

// WebhookEventStats implements store.WebhookEvents.
func (s *Store) WebhookEventStats(ctx context.Context, source string) (*store.WebhookStats, error) {
	st := &store.WebhookStats{}
	var oldest, received, processed sql.NullTime
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE processed_at IS NULL),
		count(*) FILTER (WHERE processed_at IS NULL AND attempts > 0),
		min(received_at) FILTER (WHERE processed_at IS NULL), max(received_at), max(processed_at)
		FROM webhook_events WHERE source = ?`, source).Scan(&st.Pending, &st.Retrying, &oldest, &received, &processed)
	if err != nil {
		return nil, op("webhook event stats", err)
	}
	st.OldestPending, st.LastReceived, st.LastProcessed = nullTime(oldest), nullTime(received), nullTime(processed)
	return st, nil
}

// PruneWebhookEvents implements store.WebhookEvents.
func (s *Store) PruneWebhookEvents(ctx context.Context, source string, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_events WHERE source = ? AND processed_at < ?`, source, before.UTC())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), op("prune webhook events", err)
}
