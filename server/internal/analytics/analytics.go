// Package analytics ties the orchestrator's rebuilds to the query engine and the
// state store: rebuild the master, switch new queries to the new generation, and
// record what each table now holds in sync_state. Every rebuild — at start, by an
// admin, after a sync — goes through Rebuild, so the three never disagree for long.
package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/orchestrator"
	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Analytics owns the orchestrator and the engine.
type Analytics struct {
	dataDir string
	orch    *orchestrator.Orchestrator
	Engine  *engine.Engine
	store   store.SyncStates
	log     *slog.Logger

	mu sync.Mutex // one rebuild-and-load at a time, so generations load in order
}

// New returns an Analytics with no generation loaded yet.
func New(dataDir string, st store.SyncStates, opts engine.Options, log *slog.Logger) *Analytics {
	opts.Logger = log
	return &Analytics{
		dataDir: dataDir,
		orch:    orchestrator.New(dataDir, orchestrator.Options{}),
		Engine:  engine.New(opts),
		store:   st,
		log:     log,
	}
}

// Close closes the engine.
func (a *Analytics) Close() error { return a.Engine.Close() }

// Rebuild builds a new master, makes it the generation new queries use and
// records the tables in sync_state. Problems (a broken extract, a name claimed
// twice) are in the result and logged; they do not fail the rebuild.
func (a *Analytics) Rebuild(ctx context.Context) (*orchestrator.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	res, err := a.orch.Rebuild(ctx)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	warnings, err := a.Engine.Load(ctx, res.Master, res.Generation)
	if err != nil {
		return nil, fmt.Errorf("load generation %d: %w", res.Generation, err)
	}
	for _, w := range warnings {
		a.log.WarnContext(ctx, "analytics generation", "generation", res.Generation, "warning", w)
	}
	for _, p := range res.Problems {
		a.log.WarnContext(ctx, "rebuild problem", "kind", p.Kind, "source", p.Source, "table", p.Table, "message", p.Message)
	}
	if err := a.recordState(ctx, res); err != nil {
		return nil, err
	}
	a.log.InfoContext(ctx, "analytics rebuilt", "generation", res.Generation, "sources", len(res.Sources),
		"views", len(res.Views), "problems", len(res.Problems), "took_ms", res.Took.Milliseconds())
	return res, nil
}

// recordState upserts a sync_state row per view and drops rows of tables that a
// healthy source no longer has (tables of a source that failed to attach keep their
// last state: the manifest should not flap when one extract is briefly broken).
func (a *Analytics) recordState(ctx context.Context, res *orchestrator.Result) error {
	states := make([]store.SyncState, 0, len(res.Views))
	present := map[string]bool{}
	for _, v := range res.Views {
		last := v.ExtractedAt.UTC()
		st := store.SyncState{
			TableID: v.TableName, Source: v.Source, QueryMode: v.QueryMode, LastSync: &last,
			Rows: v.Rows, SizeBytes: v.SizeBytes, Hash: v.MD5, Status: "ok",
		}
		if st.QueryMode == "" {
			st.QueryMode = extract.ModeLocal
		}
		for _, part := range v.Parts {
			st.Parts = append(st.Parts, store.Part{Name: part.Name, Hash: part.MD5, SizeBytes: part.SizeBytes})
		}
		st.Path = a.dataPath(v.Source, v.TableName)
		states = append(states, st)
		present[v.TableName] = true
	}
	if err := a.store.UpsertSyncStates(ctx, states); err != nil {
		return fmt.Errorf("record sync state: %w", err)
	}
	healthy := map[string]bool{}
	for _, s := range res.Sources {
		healthy[s.Name] = true
	}
	all, err := a.store.SyncStates(ctx)
	if err != nil {
		return err
	}
	for _, st := range all {
		if healthy[st.Source] && !present[st.TableID] {
			if err := a.store.DeleteSyncState(ctx, st.TableID); err != nil {
				return err
			}
		}
	}
	return nil
}

// dataPath is the table's Parquet file (or folder, for partitioned tables) relative
// to the data dir, or "" for tables without local data (remote views).
func (a *Analytics) dataPath(source, table string) string {
	rel := filepath.Join("extracts", source, extract.DataDir, table)
	if fi, err := os.Stat(filepath.Join(a.dataDir, rel)); err == nil && fi.IsDir() {
		return rel
	}
	if _, err := os.Stat(filepath.Join(a.dataDir, rel+".parquet")); err == nil {
		return rel + ".parquet"
	} else if !errors.Is(err, os.ErrNotExist) {
		a.log.Warn("stat table data", "table", table, "err", err)
	}
	return ""
}
