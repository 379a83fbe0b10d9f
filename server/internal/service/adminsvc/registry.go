package adminsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/bigquery"
	"github.com/agnesdata/agnes/connectors/keboola"
	"github.com/agnesdata/agnes/connectors/upload"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/orchestrator/schedule"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/pushdown"
	"github.com/agnesdata/agnes/server/internal/sources"
	"github.com/agnesdata/agnes/server/internal/store"
)

var (
	strategies    = []string{connectors.StrategyFullRefresh, connectors.StrategyIncremental, connectors.StrategyPartitioned}
	queryModes    = []string{"local", "remote", "materialized"}
	granularities = []string{"day", "month", "year"}
	// filterOperators are the where_filters operators (Keboola's whereOperator, spelled out).
	filterOperators = []string{"eq", "ne", "gt", "ge", "lt", "le"}
	identifierRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	maxDescription  = 4000
)

func fieldError(field, format string, a ...any) error {
	return apierr.InvalidArgument("%s: %s", field, fmt.Sprintf(format, a...))
}

// validate checks a registry row as a whole, naming the field at fault, and fills
// defaults.
func (s *Service) validate(t *store.RegisteredTable) error {
	if strings.TrimSpace(t.Name) == "" {
		return fieldError("name", "is required")
	}
	name := t.SourceName()
	if name == "" {
		return fieldError("source_type", "is required (or source, a configured source's name)")
	}
	conn, ok := s.syncer.Source(name)
	switch {
	case !ok && t.Source == "":
		return fieldError("source_type", "unknown source type %q: no source of that name is configured (configured: %s)", name, strings.Join(s.syncer.SourceNames(), ", "))
	case !ok:
		return fieldError("source", "no source named %q is configured (configured: %s)", name, strings.Join(s.syncer.SourceNames(), ", "))
	case t.SourceType == "":
		t.SourceType = conn.Type()
	case t.SourceType != conn.Type():
		return fieldError("source_type", "source %q is of type %s, not %s", name, conn.Type(), t.SourceType)
	}
	t.Source = name
	if t.SourceType == upload.Type && t.SourceTable != "" && !upload.ValidSourceTable(t.SourceTable) {
		return fieldError("source_table", "%q is not an upload: name a file of the uploads folder "+
			"(<name>.csv or <name>.parquet, as POST /api/upload stored it)", t.SourceTable)
	}
	for i, f := range t.WhereFilters {
		if !identifierRE.MatchString(f.Column) {
			return fieldError("where_filters", "filter %d: %q is not a column name", i+1, f.Column)
		}
		if !slices.Contains(filterOperators, f.Operator) {
			return fieldError("where_filters", "filter %d: operator must be one of %s", i+1, strings.Join(filterOperators, ", "))
		}
		if len(f.Values) == 0 {
			return fieldError("where_filters", "filter %d: at least one value is required", i+1)
		}
	}
	if t.SyncStrategy == "" {
		t.SyncStrategy = connectors.StrategyFullRefresh
	}
	if t.QueryMode == "" {
		t.QueryMode = "local"
	}
	switch {
	case !slices.Contains(strategies, t.SyncStrategy):
		return fieldError("sync_strategy", "must be one of %s", strings.Join(strategies, ", "))
	case !slices.Contains(queryModes, t.QueryMode):
		return fieldError("query_mode", "must be one of %s", strings.Join(queryModes, ", "))
	case t.SyncStrategy == connectors.StrategyPartitioned && t.PartitionBy == "":
		return fieldError("partition_by", "is required for the partitioned strategy")
	case t.SyncStrategy == connectors.StrategyPartitioned && t.QueryMode == "remote":
		return fieldError("query_mode", "a partitioned table cannot be remote")
	case t.SyncStrategy == connectors.StrategyIncremental && t.IncrementalColumn == "" && t.SourceType != keboola.Type:
		// Keboola's incremental exports select changes by its own _timestamp.
		return fieldError("incremental_column", "is required for the incremental strategy")
	case t.PartitionBy != "" && !identifierRE.MatchString(t.PartitionBy):
		return fieldError("partition_by", "must be a column name")
	case t.IncrementalColumn != "" && !identifierRE.MatchString(t.IncrementalColumn):
		return fieldError("incremental_column", "must be a column name")
	case t.IncrementalWindowDays < 0:
		return fieldError("incremental_window_days", "must not be negative")
	case t.SourceQuery != "" && t.QueryMode != "materialized":
		return fieldError("source_query", "is only used with query_mode materialized")
	case len(t.Description) > maxDescription:
		return fieldError("description", "must be at most %d characters", maxDescription)
	}
	if t.SyncStrategy == connectors.StrategyPartitioned && t.PartitionGranularity == "" {
		t.PartitionGranularity = "month"
	}
	if t.PartitionGranularity != "" && !slices.Contains(granularities, t.PartitionGranularity) {
		return fieldError("partition_granularity", "must be one of %s", strings.Join(granularities, ", "))
	}
	if _, err := schedule.Parse(t.SyncSchedule); err != nil {
		return fieldError("sync_schedule", "%v", err)
	}
	for _, c := range t.PrimaryKey {
		if !identifierRE.MatchString(c) {
			return fieldError("primary_key", "%q is not a column name", c)
		}
	}
	return validateSource(t, conn)
}

// validateSource checks what only some source types allow: Keboola tables
// name a Keboola table; BigQuery tables are remote or materialized whole;
// other types are local.
func validateSource(t *store.RegisteredTable, conn connectors.Connector) error {
	if t.SourceType != bigquery.Type && t.QueryMode != "local" {
		return fieldError("query_mode", "%s is only for BigQuery sources; %s tables are local", t.QueryMode, t.SourceType)
	}
	switch t.SourceType {
	case keboola.Type:
		id := keboolaTableID(t)
		switch {
		case t.SourceTable == "":
			return fieldError("source_table", "is required: the Keboola table's name (with bucket, e.g. in.c-crm) or its full id, e.g. in.c-crm.orders")
		case strings.Count(id, ".") != 2 || strings.HasPrefix(id, ".") || strings.HasSuffix(id, ".") || strings.Contains(id, ".."):
			return fieldError("source_table", "bucket %q and source_table %q give %q, which is not a Keboola table id (stage.c-bucket.table, e.g. in.c-crm.orders)",
				t.Bucket, t.SourceTable, id)
		}
		// A primary key for incremental and partitioned syncs may come from
		// Keboola's table itself; the sync says so when neither has one.
	case bigquery.Type:
		bq, _ := conn.(*bigquery.Connector)
		switch {
		case len(t.WhereFilters) > 0:
			return fieldError("where_filters", "are applied by Keboola exports only; for BigQuery write the filter into source_query (query_mode materialized)")
		case t.SyncStrategy != connectors.StrategyFullRefresh:
			return fieldError("sync_strategy", "BigQuery tables are materialized whole (full_refresh) or stay remote")
		case t.QueryMode == "materialized" && t.SourceQuery != "":
			return nil
		case bq != nil:
			if _, err := pushdown.Ref(bq.Settings().Project, t); err != nil {
				return apierr.InvalidArgument("%s", err.Error())
			}
		}
	}
	return nil
}

func registered(t *store.RegisteredTable, lastError string) *agnesv1.RegisteredTable {
	pk := t.PrimaryKey
	if pk == nil {
		pk = []string{}
	}
	return &agnesv1.RegisteredTable{Id: t.ID, Name: t.Name, SourceType: t.SourceType, Bucket: t.Bucket,
		SourceTable: t.SourceTable, SourceQuery: t.SourceQuery, SyncStrategy: t.SyncStrategy, QueryMode: t.QueryMode,
		SyncSchedule: t.SyncSchedule, PrimaryKey: pk, Folder: t.Folder, Description: t.Description,
		RegisteredBy: t.RegisteredBy, RegisteredAt: timestamppb.New(t.RegisteredAt), IncrementalColumn: t.IncrementalColumn,
		IncrementalWindowDays: int32(t.IncrementalWindowDays), PartitionBy: t.PartitionBy,
		PartitionGranularity: t.PartitionGranularity, LastSyncError: lastError, Source: t.SourceName(),
		WhereFilters: filtersProto(t.WhereFilters)}
}

func filtersProto(fs []store.WhereFilter) []*agnesv1.WhereFilter {
	out := make([]*agnesv1.WhereFilter, 0, len(fs))
	for _, f := range fs {
		out = append(out, &agnesv1.WhereFilter{Column: f.Column, Operator: f.Operator, Values: f.Values, DataType: f.DataType})
	}
	return out
}

func nonNilFilters(fs []store.WhereFilter) []store.WhereFilter {
	if fs == nil {
		return []store.WhereFilter{}
	}
	return fs
}

func filters(fs []*agnesv1.WhereFilter) []store.WhereFilter {
	out := make([]store.WhereFilter, 0, len(fs))
	for _, f := range fs {
		out = append(out, store.WhereFilter{Column: f.GetColumn(), Operator: f.GetOperator(), Values: f.GetValues(),
			DataType: f.GetDataType()})
	}
	return out
}

// ListRegistry implements AdminService.
func (s *Service) ListRegistry(ctx context.Context, _ *agnesv1.ListRegistryRequest) (*agnesv1.ListRegistryResponse, error) {
	tables, err := s.store.ListTables(ctx)
	if err != nil {
		return nil, err
	}
	states, err := s.store.SyncStates(ctx)
	if err != nil {
		return nil, err
	}
	errs := map[string]string{}
	for _, st := range states {
		if st.Status == "error" {
			errs[st.TableID] = st.Error
		}
	}
	out := &agnesv1.ListRegistryResponse{Tables: []*agnesv1.RegisteredTable{}, Count: int32(len(tables))}
	for _, t := range tables {
		out.Tables = append(out.Tables, registered(t, errs[t.ID]))
	}
	return out, nil
}

// RegisterTable implements AdminService.
func (s *Service) RegisterTable(ctx context.Context, req *agnesv1.RegisterTableRequest) (*agnesv1.RegisterTableResponse, error) {
	t, err := s.Register(ctx, &store.RegisteredTable{
		Name: strings.TrimSpace(req.GetName()), SourceType: req.GetSourceType(), Bucket: req.GetBucket(),
		SourceTable: req.GetSourceTable(), SourceQuery: req.GetSourceQuery(), SyncStrategy: req.GetSyncStrategy(),
		QueryMode: req.GetQueryMode(), SyncSchedule: req.GetSyncSchedule(), PrimaryKey: req.GetPrimaryKey(),
		Folder: req.GetFolder(), Description: req.GetDescription(), IncrementalColumn: req.GetIncrementalColumn(),
		IncrementalWindowDays: int(req.GetIncrementalWindowDays()), PartitionBy: req.GetPartitionBy(),
		PartitionGranularity: req.GetPartitionGranularity(), Source: req.GetSource(),
		WhereFilters: filters(req.GetWhereFilters()),
	})
	if err != nil {
		return nil, err
	}
	return &agnesv1.RegisterTableResponse{Id: t.ID, Name: t.Name, Status: "registered"}, nil
}

// Register validates and stores a new registry row (also used by uploads).
func (s *Service) Register(ctx context.Context, t *store.RegisteredTable) (*store.RegisteredTable, error) {
	if strings.TrimSpace(t.Name) == "" {
		return nil, fieldError("name", "is required")
	}
	id, err := connectors.TableID(t.Name)
	if err != nil {
		return nil, fieldError("name", "%v", err)
	}
	t.ID, t.RegisteredBy, t.RegisteredAt = id, actor(ctx), time.Now().UTC()
	if err := s.validate(t); err != nil {
		return nil, err
	}
	if err := s.store.CreateTable(ctx, t); errors.Is(err, store.ErrAlreadyExists) {
		return nil, apierr.AlreadyExists("table '%s' already registered (id or name taken)", id)
	} else if err != nil {
		return nil, err
	}
	s.audit(ctx, "registry.register", id, map[string]any{"source_type": t.SourceType, "name": t.Name})
	return t, nil
}

// UpdateRegisteredTable implements AdminService.
func (s *Service) UpdateRegisteredTable(ctx context.Context, req *agnesv1.UpdateRegisteredTableRequest) (*agnesv1.UpdateRegisteredTableResponse, error) {
	t, err := s.store.GetTable(ctx, req.GetTableId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("table '%s' is not registered", req.GetTableId())
	}
	if err != nil {
		return nil, err
	}
	var updated []string
	set := func(field string, v *string, dst *string) {
		if v != nil && *v != *dst {
			*dst = *v
			updated = append(updated, field)
		}
	}
	set("name", req.Name, &t.Name)
	set("bucket", req.Bucket, &t.Bucket)
	set("source_table", req.SourceTable, &t.SourceTable)
	set("source_query", req.SourceQuery, &t.SourceQuery)
	set("sync_strategy", req.SyncStrategy, &t.SyncStrategy)
	set("query_mode", req.QueryMode, &t.QueryMode)
	set("sync_schedule", req.SyncSchedule, &t.SyncSchedule)
	set("folder", req.Folder, &t.Folder)
	set("description", req.Description, &t.Description)
	set("incremental_column", req.IncrementalColumn, &t.IncrementalColumn)
	set("partition_by", req.PartitionBy, &t.PartitionBy)
	set("partition_granularity", req.PartitionGranularity, &t.PartitionGranularity)
	if req.IncrementalWindowDays != nil && int(req.GetIncrementalWindowDays()) != t.IncrementalWindowDays {
		t.IncrementalWindowDays = int(req.GetIncrementalWindowDays())
		updated = append(updated, "incremental_window_days")
	}
	if req.GetSetPrimaryKey() && !slices.Equal(req.GetPrimaryKey(), t.PrimaryKey) {
		t.PrimaryKey = req.GetPrimaryKey()
		updated = append(updated, "primary_key")
	}
	if req.GetSetWhereFilters() {
		if fs := filters(req.GetWhereFilters()); !reflect.DeepEqual(fs, nonNilFilters(t.WhereFilters)) {
			t.WhereFilters = fs
			updated = append(updated, "where_filters")
		}
	}
	if err := s.validate(t); err != nil {
		return nil, err
	}
	if err := s.store.UpdateTable(ctx, t); errors.Is(err, store.ErrAlreadyExists) {
		return nil, fieldError("name", "another table is named %q", t.Name)
	} else if err != nil {
		return nil, err
	}
	slices.Sort(updated)
	s.audit(ctx, "registry.update", t.ID, map[string]any{"updated": updated})
	return &agnesv1.UpdateRegisteredTableResponse{Id: t.ID, Updated: append([]string{}, updated...)}, nil
}

// DeleteRegisteredTable implements AdminService.
func (s *Service) DeleteRegisteredTable(ctx context.Context, req *agnesv1.DeleteRegisteredTableRequest) (*agnesv1.DeleteRegisteredTableResponse, error) {
	err := s.syncer.Unregister(ctx, req.GetTableId(), actor(ctx))
	var busy *store.BusyError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, apierr.NotFound("table '%s' is not registered", req.GetTableId())
	case errors.As(err, &busy):
		return nil, apierr.AlreadyExists("a job of the table's source is running (job %s); try again when it ends", busy.JobID)
	case err != nil:
		return nil, err
	}
	s.audit(ctx, "registry.delete", req.GetTableId(), nil)
	return &agnesv1.DeleteRegisteredTableResponse{}, nil
}

// DiscoverTables implements AdminService.
func (s *Service) DiscoverTables(ctx context.Context, req *agnesv1.DiscoverTablesRequest) (*agnesv1.DiscoverTablesResponse, error) {
	conn, ok := s.syncer.Source(req.GetSource())
	if !ok {
		return nil, fieldError("source", "no source named %q is configured (configured: %s)", req.GetSource(), strings.Join(s.syncer.SourceNames(), ", "))
	}
	found, err := conn.Discover(ctx)
	if err != nil {
		slog.WarnContext(ctx, "discovery failed", "source", req.GetSource(), "err", err)
		if errors.Is(err, keboola.ErrTokenRejected) {
			return nil, apierr.FailedPrecondition("%s", sources.Message(err))
		}
		return nil, apierr.Unavailable("discovery in %s failed: %s", req.GetSource(), sources.Message(err))
	}
	tables, err := s.store.ListTables(ctx)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, t := range tables {
		known[t.ID] = true
	}
	out := &agnesv1.DiscoverTablesResponse{Source: req.GetSource(), Tables: []*agnesv1.DiscoveredTable{}}
	for _, d := range found {
		if req.GetDataset() != "" && d.Bucket != req.GetDataset() {
			continue
		}
		out.Tables = append(out.Tables, &agnesv1.DiscoveredTable{Id: d.ID, Name: d.Name, Bucket: d.Bucket,
			SourceTable: d.SourceTable, Description: d.Description, Columns: nonNil(d.Columns), RowCount: d.Rows,
			SizeBytes: d.SizeBytes, PrimaryKey: nonNil(d.PrimaryKey), Registered: known[d.ID]})
	}
	out.Count = int32(len(out.Tables))
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
