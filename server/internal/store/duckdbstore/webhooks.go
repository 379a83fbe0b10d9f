package duckdbstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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

// AddWebhookEvent implements store.WebhookEvents. Concurrent calls share one
// transaction (group commit): a DuckDB commit costs milliseconds of CPU and an
// fsync, whatever it holds, and a burst of deliveries would otherwise spend
// most of the server's CPU committing one row at a time. Each caller still
// returns only once its own row is committed (or refused as a duplicate).
func (s *Store) AddWebhookEvent(ctx context.Context, e *store.WebhookEvent) error {
	if e.Source == "" || e.DeliveryID == "" || e.ReceivedAt.IsZero() {
		return op("add webhook event", fmt.Errorf("source, delivery id and received time are required"))
	}
	if err := ctx.Err(); err != nil {
		return op("add webhook event", err)
	}
	c := &inboxAdd{e: e}
	s.inboxMu.Lock()
	s.inbox = append(s.inbox, c)
	s.inboxMu.Unlock()

	// Whoever holds inboxWrite writes what is queued, a batch at a time, until
	// its own row is written; a caller whose row an earlier holder wrote only
	// reads its outcome.
	s.inboxWrite.Lock()
	defer s.inboxWrite.Unlock()
	for !c.done {
		s.inboxMu.Lock()
		n := min(len(s.inbox), maxInboxBatch)
		batch := s.inbox[:n:n]
		s.inbox = s.inbox[n:]
		s.inboxMu.Unlock()
		s.addWebhookEvents(batch)
	}
	return op("add webhook event", c.err)
}

// inboxAdd is one AddWebhookEvent call waiting for its group commit; done
// and err are written and read under inboxWrite.
type inboxAdd struct {
	e    *store.WebhookEvent
	done bool
	err  error
}

// maxInboxBatch bounds the rows of one group commit (six parameters each).
const maxInboxBatch = 256

// addWebhookEvents inserts a batch and settles each call. The batch is one
// multi-row INSERT in one transaction; when that meets a delivery id the
// table already has (a redelivery, rare), each row is inserted on its own,
// so only the duplicate is refused. (ON CONFLICT DO NOTHING RETURNING would
// say which rows were new in one statement, but costs DuckDB 2.5 times as
// much CPU as the plain INSERT, on every batch.) A delivery id twice in the
// batch is inserted once; the later call is a duplicate of it, or shares its
// failure.
func (s *Store) addWebhookEvents(batch []*inboxAdd) {
	type key struct{ source, id string }
	var rows, later []*inboxAdd
	first := map[key]*inboxAdd{}
	for _, c := range batch {
		k := key{c.e.Source, c.e.DeliveryID}
		if first[k] != nil {
			later = append(later, c)
			continue
		}
		first[k] = c
		rows = append(rows, c)
	}
	err := s.insertWebhookEvents(rows)
	for _, c := range rows {
		c.done, c.err = true, err
	}
	if errors.Is(err, store.ErrAlreadyExists) && len(rows) > 1 {
		for _, c := range rows {
			c.err = s.insertWebhookEvents([]*inboxAdd{c})
		}
	}
	for _, c := range later {
		c.done, c.err = true, first[key{c.e.Source, c.e.DeliveryID}].err
		if c.err == nil {
			c.err = fmt.Errorf("%w: delivery %s of source %s", store.ErrAlreadyExists, c.e.DeliveryID, c.e.Source)
		}
	}
}

// insertWebhookEvents inserts rows in one statement (one transaction).
func (s *Store) insertWebhookEvents(rows []*inboxAdd) error {
	args := make([]any, 0, 6*len(rows))
	for _, c := range rows {
		body := c.e.Body
		if body == nil {
			body = []byte{}
		}
		args = append(args, c.e.Source, c.e.DeliveryID, c.e.Event, c.e.IssueKey, body, c.e.ReceivedAt.UTC())
	}
	values := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", len(rows)), ", ")
	// The batch is every waiting caller's: no one caller's context ends it.
	return s.writeStatement(context.Background(), `INSERT INTO webhook_events (source, delivery_id, event, issue_key,
		body, received_at) VALUES `+values, args...)
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
