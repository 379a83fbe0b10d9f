// Package syncsvc implements agnes.v1.SyncService: the per-user manifest, sync jobs
// (trigger, status, watch), per-user sync preferences, and table downloads over
// gRPC. The plain-HTTP download (Range, ETag) is in download.go.
package syncsvc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/restjson"
	"github.com/agnesdata/agnes/server/internal/service"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/syncer"
)

// Store is what the sync service reads and writes.
type Store interface {
	store.Registry
	store.SyncStates
	store.Settings
	store.Audit
	store.Versions
}

// Service implements SyncService.
type Service struct {
	dataDir string
	store   Store
	syncer  *syncer.Syncer
	json    *restjson.Marshaler

	mu       sync.Mutex
	snapshot *catalog
}

var _ agnesv1connect.SyncServiceHandler = (*Service)(nil)

// New returns the service.
func New(dataDir string, st Store, sy *syncer.Syncer, json *restjson.Marshaler) *Service {
	return &Service{dataDir: dataDir, store: st, syncer: sy, json: json}
}

// catalog is every distributable table, prebuilt once per change of the registry
// or sync state, so the manifest is a filter over memory — no file reads and no
// joins on the request path.
type catalog struct {
	version uint64
	ids     []string // sorted
	tables  map[string]*agnesv1.ManifestTable
	json    map[string][]byte // each table's REST JSON, encoded once per change
	states  map[string]*store.SyncState
}

func (s *Service) catalog(ctx context.Context) (*catalog, error) {
	v := s.store.DataVersion()
	s.mu.Lock()
	c := s.snapshot
	s.mu.Unlock()
	if c != nil && c.version == v {
		return c, nil
	}
	states, err := s.store.SyncStates(ctx)
	if err != nil {
		return nil, err
	}
	registry, err := s.store.ListTables(ctx)
	if err != nil {
		return nil, err
	}
	reg := make(map[string]*store.RegisteredTable, len(registry))
	for _, t := range registry {
		reg[t.ID] = t
	}
	c = &catalog{version: v, tables: make(map[string]*agnesv1.ManifestTable, len(states)), json: make(map[string][]byte, len(states)),
		states: make(map[string]*store.SyncState, len(states))}
	for _, st := range states {
		if st.Hash == "" && st.Path == "" && st.QueryMode != "remote" {
			continue // never synced successfully: nothing to distribute yet
		}
		mt := &agnesv1.ManifestTable{Hash: st.Hash, Updated: service.Timestamp(st.LastSync), SizeBytes: st.SizeBytes,
			Rows: st.Rows, QueryMode: st.QueryMode, Parts: []*agnesv1.ManifestPart{}}
		if t := reg[st.TableID]; t != nil {
			mt.QueryMode, mt.SourceType = t.QueryMode, t.SourceType
		}
		for _, p := range st.Parts {
			mt.Parts = append(mt.Parts, &agnesv1.ManifestPart{Name: p.Name, Hash: p.Hash, SizeBytes: p.SizeBytes})
		}
		raw, err := s.json.Marshal(mt)
		if err != nil {
			return nil, err
		}
		c.ids = append(c.ids, st.TableID)
		c.tables[st.TableID] = mt
		c.json[st.TableID] = raw
		c.states[st.TableID] = st
	}
	s.mu.Lock()
	s.snapshot = c
	s.mu.Unlock()
	return c, nil
}

// visible lists, in order, the catalog's tables the caller's grants and
// subscriptions let into their manifest.
func (s *Service) visible(ctx context.Context, p *auth.Principal) (*catalog, []string, error) {
	c, err := s.catalog(ctx)
	if err != nil {
		return nil, nil, err
	}
	prefs, err := s.store.GetUserSettings(ctx, p.UserID)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, 0, len(c.ids))
	for _, id := range c.ids {
		if access.Can(p.Identity, store.ResourceTable, id) && prefs.Enabled(id) {
			ids = append(ids, id)
		}
	}
	return c, ids, nil
}

// GetManifest implements SyncService.
func (s *Service) GetManifest(ctx context.Context, _ *agnesv1.GetManifestRequest) (*agnesv1.GetManifestResponse, error) {
	c, ids, err := s.visible(ctx, auth.FromContext(ctx))
	if err != nil {
		return nil, err
	}
	out := &agnesv1.GetManifestResponse{Tables: make(map[string]*agnesv1.ManifestTable, len(ids)), ServerTime: timestamppb.Now()}
	for _, id := range ids {
		out.Tables[id] = c.tables[id]
	}
	return out, nil
}

// GetSyncStatus implements SyncService.
func (s *Service) GetSyncStatus(ctx context.Context, _ *agnesv1.GetSyncStatusRequest) (*agnesv1.GetSyncStatusResponse, error) {
	running, err := s.syncer.Running(ctx)
	if err != nil {
		return nil, err
	}
	out := &agnesv1.GetSyncStatusResponse{Locked: len(running) > 0, RunningJobs: running}
	jobs, err := s.syncer.Jobs(ctx, 20)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j.Finished() {
			out.LastJob = jobProto(j)
			break
		}
	}
	if p := auth.FromContext(ctx); !p.IsAdmin && out.LastJob != nil {
		// A user sees the tables they may read, and not who triggered the sync.
		out.LastJob.TriggeredBy = ""
		visible := out.LastJob.Tables[:0]
		for _, t := range out.LastJob.Tables {
			if access.Can(p.Identity, store.ResourceTable, t.GetTableId()) {
				visible = append(visible, t)
			}
		}
		out.LastJob.Tables = visible
	}
	return out, nil
}

// TriggerSync implements SyncService.
func (s *Service) TriggerSync(ctx context.Context, req *agnesv1.TriggerSyncRequest) (*agnesv1.TriggerSyncResponse, error) {
	job, err := s.syncer.Trigger(ctx, req.GetTables(), auth.FromContext(ctx).Email)
	if err != nil {
		return nil, triggerError(err)
	}
	out := &agnesv1.TriggerSyncResponse{Status: "triggered", JobId: job.ID, Tables: []string{}}
	for _, t := range job.Tables {
		out.Tables = append(out.Tables, t.TableID)
	}
	out.Message = fmt.Sprintf("sync of %d table(s) started; watch it with WatchSyncJob or GET /api/sync/jobs/%s", len(out.Tables), job.ID)
	return out, nil
}

func triggerError(err error) error {
	var busy *store.BusyError
	switch {
	case errors.As(err, &busy):
		return apierr.AlreadyExists("a sync of %s is already running (job %s)", strings.TrimPrefix(busy.Key, "sync:"), busy.JobID)
	case errors.Is(err, store.ErrNotFound):
		return apierr.NotFound("%s", strings.TrimSuffix(err.Error(), ": not found")+" is not registered")
	}
	return err
}

var jobStates = map[string]agnesv1.SyncJobState{
	store.JobPending: agnesv1.SyncJobState_SYNC_JOB_STATE_PENDING, store.JobRunning: agnesv1.SyncJobState_SYNC_JOB_STATE_RUNNING,
	store.JobSucceeded: agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, store.JobFailed: agnesv1.SyncJobState_SYNC_JOB_STATE_FAILED,
	store.JobPartial: agnesv1.SyncJobState_SYNC_JOB_STATE_PARTIAL, store.JobCancelled: agnesv1.SyncJobState_SYNC_JOB_STATE_CANCELLED,
}

func jobProto(j *syncer.Job) *agnesv1.SyncJob {
	out := &agnesv1.SyncJob{JobId: j.ID, State: jobStates[j.State], TriggeredBy: j.CreatedBy,
		CreatedAt: timestamppb.New(j.CreatedAt), StartedAt: service.Timestamp(j.StartedAt),
		FinishedAt: service.Timestamp(j.FinishedAt), Error: j.Error, Generation: j.Generation, Tables: []*agnesv1.SyncJobTable{}}
	for _, t := range j.Tables {
		out.Tables = append(out.Tables, &agnesv1.SyncJobTable{TableId: t.TableID, State: jobStates[t.State],
			Rows: t.Rows, SizeBytes: t.SizeBytes, Error: t.Error, Step: t.Step})
	}
	return out
}

// GetSyncJob implements SyncService.
func (s *Service) GetSyncJob(ctx context.Context, req *agnesv1.GetSyncJobRequest) (*agnesv1.GetSyncJobResponse, error) {
	j, err := s.syncer.Job(ctx, req.GetJobId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("sync job %q not found", req.GetJobId())
	}
	if err != nil {
		return nil, err
	}
	return &agnesv1.GetSyncJobResponse{Job: jobProto(j)}, nil
}

// ListSyncJobs implements SyncService.
func (s *Service) ListSyncJobs(ctx context.Context, req *agnesv1.ListSyncJobsRequest) (*agnesv1.ListSyncJobsResponse, error) {
	limit, _, err := service.Page(req.GetLimit(), 0, 50, 1000)
	if err != nil {
		return nil, err
	}
	jobs, err := s.syncer.Jobs(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := &agnesv1.ListSyncJobsResponse{Jobs: []*agnesv1.SyncJob{}}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, jobProto(j))
	}
	return out, nil
}

// WatchSyncJob implements SyncService.
func (s *Service) WatchSyncJob(ctx context.Context, req *agnesv1.WatchSyncJobRequest, stream *connect.ServerStream[agnesv1.WatchSyncJobResponse]) error {
	ch, err := s.syncer.Watch(ctx, req.GetJobId())
	if errors.Is(err, store.ErrNotFound) {
		return apierr.NotFound("sync job %q not found", req.GetJobId())
	}
	if err != nil {
		return err
	}
	for j := range ch {
		if err := stream.Send(&agnesv1.WatchSyncJobResponse{Job: jobProto(j)}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func settingsProto(u *store.UserSettings) []*agnesv1.SyncSetting {
	out := make([]*agnesv1.SyncSetting, 0, len(u.Tables))
	for _, t := range u.Tables {
		out = append(out, &agnesv1.SyncSetting{Dataset: t.TableID, Enabled: t.Enabled, UpdatedAt: timestamppb.New(t.UpdatedAt)})
	}
	return out
}

// GetSyncSettings implements SyncService.
func (s *Service) GetSyncSettings(ctx context.Context, _ *agnesv1.GetSyncSettingsRequest) (*agnesv1.GetSyncSettingsResponse, error) {
	p := auth.FromContext(ctx)
	u, err := s.store.GetUserSettings(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	out := &agnesv1.GetSyncSettingsResponse{UserId: p.UserID, Settings: settingsProto(u), EnabledDatasets: []string{}}
	for _, t := range u.Tables {
		if t.Enabled {
			out.EnabledDatasets = append(out.EnabledDatasets, t.TableID)
		}
	}
	return out, nil
}

const maxSettingEntries = 500

// applySettings applies the entries the caller may see and reports the others.
func (s *Service) applySettings(ctx context.Context, mode string, entries map[string]bool) (map[string]*agnesv1.SettingUpdate, error) {
	if len(entries) > maxSettingEntries {
		return nil, apierr.InvalidArgument("at most %d tables per request", maxSettingEntries)
	}
	p := auth.FromContext(ctx)
	apply := map[string]bool{}
	out := map[string]*agnesv1.SettingUpdate{}
	for id, enabled := range entries {
		if !access.Can(p.Identity, store.ResourceTable, id) {
			out[id] = &agnesv1.SettingUpdate{Error: "no permission"}
			continue
		}
		apply[id] = enabled
		out[id] = &agnesv1.SettingUpdate{Enabled: enabled}
	}
	if err := s.store.SetUserSettings(ctx, p.UserID, mode, apply); err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateSyncSettings implements SyncService.
func (s *Service) UpdateSyncSettings(ctx context.Context, req *agnesv1.UpdateSyncSettingsRequest) (*agnesv1.UpdateSyncSettingsResponse, error) {
	updated, err := s.applySettings(ctx, "", req.GetDatasets())
	if err != nil {
		return nil, err
	}
	return &agnesv1.UpdateSyncSettingsResponse{Updated: updated}, nil
}

// GetTableSubscriptions implements SyncService.
func (s *Service) GetTableSubscriptions(ctx context.Context, _ *agnesv1.GetTableSubscriptionsRequest) (*agnesv1.GetTableSubscriptionsResponse, error) {
	p := auth.FromContext(ctx)
	u, err := s.store.GetUserSettings(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	return &agnesv1.GetTableSubscriptionsResponse{UserId: p.UserID, TableMode: u.TableMode, Subscriptions: settingsProto(u)}, nil
}

// UpdateTableSubscriptions implements SyncService.
func (s *Service) UpdateTableSubscriptions(ctx context.Context, req *agnesv1.UpdateTableSubscriptionsRequest) (*agnesv1.UpdateTableSubscriptionsResponse, error) {
	switch req.GetTableMode() {
	case "", store.ModeAll, store.ModeSelected:
	default:
		return nil, apierr.InvalidArgument("table_mode must be %q or %q", store.ModeAll, store.ModeSelected)
	}
	updated, err := s.applySettings(ctx, req.GetTableMode(), req.GetTables())
	if err != nil {
		return nil, err
	}
	u, err := s.store.GetUserSettings(ctx, auth.FromContext(ctx).UserID)
	if err != nil {
		return nil, err
	}
	return &agnesv1.UpdateTableSubscriptionsResponse{TableMode: u.TableMode, Updated: updated}, nil
}

// GetSettings implements SyncService.
func (s *Service) GetSettings(ctx context.Context, _ *agnesv1.GetSettingsRequest) (*agnesv1.GetSettingsResponse, error) {
	p := auth.FromContext(ctx)
	u, err := s.store.GetUserSettings(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	return &agnesv1.GetSettingsResponse{UserId: p.UserID, SyncSettings: settingsProto(u), TableMode: u.TableMode}, nil
}

// UpdateDatasetSetting implements SyncService (the grant is checked by the policy).
func (s *Service) UpdateDatasetSetting(ctx context.Context, req *agnesv1.UpdateDatasetSettingRequest) (*agnesv1.UpdateDatasetSettingResponse, error) {
	if err := s.store.SetUserSettings(ctx, auth.FromContext(ctx).UserID, "", map[string]bool{req.GetDataset(): req.GetEnabled()}); err != nil {
		return nil, err
	}
	return &agnesv1.UpdateDatasetSettingResponse{Dataset: req.GetDataset(), Enabled: req.GetEnabled()}, nil
}

// CheckTableAccess implements SyncService (the grant is checked by the policy).
func (s *Service) CheckTableAccess(ctx context.Context, req *agnesv1.CheckTableAccessRequest) (*agnesv1.CheckTableAccessResponse, error) {
	if _, err := s.resolveFile(ctx, req.GetTableId(), ""); err != nil {
		return nil, err
	}
	return &agnesv1.CheckTableAccessResponse{}, nil
}

// tableIDRE is what a table id in a URL may look like (no path tricks possible).
var tableIDRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,127}$`)

// partRE is what a partition file name may look like.
var partRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.=-]{0,127}$`)

// dataFile is a table's (or part's) file on disk with its content hash.
type dataFile struct {
	path string
	hash string
	name string // download file name
}

// resolveFile finds the file behind a table (and part) in the catalog, so a
// download costs no state query. NotFound for unknown ids, tables without
// local data and unknown parts.
func (s *Service) resolveFile(ctx context.Context, tableID, part string) (*dataFile, error) {
	notFound := apierr.NotFound("table '%s' not found", tableID)
	if !tableIDRE.MatchString(tableID) {
		return nil, notFound
	}
	c, err := s.catalog(ctx)
	if err != nil {
		return nil, err
	}
	st := c.states[tableID]
	if st == nil || st.Path == "" {
		return nil, notFound
	}
	base := filepath.Join(s.dataDir, filepath.FromSlash(st.Path))
	if part == "" {
		if len(st.Parts) > 0 {
			return nil, apierr.InvalidArgument("table '%s' is partitioned: download its parts (?part=<name>, see the manifest)", tableID)
		}
		return &dataFile{path: base, hash: st.Hash, name: tableID + ".parquet"}, nil
	}
	if !partRE.MatchString(part) {
		return nil, apierr.NotFound("part '%s' of table '%s' not found", part, tableID)
	}
	for _, p := range st.Parts {
		if p.Name == part {
			return &dataFile{path: filepath.Join(base, part+".parquet"), hash: p.Hash, name: tableID + "-" + part + ".parquet"}, nil
		}
	}
	return nil, apierr.NotFound("part '%s' of table '%s' not found", part, tableID)
}

const chunkSize = 256 << 10

// DownloadTable implements SyncService (the grant is checked by the policy).
func (s *Service) DownloadTable(ctx context.Context, req *agnesv1.DownloadTableRequest, stream *connect.ServerStream[agnesv1.DownloadTableResponse]) error {
	df, err := s.resolveFile(ctx, req.GetTableId(), req.GetPart())
	if err != nil {
		return err
	}
	f, err := os.Open(df.path)
	if err != nil {
		return fmt.Errorf("open table data: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	off := req.GetOffset()
	if off < 0 || off > fi.Size() {
		return connect.NewError(connect.CodeOutOfRange, fmt.Errorf("offset %d outside 0..%d", off, fi.Size()))
	}
	buf := make([]byte, chunkSize)
	first := true
	for {
		n, err := f.ReadAt(buf, off)
		if n > 0 || first {
			msg := &agnesv1.DownloadTableResponse{Offset: off, Data: buf[:n]}
			if first {
				msg.Hash, msg.SizeBytes, first = df.hash, fi.Size(), false
			}
			if serr := stream.Send(msg); serr != nil {
				return serr
			}
			off += int64(n)
		}
		if err != nil || off >= fi.Size() {
			return nil
		}
	}
}
