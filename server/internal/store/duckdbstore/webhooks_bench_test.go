package duckdbstore

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agnesdata/agnes/server/internal/store"
)

// BenchmarkAddWebhookEvent is a burst of deliveries: eight concurrent
// writers (a webhook sender's concurrency) adding 1.1 KB events, the size
// of the fake Jira's issue_updated, to a store on disk.
func BenchmarkAddWebhookEvent(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "system.duckdb"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	body := make([]byte, 1100)
	var n atomic.Int64
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((8 + procs - 1) / procs) // at least eight writers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := &store.WebhookEvent{Source: "jira", DeliveryID: fmt.Sprint("d-", n.Add(1)), Event: "jira:issue_updated",
				IssueKey: "SUP-1", Body: body, ReceivedAt: time.Now()}
			if err := s.AddWebhookEvent(b.Context(), e); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
