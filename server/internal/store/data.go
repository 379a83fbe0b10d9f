package store

import (
	"context"
	"time"
)

// RegisteredTable is a table of the registry. ID is the one key for grants, sync
// state, files, the master view and the manifest.
type RegisteredTable struct {
	ID   string
	Name string
	// SourceType is the connector type ("keboola", "upload", ...).
	SourceType string
	// Source is the source instance: the name of the configured source (its
	// extract folder and _meta owner). Empty reads as SourceType, the default
	// instance of that type (registrations made before sources had names).
	Source                string
	Bucket                string
	SourceTable           string
	SourceQuery           string
	SyncStrategy          string
	QueryMode             string
	SyncSchedule          string
	PrimaryKey            []string
	Folder                string
	Description           string
	RegisteredBy          string
	RegisteredAt          time.Time
	IncrementalColumn     string
	IncrementalWindowDays int
	PartitionBy           string
	PartitionGranularity  string
	WhereFilters          []WhereFilter
}

// SourceName is the source instance the table is extracted from.
func (t *RegisteredTable) SourceName() string {
	if t.Source != "" {
		return t.Source
	}
	return t.SourceType
}

// WhereFilter is one row filter applied at the source (the Python API's where_filters).
type WhereFilter struct {
	Column   string   `json:"column"`
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
	DataType string   `json:"data_type,omitempty"`
}

// Registry is the table registry.
type Registry interface {
	// CreateTable registers a table. ErrAlreadyExists when the id or the name
	// (case-insensitively) is taken.
	CreateTable(ctx context.Context, t *RegisteredTable) error
	GetTable(ctx context.Context, id string) (*RegisteredTable, error)
	// ListTables lists the registry ordered by id.
	ListTables(ctx context.Context) ([]*RegisteredTable, error)
	// UpdateTable replaces a table's record (the id stays). ErrAlreadyExists when
	// the new name belongs to another table.
	UpdateTable(ctx context.Context, t *RegisteredTable) error
	// DeleteTable unregisters a table with its grants, sync state, profile and
	// user preferences, at once.
	DeleteTable(ctx context.Context, id string) error
}

// Part is one file of a partitioned table.
type Part struct {
	Name      string `json:"name"`
	Hash      string `json:"hash"`
	SizeBytes int64  `json:"size_bytes"`
}

// SyncState is what the server knows about a table's data: where it is, how big,
// and its content hash (computed when written, never on the request path).
type SyncState struct {
	TableID   string
	Source    string
	QueryMode string
	LastSync  *time.Time
	Rows      int64
	SizeBytes int64
	Hash      string
	Parts     []Part
	Path      string // relative to DATA_DIR
	Status    string // ok | error
	Error     string
}

// HistoryEntry is one table's outcome in a finished sync job.
type HistoryEntry struct {
	JobID     string
	TableID   string
	Started   time.Time
	Finished  time.Time
	Status    string
	Rows      int64
	SizeBytes int64
	Error     string
}

// SyncStates are the tables' data states and their sync history.
type SyncStates interface {
	// UpsertSyncStates records the tables a rebuild found, at once; unchanged
	// states cost no write.
	UpsertSyncStates(ctx context.Context, states []SyncState) error
	// MarkSyncError records a failed sync of a table, keeping its last good data.
	MarkSyncError(ctx context.Context, tableID, source, msg string) error
	DeleteSyncState(ctx context.Context, tableID string) error
	// SyncStates lists every table's sync state ordered by id.
	SyncStates(ctx context.Context) ([]*SyncState, error)
	GetSyncState(ctx context.Context, tableID string) (*SyncState, error)
	// AddHistory records finished table syncs.
	AddHistory(ctx context.Context, entries []HistoryEntry) error
}

// Profile is a stored data profile.
type Profile struct {
	JSON       []byte
	ProfiledAt time.Time
	Hash       string
}

// Profiles are the tables' data profiles.
type Profiles interface {
	SaveProfile(ctx context.Context, tableID string, profile []byte, hash string) error
	GetProfile(ctx context.Context, tableID string) (*Profile, error)
}

// MetricRow is a stored metric definition (the definition is the API message as JSON).
type MetricRow struct {
	ID, Category, Name string
	Definition         []byte
}

// Metrics are metric definitions.
type Metrics interface {
	// UpsertMetrics creates or replaces definitions at once.
	UpsertMetrics(ctx context.Context, rows ...MetricRow) error
	// ListMetrics lists definitions ordered by id, optionally of one category.
	ListMetrics(ctx context.Context, category string) ([]MetricRow, error)
	GetMetric(ctx context.Context, id string) (*MetricRow, error)
	DeleteMetric(ctx context.Context, id string) error
}

// Subscription modes: every granted table, or only the ones the user enabled.
const (
	ModeAll      = "all"
	ModeSelected = "selected"
)

// UserSetting is a user's preference for one table.
type UserSetting struct {
	TableID   string
	Enabled   bool
	UpdatedAt time.Time
}

// UserSettings is a user's sync preferences. Values are shared by caches: read
// them, never modify them.
type UserSettings struct {
	TableMode string
	Tables    []UserSetting
	enabled   map[string]bool // Tables by id
}

// NewUserSettings assembles preferences (mode "" reads as ModeAll).
func NewUserSettings(mode string, tables []UserSetting) *UserSettings {
	if mode == "" {
		mode = ModeAll
	}
	if tables == nil {
		tables = []UserSetting{}
	}
	u := &UserSettings{TableMode: mode, Tables: tables, enabled: make(map[string]bool, len(tables))}
	for _, t := range tables {
		u.enabled[t.TableID] = t.Enabled
	}
	return u
}

// Enabled says whether the preferences let a table into the user's manifest.
func (u *UserSettings) Enabled(tableID string) bool {
	if e, ok := u.enabled[tableID]; ok {
		return e
	}
	return u.TableMode != ModeSelected
}

// Settings are users' sync preferences.
type Settings interface {
	// GetUserSettings returns a user's preferences (mode "all", none set, by default).
	GetUserSettings(ctx context.Context, userID string) (*UserSettings, error)
	// SetUserSettings applies table preferences and, when mode is non-empty, the mode.
	SetUserSettings(ctx context.Context, userID, mode string, tables map[string]bool) error
}

// AuditEntry is one event of the audit log.
type AuditEntry struct {
	UserID    string
	Action    string // e.g. "login", "token.create", "user.create"
	Resource  string
	Params    map[string]any
	Result    string // "success" (default) or "error.<code>"
	ClientIP  string
	RequestID string
}

// AuditRecord is an audit entry as read back.
type AuditRecord struct {
	AuditEntry
	ID string
	TS time.Time
}

// Audit is the audit log.
type Audit interface {
	// Audit appends to the log. It never fails the caller: an implementation may
	// queue the entry (Close writes what is queued) and logs its own failures.
	Audit(ctx context.Context, e AuditEntry)
	// ListAudit returns the newest entries, optionally of one action.
	ListAudit(ctx context.Context, action string, limit int) ([]*AuditRecord, error)
}
