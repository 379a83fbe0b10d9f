package store

import (
	"context"
	"strings"
	"time"
)

// System group names. Both are seeded by every store and cannot be renamed or deleted.
const (
	GroupAdmin    = "Admin"
	GroupEveryone = "Everyone"
)

// Resource types a grant can name.
const (
	ResourceTable = "table"
)

// Membership sources: who put a user in a group.
const (
	MemberAdmin  = "admin"       // an admin, through the API
	MemberSystem = "system_seed" // Everyone, on creation
	// MemberGoogleSync: mirrored from the identity provider's groups at sign-in;
	// only these memberships are replaced by the next sign-in.
	MemberGoogleSync = "google_sync"
)

// Resource names one grantable thing.
type Resource struct{ Type, ID string }

// GroupRef names a group a user belongs to.
type GroupRef struct {
	ID       string
	Name     string
	IsSystem bool
}

// Identity is who a user is right now: what authentication and authorization need on
// every request. Values are shared by caches: read them, never modify them.
type Identity struct {
	UserID string
	Email  string
	Name   string
	Active bool
	// IsAdmin: a member of the system group Admin.
	IsAdmin bool
	Groups  []GroupRef
	// Grants are the resources granted to any of the user's groups.
	Grants map[Resource]struct{}
	// SessionsValidAfter: sessions issued before it are no longer valid (the
	// password changed or the account was deactivated since). Zero: all are.
	SessionsValidAfter time.Time
}

// GrantedIDs lists the ids of resources of one type granted to the identity's groups.
func (id *Identity) GrantedIDs(resourceType string) []string {
	var out []string
	for r := range id.Grants {
		if r.Type == resourceType {
			out = append(out, r.ID)
		}
	}
	return out
}

// Identities resolves users into identities.
type Identities interface {
	// Identity returns the current identity of a user; ErrNotFound when there is none.
	Identity(ctx context.Context, userID string) (*Identity, error)
}

// User is a user with its groups.
type User struct {
	ID            string
	Email         string
	Name          string
	HasPassword   bool
	Active        bool
	CreatedAt     time.Time
	DeactivatedAt *time.Time
	Groups        []GroupRef
	IsAdmin       bool
}

// NewUser describes a user to create.
type NewUser struct {
	Email        string
	Name         string
	PasswordHash string   // empty: no password
	Groups       []string // group names, besides Everyone
	Admin        bool     // also add to Admin
	By           string   // actor email, for memberships
}

// UserCredentials is what password sign-in needs.
type UserCredentials struct {
	ID           string
	Email        string
	Active       bool
	PasswordHash string
}

// NormalizeEmail is how emails are stored and looked up: trimmed and lower-cased,
// so Alice@Example.com and alice@example.com are one account.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// Users are the accounts.
type Users interface {
	// CreateUser adds a user to Everyone (and the named groups). ErrAlreadyExists
	// for a taken email; ErrNotFound for an unknown group name.
	CreateUser(ctx context.Context, nu NewUser) (*User, error)
	GetUser(ctx context.Context, id string) (*User, error)
	// CredentialsByEmail looks a user up for sign-in (email normalized).
	CredentialsByEmail(ctx context.Context, email string) (*UserCredentials, error)
	UserIDByEmail(ctx context.Context, email string) (string, error)
	// ListUsers lists users ordered by email.
	ListUsers(ctx context.Context, limit, offset int) ([]*User, error)
	// AnyPassword reports whether any user has a password (bootstrap is closed).
	AnyPassword(ctx context.Context) (bool, error)
	// Bootstrap creates (or promotes) the first admin, atomically refusing with a
	// RuleError once any user has a password.
	Bootstrap(ctx context.Context, email, name, passwordHash string) (*User, error)
	// UpdateUser changes the name and/or active flag (nil = unchanged). Deactivating
	// the last active admin is a RuleError; deactivating ends the user's
	// sessions and personal access tokens (reactivating revives none).
	UpdateUser(ctx context.Context, id string, name *string, active *bool) (*User, error)
	// SetPassword sets (or, with "", clears) a user's password, and ends the
	// user's sessions and personal access tokens (as deactivation does).
	SetPassword(ctx context.Context, id, hash string) error
	// DeleteUser removes a user with its memberships and tokens (RuleError for the
	// last active admin).
	DeleteUser(ctx context.Context, id string) error
}

// Group is a group with counts.
type Group struct {
	ID          string
	Name        string
	Description string
	IsSystem    bool
	CreatedAt   time.Time
	CreatedBy   string
	MemberCount int
	GrantCount  int
}

// Member is a user's membership of a group.
type Member struct {
	UserID  string
	Email   string
	Name    string
	Active  bool
	Source  string
	AddedAt time.Time
	AddedBy string
}

// Groups are the groups and their members.
type Groups interface {
	ListGroups(ctx context.Context) ([]*Group, error)
	GetGroup(ctx context.Context, id string) (*Group, error)
	GroupIDByName(ctx context.Context, name string) (string, error)
	CreateGroup(ctx context.Context, name, description, by string) (*Group, error)
	// UpdateGroup renames or re-describes (nil = unchanged); system groups cannot
	// be renamed (RuleError).
	UpdateGroup(ctx context.Context, id string, name, description *string) (*Group, error)
	// DeleteGroup removes a group with its memberships and grants (RuleError for a
	// system group).
	DeleteGroup(ctx context.Context, id string) error
	ListMembers(ctx context.Context, groupID string) ([]*Member, error)
	AddMember(ctx context.Context, groupID, userID, by string) (*Member, error)
	// RemoveMember removes a membership (RuleError for the last active admin, and
	// for Everyone).
	RemoveMember(ctx context.Context, groupID, userID string) error
	// SyncMemberships makes the user's memberships of origin source exactly the
	// named groups, in one transaction: groups that do not exist are created (not
	// system groups, created by by); memberships of that source that are not named
	// are removed, except the last active admin's; memberships the user holds from
	// another source are left as they are. ErrNotFound for an unknown user.
	SyncMemberships(ctx context.Context, userID, source string, groups []string, by string) error
}

// Grant gives a group access to one resource.
type Grant struct {
	ID           string
	GroupID      string
	GroupName    string
	ResourceType string
	ResourceID   string
	AssignedAt   time.Time
	AssignedBy   string
}

// GrantFilter narrows ListGrants; empty fields match everything.
type GrantFilter struct {
	ResourceType string
	GroupID      string
}

// EffectiveGrant is a resource a user reaches, with the groups that give it.
type EffectiveGrant struct {
	ResourceType string
	ResourceID   string
	Via          []GroupRef
}

// Grants are resource grants to groups.
type Grants interface {
	// ListGrants lists grants ordered by group name, type and id.
	ListGrants(ctx context.Context, f GrantFilter) ([]*Grant, error)
	CreateGrant(ctx context.Context, groupID, resourceType, resourceID, by string) (*Grant, error)
	DeleteGrant(ctx context.Context, id string) error
	// DeleteGrantsFor removes every grant on a resource (it was unregistered).
	DeleteGrantsFor(ctx context.Context, resourceType, resourceID string) error
	// EffectiveAccess lists a user's explicit grants (no admin short-circuit: that
	// is a rule of package access).
	EffectiveAccess(ctx context.Context, userID string) ([]*EffectiveGrant, error)
}

// Scopes of personal access tokens.
const (
	ScopeGeneral  = "general"   // everything the owner may do
	ScopeReadOnly = "read-only" // only RPCs that change no state
)

// PAT is a personal access token's record. The token itself is never stored: only
// its SHA-256, so a leak of the store yields no usable tokens.
type PAT struct {
	ID         string
	UserID     string
	UserEmail  string
	Name       string
	TokenHash  string
	Prefix     string
	Scope      string // ScopeGeneral or ScopeReadOnly
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	LastUsedIP string
	RevokedAt  *time.Time
}

// Tokens are personal access tokens and logged-out sessions.
type Tokens interface {
	CreatePAT(ctx context.Context, p *PAT) error
	GetPAT(ctx context.Context, id string) (*PAT, error)
	// ListPATs lists one user's tokens (userID non-empty) or everyone's, newest first.
	ListPATs(ctx context.Context, userID string, limit, offset int) ([]*PAT, error)
	// RevokePAT revokes a token; with ownerID set, only that user's. ErrNotFound otherwise.
	RevokePAT(ctx context.Context, id, ownerID string) error
	// TouchPAT records a token's use.
	TouchPAT(ctx context.Context, id, ip string, at time.Time) error
	// RevokeSession records a logged-out session until it would have expired.
	RevokeSession(ctx context.Context, jti, userID string, expiresAt time.Time) error
	// SessionRevoked reports whether a session was logged out.
	SessionRevoked(ctx context.Context, jti string) (bool, error)
}

// AccessRequest is a user's request for a grant.
type AccessRequest struct {
	ID             string
	UserID         string
	UserEmail      string
	ResourceType   string
	ResourceID     string
	Reason         string
	Status         string // pending | approved | denied
	CreatedAt      time.Time
	ReviewedBy     string
	ReviewedAt     *time.Time
	ReviewNote     string
	GrantedGroupID string
}

// AccessRequests are users' requests for grants.
type AccessRequests interface {
	// CreateAccessRequest files a pending request. ErrAlreadyExists when the user
	// already has a pending request for the same resource.
	CreateAccessRequest(ctx context.Context, userID, resourceType, resourceID, reason string) (*AccessRequest, error)
	GetAccessRequest(ctx context.Context, id string) (*AccessRequest, error)
	ListAccessRequests(ctx context.Context, userID, status string) ([]*AccessRequest, error)
	// ReviewAccessRequest approves (granting the resource to groupID in the same
	// transaction) or denies a pending request.
	ReviewAccessRequest(ctx context.Context, id string, approve bool, groupID, note, by string) (*AccessRequest, error)
}

// OneTimeToken is a single-use secret that stands for a sign-in step: a magic
// link, a password reset or invite link, an OIDC sign-in in progress, a CLI's
// code. Only its SHA-256 is stored.
type OneTimeToken struct {
	Hash    string
	Purpose string
	// UserID is whom the token signs in; "" when nobody yet (an OIDC state).
	UserID string
	// Data is what the redeemer gets back (an OIDC nonce and verifier, a PKCE challenge).
	Data      string
	ExpiresAt time.Time
}

// OneTimeTokens are the single-use sign-in tokens.
type OneTimeTokens interface {
	// IssueOneTimeToken stores a token. A token with a UserID replaces that user's
	// earlier tokens of the same purpose: the newest link is the one that works.
	// Expired tokens are pruned on the way.
	IssueOneTimeToken(ctx context.Context, t *OneTimeToken) error
	// ConsumeOneTimeToken uses a token up and returns it: the read and the removal
	// are one compare-and-swap, so of two concurrent redeemers exactly one gets it.
	// ErrNotFound when no unexpired token of that purpose has that hash.
	ConsumeOneTimeToken(ctx context.Context, purpose, hash string, now time.Time) (*OneTimeToken, error)
}
