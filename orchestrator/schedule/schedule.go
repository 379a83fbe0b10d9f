// Package schedule parses sync schedules and says when a table is due:
// "every Nm", "every Nh" (N ≥ 1) and "daily HH:MM[,HH:MM...]" (UTC).
// An empty schedule means "on demand only".
package schedule

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed schedule.
type Schedule struct {
	every time.Duration // > 0 for "every"
	daily []int         // minutes after midnight UTC, sorted, for "daily"
}

// Parse parses a schedule; the empty string is the zero Schedule (never due).
func Parse(s string) (Schedule, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "":
		return Schedule{}, nil
	case strings.HasPrefix(s, "every "):
		spec := strings.TrimSpace(strings.TrimPrefix(s, "every "))
		if len(spec) < 2 {
			return Schedule{}, fmt.Errorf("schedule %q: want every <N>m or every <N>h", s)
		}
		n, err := strconv.Atoi(spec[:len(spec)-1])
		if err != nil || n < 1 || n > 100000 {
			return Schedule{}, fmt.Errorf("schedule %q: N must be a whole number from 1", s)
		}
		switch spec[len(spec)-1] {
		case 'm':
			return Schedule{every: time.Duration(n) * time.Minute}, nil
		case 'h':
			return Schedule{every: time.Duration(n) * time.Hour}, nil
		}
		return Schedule{}, fmt.Errorf("schedule %q: unit must be m or h", s)
	case strings.HasPrefix(s, "daily "):
		var out []int
		for _, hm := range strings.Split(strings.TrimPrefix(s, "daily "), ",") {
			t, err := time.Parse("15:04", strings.TrimSpace(hm))
			if err != nil {
				return Schedule{}, fmt.Errorf("schedule %q: times must be HH:MM (UTC)", s)
			}
			out = append(out, t.Hour()*60+t.Minute())
		}
		slices.Sort(out)
		return Schedule{daily: slices.Compact(out)}, nil
	}
	return Schedule{}, fmt.Errorf("schedule %q: want \"every Nm\", \"every Nh\" or \"daily HH:MM[,HH:MM]\"", s)
}

// IsZero reports an on-demand schedule.
func (s Schedule) IsZero() bool { return s.every == 0 && len(s.daily) == 0 }

// Next is the first time after last at which the table is due again. A table that
// never synced (zero last) is due at once.
func (s Schedule) Next(last time.Time) time.Time {
	switch {
	case s.IsZero():
		return time.Time{}
	case last.IsZero():
		return time.Unix(0, 0).UTC()
	case s.every > 0:
		return last.Add(s.every)
	}
	last = last.UTC()
	day := time.Date(last.Year(), last.Month(), last.Day(), 0, 0, 0, 0, time.UTC)
	for d := 0; d < 2; d++ {
		for _, m := range s.daily {
			if t := day.AddDate(0, 0, d).Add(time.Duration(m) * time.Minute); t.After(last) {
				return t
			}
		}
	}
	return time.Time{} // unreachable: tomorrow always has a slot
}

// Due reports whether a table last synced at last is due at now.
func (s Schedule) Due(last, now time.Time) bool {
	if s.IsZero() {
		return false
	}
	return !now.Before(s.Next(last))
}
