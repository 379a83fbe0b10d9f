// Package analytics ties the orchestrator's rebuilds to the query engine and the
// state store: rebuild the master, switch new queries to the new generation, and
// record what each table now holds in sync_state. Every rebuild — at start, by an
// admin, after a sync — goes through Rebuild, so the three never disagree for long.
//
// Publish is the incremental path (docs/adr/0014-jira-incremental-publishing.md):
// a source that rewrote some Parquet files in place (temp + rename) and its
// extract.duckdb needs no new generation, because the views read the files at
// query time; Publish only records the source's tables in sync_state (hashes,
// rows, parts), and rebuilds only when the source's set of views changed.
package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

	mu   sync.Mutex           // one rebuild-and-load or publish at a time, so generations load in order
	last *orchestrator.Result // the generation serving queries (nil before the first rebuild)
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
	return a.rebuild(ctx)
}

func (a *Analytics) rebuild(ctx context.Context) (*orchestrator.Result, error) {
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
	a.last = res
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
		states = append(states, a.state(v.Source, v.Meta, v.Parts))
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

// state is the sync_state row of a table as its extract describes it.
func (a *Analytics) state(source string, m extract.Meta, parts []extract.Part) store.SyncState {
	last := m.ExtractedAt.UTC()
	st := store.SyncState{
		TableID: m.TableName, Source: source, QueryMode: m.QueryMode, LastSync: &last,
		Rows: m.Rows, SizeBytes: m.SizeBytes, Hash: m.MD5, Status: "ok",
	}
	if st.QueryMode == "" {
		st.QueryMode = extract.ModeLocal
	}
	for _, part := range parts {
		st.Parts = append(st.Parts, store.Part{Name: part.Name, Hash: part.MD5, SizeBytes: part.SizeBytes})
	}
	st.Path = a.dataPath(source, m.TableName)
	return st
}

// Publication says what Publish did.
type Publication struct {
	// Tables is how many of the source's tables were recorded.
	Tables int
	// Rebuilt: the source's set of views changed (a table added or gone, a
	// view reading something else), so a new generation was built.
	Rebuilt bool
	// Generation is the generation serving new queries.
	Generation uint64
}

// Publish makes a source's current extract the one the API serves, without a
// rebuild when it can: the views of the serving generation read the source's
// Parquet at query time, so files rewritten in place (temp + rename) are
// already what new queries see; Publish records the source's tables in
// sync_state (rows, size, hash, parts: the manifest and the catalog), leaving
// every other source alone. When the source's views no longer match the
// generation's (a new or removed table, a view over other files), it rebuilds
// instead. Publish waits for a rebuild in progress, so the state it records is
// never overwritten by an older one.
func (a *Analytics) Publish(ctx context.Context, source string) (Publication, error) {
	if !extract.ValidName(source) {
		return Publication{}, fmt.Errorf("publish: %q is not a valid source name", source)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	contents, err := extract.Read(ctx, orchestrator.ExtractDir(a.dataDir, source))
	if err != nil {
		return Publication{}, fmt.Errorf("publish %s: %w", source, err)
	}
	served, ok := a.served(source, contents)
	if !ok {
		res, err := a.rebuild(ctx)
		if err != nil {
			return Publication{}, fmt.Errorf("publish %s: %w", source, err)
		}
		n := 0
		for _, v := range res.Views {
			if v.Source == source {
				n++
			}
		}
		return Publication{Tables: n, Rebuilt: true, Generation: res.Generation}, nil
	}
	states := make([]store.SyncState, 0, len(served))
	for _, t := range served {
		states = append(states, a.state(source, t.Meta, t.Parts))
	}
	if err := a.store.UpsertSyncStates(ctx, states); err != nil {
		return Publication{}, fmt.Errorf("publish %s: record sync state: %w", source, err)
	}
	return Publication{Tables: len(states), Generation: a.last.Generation}, nil
}

// served returns the tables of contents the serving generation has a view
// of, as that view reads them; ok is false when the source's views differ
// from the generation's (a table it does not serve, a view it serves that the
// extract no longer has or reads differently). Tables the generation refused
// (a name another source claimed) are left out, not rebuilt for again.
func (a *Analytics) served(source string, contents extract.Contents) ([]extract.Table, bool) {
	if a.last == nil {
		return nil, false
	}
	views := map[string]orchestrator.View{}
	for _, v := range a.last.Views {
		if v.Source == source {
			views[strings.ToLower(v.TableName)] = v
		}
	}
	refused := map[string]bool{}
	for _, p := range a.last.Problems {
		if p.Source == source && p.Table == "" {
			return nil, false // the whole source failed last time: try again
		}
		if p.Source == source {
			refused[strings.ToLower(p.Table)] = true
		}
	}
	var out []extract.Table
	for _, t := range contents.Tables {
		key := strings.ToLower(t.TableName)
		v, ok := views[key]
		switch {
		case !ok && refused[key]:
			continue
		case !ok || v.Select != t.View:
			return nil, false
		}
		delete(views, key)
		out = append(out, t)
	}
	return out, len(views) == 0
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
