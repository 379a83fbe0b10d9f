package store

import (
	"context"
	"time"
)

// WebhookEvent is one delivery a source's webhook received (a Jira event), kept
// from the moment it is acknowledged until it is processed, so nothing answered
// 200 is lost when the server stops. The delivery id (Jira's
// X-Atlassian-Webhook-Identifier, stable across its retries) is the dedup key.
type WebhookEvent struct {
	Source     string // the source instance
	DeliveryID string
	Event      string // e.g. jira:issue_updated
	IssueKey   string // empty when the body names no issue (attachment_*, issuelink_*)
	Body       []byte // the exact bytes received
	ReceivedAt time.Time
	// Attempts counts processing attempts that failed and were put off; the
	// next one is not before NextAttemptAt.
	Attempts      int
	NextAttemptAt *time.Time
	LastError     string
	ProcessedAt   *time.Time // nil while pending
}

// WebhookRetry puts one pending event off after a failed attempt.
type WebhookRetry struct {
	DeliveryID string
	At         time.Time // not before
	Error      string
}

// WebhookStats summarise a source's webhook events.
type WebhookStats struct {
	Pending       int // not processed yet
	Retrying      int // pending after a failed attempt
	OldestPending *time.Time
	LastReceived  *time.Time
	LastProcessed *time.Time
}

// WebhookEvents is the inbox of webhook deliveries.
type WebhookEvents interface {
	// AddWebhookEvent stores a received event as pending (ReceivedAt required).
	// ErrAlreadyExists when the source already has that delivery id.
	AddWebhookEvent(ctx context.Context, e *WebhookEvent) error
	// DueWebhookEvents lists a source's pending events that may be tried at now
	// (never tried, or put off until before now), oldest first, at most limit.
	DueWebhookEvents(ctx context.Context, source string, now time.Time, limit int) ([]*WebhookEvent, error)
	// FinishWebhookEvents marks events processed at at; note (usually empty)
	// says why an event was dropped rather than applied.
	FinishWebhookEvents(ctx context.Context, source string, ids []string, at time.Time, note string) error
	// RetryWebhookEvents puts pending events off, counting the attempt.
	RetryWebhookEvents(ctx context.Context, source string, retries []WebhookRetry) error
	// WebhookEventStats summarises a source's events.
	WebhookEventStats(ctx context.Context, source string) (*WebhookStats, error)
	// PruneWebhookEvents deletes a source's events processed before before and
	// returns how many. Their delivery ids stop deduplicating.
	PruneWebhookEvents(ctx context.Context, source string, before time.Time) (int, error)
}
