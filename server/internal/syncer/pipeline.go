package syncer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/agnesdata/agnes/server/internal/jobs"
	"github.com/agnesdata/agnes/server/internal/store"
)

// progress is a sync job's progress as it runs, published on every change.
type progress struct {
	task *jobs.Task
	Progress
}

func (p *progress) publish(log *slog.Logger) {
	if err := p.task.SetProgress(p.Progress); err != nil {
		log.Warn("save sync progress", "job", p.task.ID(), "err", err)
	}
}

func (p *progress) setTable(id string, f func(*TableProgress)) {
	for i := range p.Tables {
		if p.Tables[i].TableID == id {
			f(&p.Tables[i])
		}
	}
}

// setStep moves every table still in progress (or only the one named) to a pipeline step.
func (p *progress) setStep(step, only string) {
	for i := range p.Tables {
		if t := &p.Tables[i]; t.State == store.JobRunning && (only == "" || t.TableID == only) {
			t.Step = step
		}
	}
}

// runSync runs a sync job. Failures of one table are recorded on that table
// and the others go on; the job ends succeeded, partial or failed.
func (s *Syncer) runSync(ctx context.Context, task *jobs.Task) error {
	var params syncParams
	if err := task.Params(&params); err != nil {
		return err
	}
	p := &progress{task: task}
	if err := task.Progress(&p.Progress); err != nil {
		return err
	}
	started := s.now().UTC()
	bySource := map[string][]*store.RegisteredTable{}
	var sources []string
	for _, id := range params.Tables {
		t, err := s.store.GetTable(ctx, id)
		if err != nil { // unregistered since the trigger
			p.setTable(id, func(tp *TableProgress) { tp.State, tp.Error = store.JobFailed, "the table is no longer registered" })
			continue
		}
		src := t.SourceName()
		if _, ok := bySource[src]; !ok {
			sources = append(sources, src)
		}
		bySource[src] = append(bySource[src], t)
	}
	sort.Strings(sources)
	ok := 0
	for _, src := range sources {
		ok += s.extractSource(ctx, p, src, bySource[src])
	}

	var jobErr string
	if ok > 0 || len(params.Tables) == 0 {
		p.setStep("rebuild", "")
		p.publish(s.log)
		res, err := s.analytics.Rebuild(ctx)
		if err != nil {
			jobErr = "rebuild failed: " + publicError(err)
			s.log.Error("sync rebuild failed", "job", task.ID(), "err", err)
		} else {
			p.Generation = int64(res.Generation)
			s.profileTables(ctx, p)
		}
	}

	finished := s.now().UTC()
	var good, bad int
	for i := range p.Tables {
		t := &p.Tables[i]
		t.Step = ""
		if t.State == store.JobRunning || t.State == store.JobPending {
			if jobErr != "" || ctx.Err() != nil {
				t.State, t.Error = store.JobFailed, cmp.Or(jobErr, "canceled")
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
	p.publish(s.log)
	history := make([]store.HistoryEntry, 0, len(p.Tables))
	for _, t := range p.Tables {
		history = append(history, store.HistoryEntry{JobID: task.ID(), TableID: t.TableID, Started: started,
			Finished: finished, Status: t.State, Rows: t.Rows, SizeBytes: t.SizeBytes, Error: t.Error})
	}
	if err := s.store.AddHistory(context.WithoutCancel(ctx), history); err != nil {
		s.log.Error("record sync history", "job", task.ID(), "err", err)
	}
	s.log.Info("sync job finished", "job", task.ID(), "tables", len(p.Tables), "failed", bad,
		"took_ms", finished.Sub(started).Milliseconds())
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case jobErr != "":
		return errors.New(jobErr)
	case good == 0 && bad > 0:
		return errors.New(firstError(p.Tables))
	case bad > 0:
		return jobs.Partial(errors.New(firstError(p.Tables)))
	}
	return nil
}

// resync runs a handed-over source's own refresh for its tables (HandOver).
func (s *Syncer) resync(ctx context.Context, p *progress, src, typ string, tables []*store.RegisteredTable,
	resync Resync, fail func(*store.RegisteredTable, string)) int {
	var mine []*store.RegisteredTable
	for _, t := range tables {
		if t.SourceType != typ {
			fail(t, fmt.Sprintf("source %q is of type %s, not %s", src, typ, t.SourceType))
			continue
		}
		p.setTable(t.ID, func(tp *TableProgress) { tp.State, tp.Step = store.JobRunning, "the source's own refresh" })
		mine = append(mine, t)
	}
	if len(mine) == 0 {
		return 0
	}
	p.publish(s.log)
	if err := resync(ctx, src); err != nil {
		s.log.Warn("source refresh failed", "source", src, "err", err)
		for _, t := range mine {
			fail(t, publicError(err))
		}
		return 0
	}
	return len(mine)
}

func firstError(ts []TableProgress) string {
	for _, t := range ts {
		if t.Error != "" {
			return fmt.Sprintf("table %s: %s", t.TableID, t.Error)
		}
	}
	return "sync failed"
}

// extractSource extracts one source's tables and records them in its
// extract.duckdb with one rewrite. It returns how many tables succeeded.
func (s *Syncer) extractSource(ctx context.Context, p *progress, src string, tables []*store.RegisteredTable) int {
	fail := func(t *store.RegisteredTable, msg string) {
		p.setTable(t.ID, func(tp *TableProgress) { tp.State, tp.Error, tp.Step = store.JobFailed, msg, "" })
		p.publish(s.log)
		if err := s.store.MarkSyncError(context.WithoutCancel(ctx), t.ID, src, msg); err != nil {
			s.log.Error("mark sync error", "table", t.ID, "err", err)
		}
	}
	conn, ok := s.sources[src]
	if !ok {
		for _, t := range tables {
			fail(t, fmt.Sprintf("no source named %q is configured", src))
		}
		return 0
	}
	if resync, ok := s.handovers[conn.Type()]; ok {
		return s.resync(ctx, p, src, conn.Type(), tables, resync, fail)
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
		if conn.Type() != t.SourceType {
			fail(t, fmt.Sprintf("source %q is of type %s, not %s", src, conn.Type(), t.SourceType))
			continue
		}
		if t.QueryMode == "remote" {
			// Its data stays at the source: queries are pushed down, nothing is extracted.
			p.setTable(t.ID, func(tp *TableProgress) { tp.State, tp.Step = store.JobSucceeded, "" })
			p.publish(s.log)
			continue
		}
		p.setTable(t.ID, func(tp *TableProgress) { tp.State, tp.Step = store.JobRunning, "extract" })
		p.publish(s.log)
		et, err := conn.Extract(ctx, Spec(t), w)
		if err != nil {
			s.log.Warn("extract failed", "table", t.ID, "source", src, "err", err)
			fail(t, publicError(err))
			continue
		}
		p.setTable(t.ID, func(tp *TableProgress) { tp.Rows, tp.SizeBytes = et.Rows, et.SizeBytes })
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
		PartitionBy: t.PartitionBy, PartitionGranularity: t.PartitionGranularity, WhereFilters: whereFilters(t.WhereFilters)}
}

func whereFilters(fs []store.WhereFilter) []connectors.WhereFilter {
	var out []connectors.WhereFilter
	for _, f := range fs {
		out = append(out, connectors.WhereFilter{Column: f.Column, Operator: f.Operator, Values: f.Values, DataType: f.DataType})
	}
	return out
}

// publicError is an error message fit for users: input errors and errors that
// say what the upstream answered (connectors.PublicError) as they are, the rest
// without internal paths.
func publicError(err error) string {
	var in *connectors.InputError
	var pub connectors.PublicError
	switch {
	case errors.As(err, &in):
		return in.Msg
	case errors.As(err, &pub):
		return pub.PublicMessage()
	case errors.Is(err, connectors.ErrNotFound):
		return "the table was not found in the source"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "internal error (see the server log)"
}

// profileTables profiles every table that made it through the rebuild. A profile
// failure is logged; the table's data is still good.
func (s *Syncer) profileTables(ctx context.Context, p *progress) {
	if s.profiler == nil {
		return
	}
	for _, t := range p.Tables {
		if t.State != store.JobRunning {
			continue
		}
		p.setStep("profile", t.TableID)
		p.publish(s.log)
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
