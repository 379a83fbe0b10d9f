package jiraserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/server/internal/jobs"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Limits of event processing.
const (
	// batchEvents is how many events one refetch-and-apply round takes: a
	// burst becomes few rounds, each rewriting a touched partition once.
	batchEvents = 500
	// maxEventAttempts is how often an event is tried before it is given up
	// (about a day of backoff); the consistency check repairs what it meant.
	maxEventAttempts = 40
	maxBackoff       = 10 * time.Minute
	// applyLinger is how long an apply job waits for more events once the
	// inbox is empty: events trickling in during it cost no new job (and no
	// job row), and are taken at once.
	applyLinger = 30 * time.Second
)

// backoff is how long an event waits after its attempt'th failure (from 0).
func backoff(attempt int) time.Duration {
	if attempt >= 10 {
		return maxBackoff
	}
	return min(time.Second<<attempt, maxBackoff)
}

// ApplyProgress is an apply job's progress.
type ApplyProgress struct {
	Rounds     int    `json:"rounds"`
	Events     int    `json:"events"`    // taken from the inbox
	Processed  int    `json:"processed"` // applied (or had nothing to apply)
	Deferred   int    `json:"deferred"`  // put off after a failure, tried again later
	Dropped    int    `json:"dropped"`   // unreadable or given up
	Issues     int    `json:"issues"`    // issues refetched
	Upserted   int    `json:"upserted"`
	Deleted    int    `json:"deleted"`
	Generation uint64 `json:"generation,omitempty"`
	Rebuilt    bool   `json:"rebuilt,omitempty"` // a round needed a new generation (new tables)
	LastError  string `json:"last_error,omitempty"`
}

// runApply drains the source's due events, a round at a time, until none is
// due: later events are picked up by the next round, so a burst costs a few
// rounds, not one per event. Then it lingers for more events (applyLinger)
// before it ends.
func (s *Server) runApply(ctx context.Context, t *jobs.Task) error {
	x, err := s.siteOf(t)
	if err != nil {
		return err
	}
	var p ApplyProgress
	for {
		for ctx.Err() == nil {
			events, err := s.store.DueWebhookEvents(ctx, x.name, time.Now(), batchEvents)
			if err != nil {
				return err
			}
			if len(events) == 0 {
				break
			}
			if err := s.process(ctx, x, events, &p); err != nil {
				return err
			}
			if err := t.SetProgress(p); err != nil {
				s.log.Warn("jira: save apply progress", "job", t.ID(), "err", err)
			}
		}
		if !s.linger(ctx, x) {
			return ctx.Err()
		}
	}
}

// linger waits for a new event, up to applyLinger, and reports whether there
// may be one to take. While it waits, new events need no new job
// (submitApply): the flag is cleared before the last look at the inbox, so an
// event either wakes this job, is seen by that last look, or gets a new job.
func (s *Server) linger(ctx context.Context, x *site) bool {
	x.lingering.Store(true)
	timer := time.NewTimer(applyLinger)
	defer timer.Stop()
	var woken bool
	select {
	case <-x.wake:
		woken = true
	case <-timer.C:
	case <-ctx.Done():
	}
	x.lingering.Store(false)
	if woken || ctx.Err() != nil {
		return woken
	}
	due, err := s.store.DueWebhookEvents(ctx, x.name, time.Now(), 1)
	return err == nil && len(due) > 0
}

// eventWork is one event of a round and what it asks for.
type eventWork struct {
	ev   *store.WebhookEvent
	keys []string
	err  error // it cannot be done now; try again later
}

// process runs one round: events → issue keys → refetch → one apply and
// publish → each event settled in the inbox (processed, or put off with the
// error that stopped it). Only a failure to settle, or the server stopping
// before the apply, is returned.
func (s *Server) process(ctx context.Context, x *site, events []*store.WebhookEvent, p *ApplyProgress) error {
	p.Rounds++
	p.Events += len(events)
	var work []eventWork
	var unreadable []string
	for _, e := range events {
		ev, err := jira.ParseEvent(e.Body)
		if err != nil { // it was checked when it came in: a body only a bug would store
			unreadable = append(unreadable, e.DeliveryID)
			continue
		}
		keys, err := x.st.KeysFor(ctx, []jira.Event{ev})
		work = append(work, eventWork{ev: e, keys: keys, err: err})
	}
	var keys []string
	seen := map[string]bool{}
	for _, w := range work {
		if w.err != nil {
			continue
		}
		for _, k := range w.keys {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	failed := map[string]error{}
	if len(keys) > 0 {
		p.Issues += len(keys)
		t0 := time.Now()
		changes, err := x.st.Refetch(ctx, keys)
		s.log.Debug("jira: refetched", "source", x.name, "events", len(events), "issues", len(keys), "ms", time.Since(t0).Milliseconds())
		if ctx.Err() != nil { // the server is stopping: the events stay as they were, for the next start
			return ctx.Err()
		}
		if err != nil {
			// Issues that could not be fetched put their events off (below);
			// attachments that could not be downloaded are written without
			// local_path, and the issue's next change downloads them again.
			s.log.Warn("jira: refetch", "source", x.name, "err", err)
		}
		var fe *jira.FetchError
		switch {
		case errors.As(err, &fe):
			failed = fe.Failed
		case err != nil && len(changes) == 0: // nothing came back: every issue waits
			for _, k := range keys {
				failed[k] = err
			}
		}
		if len(changes) > 0 {
			res, pub, err := s.write(ctx, x, changes)
			if err != nil {
				s.log.Error("jira: apply", "source", x.name, "err", err)
				for _, c := range changes {
					failed[c.Key] = errApply
				}
			} else {
				p.Upserted += len(res.Upserted)
				p.Deleted += len(res.Deleted)
				p.Generation, p.Rebuilt = pub.Generation, p.Rebuilt || pub.Rebuilt
			}
		}
	}

	now := time.Now().UTC()
	var done, dropped []string
	var retries []store.WebhookRetry
	for _, w := range work {
		err := w.err
		for _, k := range w.keys {
			if err == nil && failed[k] != nil {
				err = failed[k]
			}
		}
		switch {
		case err == nil:
			done = append(done, w.ev.DeliveryID)
		case w.ev.Attempts+1 >= maxEventAttempts:
			dropped = append(dropped, w.ev.DeliveryID)
			s.log.Warn("jira: event given up", "source", x.name, "delivery", w.ev.DeliveryID, "attempts", w.ev.Attempts+1, "err", err)
			p.LastError = err.Error()
		default:
			retries = append(retries, store.WebhookRetry{DeliveryID: w.ev.DeliveryID, At: now.Add(backoff(w.ev.Attempts)), Error: err.Error()})
			p.LastError = err.Error()
		}
	}
	p.Processed += len(done)
	p.Deferred += len(retries)
	p.Dropped += len(dropped) + len(unreadable)
	ctx = context.WithoutCancel(ctx) // what was done is recorded even when the server stops
	return errors.Join(
		s.store.FinishWebhookEvents(ctx, x.name, done, now, ""),
		s.store.FinishWebhookEvents(ctx, x.name, unreadable, now, "dropped: the stored body is not a Jira event"),
		s.store.FinishWebhookEvents(ctx, x.name, dropped, now, fmt.Sprintf("given up after %d attempts", maxEventAttempts)),
		s.store.RetryWebhookEvents(ctx, x.name, retries),
	)
}

// errApply stands in for an apply failure's own text, which names server paths.
var errApply = errors.New("writing the tables failed (see the server log)")
