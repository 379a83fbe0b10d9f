package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/google/uuid"
)

// auditRow is an entry ready to insert.
type auditRow []any

// Audit appends to the audit log without waiting for the write: rows are queued and
// written in batches by a background writer, so auditing costs a request nothing.
// A full queue falls back to writing in the caller (backpressure rather than loss).
// Failures are logged, never returned: an audit hiccup must not fail the request it
// describes.
func (s *Store) Audit(ctx context.Context, e store.AuditEntry) {
	params := ""
	if len(e.Params) > 0 {
		b, _ := json.Marshal(e.Params)
		params = string(b)
	}
	if e.Result == "" {
		e.Result = "success"
	}
	row := auditRow{uuid.NewString(), s.now(), nullable(e.UserID), e.Action, nullable(e.Resource), nullable(params),
		e.Result, nullable(e.ClientIP), nullable(e.RequestID)}
	s.auditMu.RLock()
	defer s.auditMu.RUnlock()
	if s.audits != nil {
		select {
		case s.audits <- row:
			return
		default:
		}
	}
	s.writeAudit(context.WithoutCancel(ctx), []auditRow{row})
}

const auditBatch = 256

// auditLoop writes queued audit rows, as many per transaction as are waiting.
func (s *Store) auditLoop(queue <-chan auditRow, done chan<- struct{}) {
	defer close(done)
	for row := range queue {
		batch := []auditRow{row}
	more:
		for len(batch) < auditBatch {
			select {
			case r, ok := <-queue:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		s.writeAudit(context.Background(), batch)
	}
}

func (s *Store) writeAudit(ctx context.Context, rows []auditRow) {
	values := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?), ", len(rows)), ", ")
	var args []any
	for _, r := range rows {
		args = append(args, r...)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_log VALUES `+values, args...)
		return err
	})
	if err != nil {
		slog.WarnContext(ctx, "audit write failed", "rows", len(rows), "err", err)
	}
}

// stopAudit drains the queue; later Audit calls write directly.
func (s *Store) stopAudit() {
	s.auditMu.Lock()
	ch, done := s.audits, s.auditDone
	s.audits = nil
	s.auditMu.Unlock()
	if ch != nil {
		close(ch)
		<-done
	}
}

// ListAudit returns the newest audit rows, optionally of one action.
func (s *Store) ListAudit(ctx context.Context, action string, limit int) ([]*store.AuditRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, ts, coalesce(user_id, ''), action, coalesce(resource, ''),
		coalesce(params, ''), result, coalesce(client_ip, ''), coalesce(request_id, '')
		FROM audit_log WHERE (? = '' OR action = ?) ORDER BY ts DESC LIMIT ?`, action, action, limit)
	if err != nil {
		return nil, op("list audit", err)
	}
	defer rows.Close()
	var out []*store.AuditRecord
	for rows.Next() {
		r := &store.AuditRecord{}
		var params string
		if err := rows.Scan(&r.ID, &r.TS, &r.UserID, &r.Action, &r.Resource, &params, &r.Result, &r.ClientIP, &r.RequestID); err != nil {
			return nil, err
		}
		if params != "" {
			_ = json.Unmarshal([]byte(params), &r.Params)
		}
		out = append(out, r)
	}
	return out, op("list audit", rows.Err())
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
