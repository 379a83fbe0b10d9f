// Package catalogsvc implements agnes.v1.CatalogService: what each table holds —
// descriptions, columns, data profiles — and shared metric definitions. Every
// listing is filtered by the caller's grants.
package catalogsvc

import (
	"context"
	"errors"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/service"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/syncer"
)

// Store is what the catalog reads and writes.
type Store interface {
	store.Registry
	store.SyncStates
	store.Profiles
	store.Metrics
}

// Service implements CatalogService.
type Service struct {
	store  Store
	engine *engine.Engine
	syncer *syncer.Syncer
}

var _ agnesv1connect.CatalogServiceHandler = (*Service)(nil)

// New returns the service.
func New(st Store, eng *engine.Engine, sy *syncer.Syncer) *Service {
	return &Service{store: st, engine: eng, syncer: sy}
}

// tables lists every table the caller may see: registered ones and tables found in
// an extract without a registry row (named by their view).
func (s *Service) tables(ctx context.Context) ([]*agnesv1.CatalogTable, error) {
	p := auth.FromContext(ctx)
	registry, err := s.store.ListTables(ctx)
	if err != nil {
		return nil, err
	}
	states, err := s.store.SyncStates(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]*agnesv1.CatalogTable{}
	for _, t := range registry {
		byID[t.ID] = &agnesv1.CatalogTable{Id: t.ID, Name: t.Name, Description: t.Description, SourceType: t.SourceType,
			SyncStrategy: t.SyncStrategy, QueryMode: t.QueryMode, Folder: t.Folder, Columns: []*agnesv1.CatalogColumn{}}
	}
	for _, st := range states {
		ct := byID[st.TableID]
		if ct == nil {
			ct = &agnesv1.CatalogTable{Id: st.TableID, Name: st.TableID, QueryMode: st.QueryMode, SourceType: st.Source,
				Columns: []*agnesv1.CatalogColumn{}}
			byID[st.TableID] = ct
		}
		ct.Rows, ct.SizeBytes, ct.LastSync = st.Rows, st.SizeBytes, service.Timestamp(st.LastSync)
	}
	out := make([]*agnesv1.CatalogTable, 0, len(byID))
	for id, t := range byID {
		if access.Can(p.Identity, store.ResourceTable, id) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out, nil
}

// ListCatalogTables implements CatalogService.
func (s *Service) ListCatalogTables(ctx context.Context, _ *agnesv1.ListCatalogTablesRequest) (*agnesv1.ListCatalogTablesResponse, error) {
	ts, err := s.tables(ctx)
	if err != nil {
		return nil, err
	}
	return &agnesv1.ListCatalogTablesResponse{Tables: ts, Count: int32(len(ts))}, nil
}

// GetCatalogTable implements CatalogService (the grant is checked by the policy).
func (s *Service) GetCatalogTable(ctx context.Context, req *agnesv1.GetCatalogTableRequest) (*agnesv1.GetCatalogTableResponse, error) {
	ts, err := s.tables(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.GetId() != req.GetTableId() {
			continue
		}
		if view, ok := s.engine.LookupView(t.GetId()); ok {
			// The id is a known view name, quoted: no user text reaches the SQL.
			q := `SELECT * FROM "` + strings.ReplaceAll(view, `"`, `""`) + `" LIMIT 0`
			if cols, err := s.engine.Describe(ctx, q, engine.RunOptions{}); err == nil {
				for _, c := range cols {
					t.Columns = append(t.Columns, &agnesv1.CatalogColumn{Name: c.Name, Type: c.Type})
				}
			}
		}
		return &agnesv1.GetCatalogTableResponse{Table: t}, nil
	}
	return nil, apierr.NotFound("table '%s' not found", req.GetTableId())
}

// GetTableProfile implements CatalogService (the grant is checked by the policy).
func (s *Service) GetTableProfile(ctx context.Context, req *agnesv1.GetTableProfileRequest) (*agnesv1.GetTableProfileResponse, error) {
	p, err := s.store.GetProfile(ctx, req.GetTableId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("Profile not found for '%s'", req.GetTableId())
	}
	if err != nil {
		return nil, err
	}
	out := &agnesv1.TableProfile{}
	if err := protojson.Unmarshal(p.JSON, out); err != nil {
		return nil, err
	}
	return &agnesv1.GetTableProfileResponse{Profile: out}, nil
}

// RefreshTableProfile implements CatalogService.
func (s *Service) RefreshTableProfile(ctx context.Context, req *agnesv1.RefreshTableProfileRequest) (*agnesv1.RefreshTableProfileResponse, error) {
	if err := s.syncer.Profile(ctx, req.GetTableId()); errors.Is(err, syncer.ErrNoData) {
		return nil, apierr.NotFound("table '%s' has no data to profile", req.GetTableId())
	} else if err != nil {
		return nil, err
	}
	res, err := s.GetTableProfile(ctx, &agnesv1.GetTableProfileRequest{TableId: req.GetTableId()})
	if err != nil {
		return nil, err
	}
	return &agnesv1.RefreshTableProfileResponse{Status: "ok", Table: req.GetTableId(), Columns: int32(len(res.GetProfile().GetColumns()))}, nil
}
