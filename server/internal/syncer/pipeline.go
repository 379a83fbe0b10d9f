package syncer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/orchestrator"
	"github.com/agnesdata/agnes/orchestrator/profile"
	"github.com/agnesdata/agnes/server/internal/store"
)

// execute runs a job to its end. Failures of one table are recorded on that table
// and the others go on; the job ends succeeded, partial or failed.
func (s *Syncer) execute(r *run, tables []*store.RegisteredTable) {
	ctx := s.ctx
	started := s.now().UTC()
	s.save(r.update(func(j *store.SyncJob) { j.State, j.StartedAt = store.JobRunning, &started }))

	bySource := map[string][]*store.RegisteredTable{}
	var sources []string
	for _, t := range tables {
		if _, ok := bySource[t.SourceType]; !ok {
			sources = append(sources, t.SourceType)
		}
		bySource[t.SourceType] = append(bySource[t.SourceType], t)
	}
	sort.Strings(sources)
	ok := 0
	for _, src := range sources {
		ok += s.extractSource(ctx, r, src, bySource[src])
	}

	var jobErr string
	if ok > 0 || len(tables) == 0 {
		s.setStep(r, "rebuild", "")
		res, err := s.analytics.Rebuild(ctx)
		if err != nil {
			jobErr = "rebuild failed: " + publicError(err)
			s.log.Error("sync rebuild failed", "job", r.snapshot().ID, "err", err)
		} else {
			r.update(func(j *store.SyncJob) { j.Generation = int64(res.Generation) })
			s.profileTables(ctx, r)
		}
	}

	finished := s.now().UTC()
	final := r.update(func(j *store.SyncJob) {
		j.FinishedAt, j.Error = &finished, jobErr
		var good, bad int
		for i := range j.Tables {
			t := &j.Tables[i]
			t.Step = ""
			if t.State == store.JobRunning || t.State == store.JobPending {
				if jobErr != "" {
					t.State, t.Error = store.JobFailed, jobErr
				} else {
					t.State = store.JobSucceeded
				}
			}
			if t.State == store.JobSucceeded {
				good++
			} else {
				bad++
			}
		}
		switch {
		case ctx.Err() != nil:
			j.State, j.Error = store.JobCancelled, "the server stopped during the sync"
		case jobErr != "" || (good == 0 && bad > 0):
			j.State = store.JobFailed
		case bad > 0:
			j.State = store.JobPartial
		default:
			j.State = store.JobSucceeded
		}
	})
	wctx := context.WithoutCancel(ctx)
	if err := s.store.AddHistory(wctx, final.ID, started, finished, final.Tables); err != nil {
		s.log.Error("record sync history", "job", final.ID, "err", err)
	}
	s.save(final)
	s.log.Info("sync job finished", "job", final.ID, "state", final.State, "tables", len(final.Tables),
		"took_ms", finished.Sub(started).Milliseconds())
}

// save persists a job state; failures are logged (the job itself goes on).
func (s *Syncer) save(j store.SyncJob) {
	if err := s.store.SaveJob(context.WithoutCancel(s.ctx), &j); err != nil {
		s.log.Error("save sync job", "job", j.ID, "err", err)
	}
}

func (s *Syncer) setTable(r *run, id string, f func(*store.JobTable)) {
	r.update(func(j *store.SyncJob) {
		for i := range j.Tables {
			if j.Tables[i].TableID == id {
				f(&j.Tables[i])
			}
		}
	})
}

// setStep moves every table still in progress to a pipeline step.
func (s *Syncer) setStep(r *run, step, only string) {
	r.update(func(j *store.SyncJob) {
		for i := range j.Tables {
			if t := &j.Tables[i]; t.State == store.JobRunning && (only == "" || t.TableID == only) {
				t.Step = step
			}
		}
	})
}

// extractSource extracts one source's tables and records them in its
// extract.duckdb with one rewrite. It returns how many tables succeeded.
func (s *Syncer) extractSource(ctx context.Context, r *run, src string, tables []*store.RegisteredTable) int {
	fail := func(t *store.RegisteredTable, msg string) {
		s.setTable(r, t.ID, func(jt *store.JobTable) { jt.State, jt.Error, jt.Step = store.JobFailed, msg, "" })
		if err := s.store.MarkSyncError(context.WithoutCancel(ctx), t.ID, src, msg); err != nil {
			s.log.Error("mark sync error", "table", t.ID, "err", err)
		}
	}
	conn, ok := s.sources[src]
	if !ok {
		for _, t := range tables {
			fail(t, fmt.Sprintf("no connector is configured for source type %q", src))
		}
		return 0
	}
	w, err := extract.NewWriter(orchestrator.ExtractDir(s.dataDir, src))
	if err != nil {
		for _, t := range tables {
			fail(t, "cannot open the extract: "+publicError(err))
		}
		return 0
	}
	defer w.Close()
	var done []extract.Table
	var doneIDs []string
	for _, t := range tables {
		s.setTable(r, t.ID, func(jt *store.JobTable) { jt.State, jt.Step = store.JobRunning, "extract" })
		et, err := conn.Extract(ctx, Spec(t), w)
		if err != nil {
			s.log.Warn("extract failed", "table", t.ID, "source", src, "err", err)
			fail(t, publicError(err))
			continue
		}
		s.setTable(r, t.ID, func(jt *store.JobTable) { jt.Rows, jt.SizeBytes = et.Rows, et.SizeBytes })
		done = append(done, et)
		doneIDs = append(doneIDs, t.ID)
	}
	if len(done) == 0 {
		return 0
	}
	if err := w.Update(ctx, done...); err != nil {
		for _, t := range tables {
			for _, id := range doneIDs {
				if id == t.ID {
					fail(t, "cannot record the extract: "+publicError(err))
				}
			}
		}
		return 0
	}
	return len(done)
}

// Spec is the connector's view of a registry row.
func Spec(t *store.RegisteredTable) connectors.TableSpec {
	return connectors.TableSpec{ID: t.ID, Name: t.Name, Description: t.Description, Bucket: t.Bucket,
		SourceTable: t.SourceTable, SourceQuery: t.SourceQuery, Strategy: t.SyncStrategy, PrimaryKey: t.PrimaryKey,
		IncrementalColumn: t.IncrementalColumn, IncrementalWindowDays: t.IncrementalWindowDays,
		PartitionBy: t.PartitionBy, PartitionGranularity: t.PartitionGranularity}
}

// publicError is an error message fit for users: input errors as they are, the
// rest without internal paths.
func publicError(err error) string {
	var in *connectors.InputError
	switch {
	case errors.As(err, &in):
		return in.Msg
	case errors.Is(err, connectors.ErrNotFound):
		return "the table was not found in the source"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "internal error (see the server log)"
}

// profileTables profiles every table that made it through the rebuild. A profile
// failure is logged; the table's data is still good.
func (s *Syncer) profileTables(ctx context.Context, r *run) {
	if s.profiler == nil {
		return
	}
	for _, t := range r.snapshot().Tables {
		if t.State != store.JobRunning {
			continue
		}
		s.setStep(r, "profile", t.TableID)
		if err := s.Profile(ctx, t.TableID); err != nil {
			s.log.Warn("profile failed", "table", t.TableID, "err", err)
		}
	}
}

// ErrNoData means a table has no local data to profile or download yet.
var ErrNoData = errors.New("no data for this table yet")

// Profile computes and stores a table's profile from its current data.
func (s *Syncer) Profile(ctx context.Context, tableID string) error {
	st, err := s.store.GetSyncState(ctx, tableID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && st.Path == "") {
		return ErrNoData
	}
	if err != nil {
		return err
	}
	p, err := s.profiler.ProfileFiles(ctx, filepath.Join(s.dataDir, st.Path))
	if err != nil {
		return err
	}
	raw, err := protojson.Marshal(ProfileProto(tableID, st.Hash, s.now(), p))
	if err != nil {
		return err
	}
	return s.store.SaveProfile(ctx, tableID, raw, st.Hash)
}

// ProfileProto converts a profile to its API form.
func ProfileProto(tableID, hash string, at time.Time, p *profile.Profile) *agnesv1.TableProfile {
	out := &agnesv1.TableProfile{TableId: tableID, RowCount: p.RowCount, ProfiledAt: timestamppb.New(at), Hash: hash}
	for _, c := range p.Columns {
		col := &agnesv1.ColumnProfile{Name: c.Name, Type: c.Type, NullPct: c.NullPct, DistinctCount: c.DistinctCount,
			Min: c.Min, Max: c.Max, Mean: c.Mean, Stddev: c.Stddev, SampleValues: c.SampleValues}
		for _, v := range c.TopValues {
			col.TopValues = append(col.TopValues, &agnesv1.ValueCount{Value: v.Value, Count: v.Count})
		}
		for _, b := range c.Histogram {
			col.Histogram = append(col.Histogram, &agnesv1.HistogramBin{Lower: b.Lower, Upper: b.Upper, Count: b.Count})
		}
		out.Columns = append(out.Columns, col)
	}
	return out
}
