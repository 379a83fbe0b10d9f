package adminsvc

import (
	"context"
	"errors"
	"strings"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/keboola"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/service"
	"github.com/agnesdata/agnes/server/internal/sources"
	"github.com/agnesdata/agnes/server/internal/store"
)

func sourceInfo(h sources.Health, tables int) *agnesv1.SourceInfo {
	info := &agnesv1.SourceInfo{Name: h.Source, Type: h.Type, Health: h.Status, Message: h.Message, Tables: int32(tables)}
	if !h.CheckedAt.IsZero() {
		info.CheckedAt = service.Timestamp(&h.CheckedAt)
	}
	return info
}

// tablesPerSource counts the registered tables of each source.
func (s *Service) tablesPerSource(ctx context.Context) (map[string]int, error) {
	tables, err := s.store.ListTables(ctx)
	if err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, t := range tables {
		n[t.SourceName()]++
	}
	return n, nil
}

// ListSources implements AdminService.
func (s *Service) ListSources(ctx context.Context, _ *agnesv1.ListSourcesRequest) (*agnesv1.ListSourcesResponse, error) {
	counts, err := s.tablesPerSource(ctx)
	if err != nil {
		return nil, err
	}
	out := &agnesv1.ListSourcesResponse{Sources: []*agnesv1.SourceInfo{}}
	for _, h := range s.sources.List() {
		out.Sources = append(out.Sources, sourceInfo(h, counts[h.Source]))
	}
	return out, nil
}

// VerifySource implements AdminService.
func (s *Service) VerifySource(ctx context.Context, req *agnesv1.VerifySourceRequest) (*agnesv1.VerifySourceResponse, error) {
	h, ok := s.sources.Verify(ctx, req.GetSource())
	if !ok {
		return nil, apierr.NotFound("no source named %q is configured (configured: %s)", req.GetSource(),
			strings.Join(s.syncer.SourceNames(), ", "))
	}
	counts, err := s.tablesPerSource(ctx)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, "source.verify", h.Source, map[string]any{"health": h.Status})
	return &agnesv1.VerifySourceResponse{Source: sourceInfo(h, counts[h.Source])}, nil
}

// describer is a source that keeps column descriptions (Keboola).
type describer interface {
	SetColumnDescription(ctx context.Context, tableID, column, text string) error
}

// PushColumnDescription implements AdminService.
func (s *Service) PushColumnDescription(ctx context.Context, req *agnesv1.PushColumnDescriptionRequest) (*agnesv1.PushColumnDescriptionResponse, error) {
	if len(req.GetDescription()) > maxDescription {
		return nil, fieldError("description", "must be at most %d characters", maxDescription)
	}
	t, err := s.store.GetTable(ctx, req.GetTableId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("table '%s' is not registered", req.GetTableId())
	}
	if err != nil {
		return nil, err
	}
	conn, ok := s.syncer.Source(t.SourceName())
	if !ok {
		return nil, apierr.FailedPrecondition("the table's source %q is not configured", t.SourceName())
	}
	d, ok := conn.(describer)
	if !ok {
		return nil, apierr.InvalidArgument("source %s (%s) keeps no column descriptions; only Keboola sources do", t.SourceName(), conn.Type())
	}
	id := keboolaTableID(t)
	err = d.SetColumnDescription(ctx, id, req.GetColumn(), req.GetDescription())
	var in *connectors.InputError
	var pub connectors.PublicError
	switch {
	case errors.As(err, &in):
		return nil, apierr.InvalidArgument("%s", in.Msg)
	case errors.Is(err, connectors.ErrNotFound):
		return nil, apierr.NotFound("%s", sources.Message(err))
	case errors.Is(err, keboola.ErrTokenRejected):
		return nil, apierr.FailedPrecondition("%s", sources.Message(err))
	case errors.As(err, &pub):
		return nil, apierr.Unavailable("%s", pub.PublicMessage())
	case err != nil:
		return nil, apierr.Unavailable("writing to source %s failed: %s", t.SourceName(), sources.Message(err))
	}
	s.audit(ctx, "registry.push_column_description", t.ID, map[string]any{"column": req.GetColumn(), "source": t.SourceName()})
	return &agnesv1.PushColumnDescriptionResponse{Source: t.SourceName(), ColumnId: id + "." + req.GetColumn()}, nil
}

// keboolaTableID is the Keboola table id a registry row names: bucket +
// "." + source_table, or source_table when it already is a full id (the
// connector's own rule).
func keboolaTableID(t *store.RegisteredTable) string {
	id := t.SourceTable
	if id == "" {
		id = t.Name
	}
	if t.Bucket != "" && !strings.HasPrefix(id, t.Bucket+".") {
		id = t.Bucket + "." + id
	}
	return id
}
