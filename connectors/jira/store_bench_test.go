package jira_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

// BenchmarkApplyOneIssue applies one issue's update (Apply, then the
// Update that publishes it) to a store holding 50 issues created in each
// of its months: the partition rewritten is the same size whatever the
// history, so what grows with the months is what Apply reads to find
// where the issue's rows are.
func BenchmarkApplyOneIssue(b *testing.B) {
	for _, months := range []int{1, 12, 36, 120} {
		b.Run(fmt.Sprintf("months=%d", months), func(b *testing.B) {
			e := newEnv(b)
			var last string
			for range months {
				for range 50 {
					last = e.fake.CreateIssue(jirafake.NewIssue{Summary: "history"})
				}
				e.fake.Advance(31 * 24 * time.Hour)
			}
			e.sync()
			changes, err := e.st.Refetch(e.ctx, []string{last})
			require.NoError(b, err)
			for b.Loop() {
				e.apply(changes)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/apply")
		})
	}
}
