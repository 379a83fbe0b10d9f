package store

import (
	"context"
	"time"
)

// RemoteQuotas count the bytes each user's remote (pushed-down) queries may
// scan per UTC day, by their dry-run estimates. Counts live in the store, so a
// restart does not forget today's, and replicas sharing a store share them.
type RemoteQuotas interface {
	// ReserveRemoteBytes adds bytes to the user's count of day (its UTC date)
	// unless the count would then pass limit. It returns the count before;
	// ok false means nothing was added. Counts of days more than
	// RemoteQuotaKeep before day may be dropped.
	ReserveRemoteBytes(ctx context.Context, userID string, day time.Time, bytes, limit int64) (used int64, ok bool, err error)
	// RefundRemoteBytes takes bytes back from the user's count of day (never
	// below zero): the query they were reserved for did not run.
	RefundRemoteBytes(ctx context.Context, userID string, day time.Time, bytes int64) error
}

// RemoteQuotaKeep is how long a store keeps past days' counts.
const RemoteQuotaKeep = 31 * 24 * time.Hour
