package catalogsvc

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/store"
)

var metricPartRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,99}$`)

// normalize validates a metric and gives it its id ("category/name").
func normalize(m *agnesv1.Metric, source string) error {
	m.Name, m.Category = strings.TrimSpace(m.GetName()), strings.TrimSpace(m.GetCategory())
	switch {
	case m.GetName() == "":
		return apierr.InvalidArgument("metric name is required")
	case m.GetCategory() == "":
		return apierr.InvalidArgument("metric %q: category is required", m.GetName())
	case !metricPartRE.MatchString(m.GetName()) || !metricPartRE.MatchString(m.GetCategory()):
		return apierr.InvalidArgument("metric %q: name and category must be lower-case words (a-z, 0-9, _ and -)", m.GetName())
	case strings.TrimSpace(m.GetSql()) == "" && len(m.GetSqlVariants()) == 0:
		return apierr.InvalidArgument("metric %q: sql is required", m.GetName())
	}
	id := m.GetCategory() + "/" + m.GetName()
	if m.GetId() != "" && m.GetId() != id {
		return apierr.InvalidArgument("metric id %q must be %q (category/name)", m.GetId(), id)
	}
	m.Id = id
	if m.GetType() == "" {
		m.Type = "sum"
	}
	if m.GetGrain() == "" {
		m.Grain = "monthly"
	}
	if m.GetSource() == "" {
		m.Source = source
	}
	m.UpdatedAt = timestamppb.Now()
	return nil
}

func row(m *agnesv1.Metric) (store.MetricRow, error) {
	raw, err := protojson.Marshal(m)
	return store.MetricRow{ID: m.GetId(), Category: m.GetCategory(), Name: m.GetName(), Definition: raw}, err
}

func metric(r store.MetricRow) (*agnesv1.Metric, error) {
	m := &agnesv1.Metric{}
	return m, protojson.Unmarshal(r.Definition, m)
}

// ListMetrics implements CatalogService.
func (s *Service) ListMetrics(ctx context.Context, req *agnesv1.ListMetricsRequest) (*agnesv1.ListMetricsResponse, error) {
	rows, err := s.store.ListMetrics(ctx, req.GetCategory())
	if err != nil {
		return nil, err
	}
	out := &agnesv1.ListMetricsResponse{Metrics: []*agnesv1.Metric{}}
	p := auth.FromContext(ctx)
	for _, r := range rows {
		m, err := metric(r)
		if err != nil {
			return nil, err
		}
		if visible(p, m) {
			out.Metrics = append(out.Metrics, m)
		}
	}
	out.Count = int32(len(out.Metrics))
	return out, nil
}

// GetMetric implements CatalogService.
func (s *Service) GetMetric(ctx context.Context, req *agnesv1.GetMetricRequest) (*agnesv1.GetMetricResponse, error) {
	r, err := s.store.GetMetric(ctx, strings.TrimSuffix(req.GetMetricId(), ".yml"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("Metric '%s' not found", req.GetMetricId())
	}
	if err != nil {
		return nil, err
	}
	m, err := metric(*r)
	if err != nil {
		return nil, err
	}
	if !visible(auth.FromContext(ctx), m) { // as if it did not exist: its SQL names tables
		return nil, apierr.NotFound("Metric '%s' not found", req.GetMetricId())
	}
	return &agnesv1.GetMetricResponse{Metric: m}, nil
}

// visible reports whether the caller may see a metric: its definition (SQL,
// table names) describes the tables it reads, so it needs a grant on each.
func visible(p *auth.Principal, m *agnesv1.Metric) bool {
	for _, t := range append([]string{m.GetTableName()}, m.GetTables()...) {
		if t != "" && !access.Can(p.Identity, store.ResourceTable, t) {
			return false
		}
	}
	return true
}

// UpsertMetric implements CatalogService.
func (s *Service) UpsertMetric(ctx context.Context, req *agnesv1.UpsertMetricRequest) (*agnesv1.UpsertMetricResponse, error) {
	m := req.GetMetric()
	if m == nil {
		return nil, apierr.InvalidArgument("metric is required")
	}
	if err := normalize(m, "manual"); err != nil {
		return nil, err
	}
	r, err := row(m)
	if err != nil {
		return nil, err
	}
	if err := s.store.UpsertMetrics(ctx, r); err != nil {
		return nil, err
	}
	return &agnesv1.UpsertMetricResponse{Metric: m}, nil
}

// DeleteMetric implements CatalogService.
func (s *Service) DeleteMetric(ctx context.Context, req *agnesv1.DeleteMetricRequest) (*agnesv1.DeleteMetricResponse, error) {
	if err := s.store.DeleteMetric(ctx, req.GetMetricId()); errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("Metric '%s' not found", req.GetMetricId())
	} else if err != nil {
		return nil, err
	}
	return &agnesv1.DeleteMetricResponse{}, nil
}

// yamlMetric is a metric as written in YAML files (the Python system's format);
// sql_by_<dialect> keys become sql_variants.
type yamlMetric struct {
	Name        string         `yaml:"name"`
	DisplayName string         `yaml:"display_name"`
	Category    string         `yaml:"category"`
	SQL         string         `yaml:"sql"`
	Description string         `yaml:"description"`
	Type        string         `yaml:"type"`
	Unit        string         `yaml:"unit"`
	Grain       string         `yaml:"grain"`
	Table       string         `yaml:"table"`
	TableName   string         `yaml:"table_name"`
	Tables      []string       `yaml:"tables"`
	Expression  string         `yaml:"expression"`
	TimeColumn  string         `yaml:"time_column"`
	Dimensions  []string       `yaml:"dimensions"`
	Filters     []string       `yaml:"filters"`
	Synonyms    []string       `yaml:"synonyms"`
	Notes       []string       `yaml:"notes"`
	Extra       map[string]any `yaml:",inline"`
}

func (y yamlMetric) proto() (*agnesv1.Metric, error) {
	m := &agnesv1.Metric{Name: y.Name, DisplayName: y.DisplayName, Category: y.Category, Sql: y.SQL,
		Description: y.Description, Type: y.Type, Unit: y.Unit, Grain: y.Grain, TableName: y.TableName,
		Tables: y.Tables, Expression: y.Expression, TimeColumn: y.TimeColumn, Dimensions: y.Dimensions,
		Filters: y.Filters, Synonyms: y.Synonyms, Notes: y.Notes, SqlVariants: map[string]string{}}
	if m.TableName == "" {
		m.TableName = y.Table
	}
	for k, v := range y.Extra {
		dialect, ok := strings.CutPrefix(k, "sql_by_")
		s, isString := v.(string)
		if !ok || !isString {
			return nil, fmt.Errorf("unknown key %q", k)
		}
		m.SqlVariants[dialect] = s
	}
	return m, nil
}

// ImportMetrics implements CatalogService.
func (s *Service) ImportMetrics(ctx context.Context, req *agnesv1.ImportMetricsRequest) (*agnesv1.ImportMetricsResponse, error) {
	var list []yamlMetric
	if err := yaml.Unmarshal([]byte(req.GetYaml()), &list); err != nil {
		var one yamlMetric
		if err2 := yaml.Unmarshal([]byte(req.GetYaml()), &one); err2 != nil {
			return nil, apierr.InvalidArgument("invalid YAML: %v", err2)
		}
		list = []yamlMetric{one}
	}
	if len(list) == 0 || (len(list) == 1 && list[0].Name == "" && list[0].Category == "" && len(list[0].Extra) == 0) {
		return nil, apierr.InvalidArgument("the YAML holds no metric")
	}
	rows := make([]store.MetricRow, 0, len(list))
	for i, y := range list {
		m, err := y.proto()
		if err != nil {
			return nil, apierr.InvalidArgument("metric %d (%q): %v", i+1, y.Name, err)
		}
		if err := normalize(m, "yaml"); err != nil {
			return nil, err
		}
		r, err := row(m)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	if err := s.store.UpsertMetrics(ctx, rows...); err != nil {
		return nil, err
	}
	return &agnesv1.ImportMetricsResponse{Status: "imported", Count: int32(len(rows))}, nil
}
