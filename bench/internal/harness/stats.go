package harness

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Sample is a set of timings of one variant.
type Sample []time.Duration

// Median is the middle timing (the mean of the two middle ones for an even count).
func (s Sample) Median() time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	n := len(c)
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

// Quantile is the nearest-rank q-quantile (0 < q ≤ 1).
func (s Sample) Quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(q*float64(len(c))+0.999999) - 1
	return c[min(max(i, 0), len(c)-1)]
}

// Min is the fastest timing.
func (s Sample) Min() time.Duration {
	if len(s) == 0 {
		return 0
	}
	return slices.Min(s)
}

// variant is one way of doing the same work, timed per call.
type variant struct {
	name string
	run  func(context.Context) error
	prep func(context.Context) error // optional, untimed, before each run (pairedWithPrep only)
	undo func()                      // optional: forget what the last run recorded (pairedWithPrep only)
}

// interleave runs warmup untimed rounds, then iters timed rounds; every round
// runs each variant once, the order rotating from round to round (A B C, B C
// A, C A B, ...) so that drift and noise on the machine spread evenly.
func interleave(ctx context.Context, vs []variant, warmup, iters int) (map[string]Sample, error) {
	out := make(map[string]Sample, len(vs))
	for round := range warmup + iters {
		for j := range vs {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			v := vs[(round+j)%len(vs)]
			start := time.Now()
			err := v.run(ctx)
			d := time.Since(start)
			if err != nil {
				return out, fmt.Errorf("%s: %w", v.name, err)
			}
			if round >= warmup {
				out[v.name] = append(out[v.name], d)
			}
		}
	}
	return out, nil
}

// ms formats a duration in milliseconds with a precision that suits it.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f < 10:
		return fmt.Sprintf("%.3f ms", f)
	case f < 1000:
		return fmt.Sprintf("%.1f ms", f)
	default:
		return fmt.Sprintf("%.2f s", f/1000)
	}
}

// mb formats bytes as MiB.
func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
