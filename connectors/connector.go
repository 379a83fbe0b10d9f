// Package connectors defines what a data source must do for Agnes: discover the tables
// it offers and extract one table into an extract folder (Parquet plus the rows of
// extract.duckdb's _meta), following the contract in connectors/extract. Every
// connector passes the conformance suite in connectors/connectortest.
//
// Nothing here imports the orchestrator or the server: connectors write the extract
// contract, the orchestrator reads it.
package connectors

import (
	"context"
	"errors"

	"github.com/agnesdata/agnes/connectors/extract"
)

// Sync strategies a table can be registered with.
const (
	StrategyFullRefresh = "full_refresh"
	StrategyIncremental = "incremental"
	StrategyPartitioned = "partitioned"
)

// TableSpec is what a connector is asked to extract: a registry row's source
// coordinates. ID is also the name of the table in the extract and of the master
// view, so one key names the table everywhere.
type TableSpec struct {
	ID                    string
	Name                  string
	Description           string
	Bucket                string
	SourceTable           string
	SourceQuery           string
	Strategy              string
	PrimaryKey            []string
	IncrementalColumn     string
	IncrementalWindowDays int
	PartitionBy           string
	PartitionGranularity  string
	// WhereFilters restrict the rows extracted (the registry's
	// where_filters); all of them must hold.
	WhereFilters []WhereFilter
}

// WhereFilter is one row filter of a TableSpec, in the vocabulary of
// Keboola's whereFilters: Operator is eq, ne, gt, ge, lt or le; eq and ne
// with several Values mean IN and NOT IN; DataType (e.g. DOUBLE) makes the
// comparison numeric.
type WhereFilter struct {
	Column   string
	Operator string
	Values   []string
	DataType string
}

// Discovered is a table a source offers for registration.
type Discovered struct {
	ID          string // suggested registry id
	Name        string
	Bucket      string
	SourceTable string // the TableSpec.SourceTable that extracts it
	Description string
	Columns     []string
	Rows        int64
	SizeBytes   int64
	PrimaryKey  []string
}

// Connector is one kind of source.
type Connector interface {
	// Type is the registry's source_type this connector serves; it is also the name
	// of the source's extract folder ($DATA_DIR/extracts/<type>).
	Type() string
	// Discover lists the tables the source offers.
	Discover(ctx context.Context) ([]Discovered, error)
	// Extract writes spec's data through w (Parquet under data/, written to a temp
	// name and renamed) and returns the table's _meta row and view. It must not
	// call w.Update or w.Commit: the sync pipeline records every table of a run in
	// one rewrite of extract.duckdb.
	Extract(ctx context.Context, spec TableSpec, w *extract.Writer) (extract.Table, error)
}

// ErrNotFound is returned by Extract when the source has no such table.
var ErrNotFound = errors.New("table not found in source")

// InputError is a problem with what the user gave (a malformed CSV, a bad
// source_query); its message is safe to show them.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// PublicError is an error whose message is safe and useful to show the user
// who triggered the sync: what the upstream answered ("Keboola rejected the
// token for source kbc_sales", a failed export job with its exceptionId). It
// never carries a credential.
type PublicError interface {
	error
	PublicMessage() string
}

// Factory builds a source instance of one connector type from its name (the
// registry's source, also its extract folder) and its settings from the
// configuration (decoded with DecodeSettings). It checks the settings but does
// not call the upstream: the server verifies reachability separately.
type Factory func(name string, settings map[string]any) (Connector, error)
