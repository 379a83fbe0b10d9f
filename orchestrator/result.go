package orchestrator

import (
	"fmt"
	"time"

	"github.com/agnesdata/agnes/connectors/extract"
)

// Result describes one rebuild: the generation it produced, what went in,
// and every problem met on the way. Callers share a Result when their
// rebuilds were coalesced, so treat it as read-only.
type Result struct {
	Generation uint64
	// Master is the generation's own file (analytics/gen/<n>.duckdb), the
	// path the query engine must open.
	Master   string
	Sources  []Source
	Views    []View
	Problems []Problem
	BuiltAt  time.Time
	Took     time.Duration
}

// Source is an extract that was attached, with the remotes attached for it.
type Source struct {
	Name    string
	Path    string // absolute path of its extract.duckdb
	Remotes []extract.RemoteAttach
}

// View is a master view and the _meta row it came from: what the server
// records in sync_state (rows, size, hash = MD5, extracted_at).
type View struct {
	Source string
	extract.Meta
	// Parts are the files of a partitioned table with their hashes (the
	// extract's _parts rows, read during the rebuild), for a download
	// manifest that lets clients fetch only changed parts; nil for
	// single-file and remote tables and for extracts without _parts.
	Parts []extract.Part
	// Select is the extract view's SELECT as the generation bound it: a
	// source whose view now reads something else needs a new generation
	// (analytics.Publish compares them).
	Select string
}

// ProblemKind classifies a Problem.
type ProblemKind string

// Kinds of problems.
const (
	// ProblemSkipped: a directory under extracts/ that is not a usable
	// source (invalid name, no extract.duckdb).
	ProblemSkipped ProblemKind = "skipped"
	// ProblemBroken: the extract could not be attached or read (corrupt,
	// locked by another process, no _meta). The source has no views.
	ProblemBroken ProblemKind = "broken"
	// ProblemRemote: a remote source could not be attached; the source's
	// remote views are skipped, its local ones still work.
	ProblemRemote ProblemKind = "remote"
	// ProblemTable: a _meta row that yields no view (invalid or reserved
	// name, no such object, the view does not bind).
	ProblemTable ProblemKind = "table"
	// ProblemConflict: a view name already claimed by an earlier source (in
	// sorted order); the earlier source keeps it.
	ProblemConflict ProblemKind = "conflict"
)

// Problem is one thing a rebuild could not do. Table is empty for problems
// of a whole source.
type Problem struct {
	Kind    ProblemKind
	Source  string
	Table   string
	Message string
}

func (p Problem) String() string {
	where := p.Source
	if p.Table != "" {
		where += "." + p.Table
	}
	return fmt.Sprintf("%s %s: %s", p.Kind, where, p.Message)
}
