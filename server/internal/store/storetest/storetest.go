// Package storetest is the conformance suite every store.Store implementation
// passes, run from the implementation's own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Backend{Open: ..., Reopen: ...})
//	}
//
// It checks the behaviour the server relies on, through the store.Store
// interface only: rules of the data model (the last admin, system groups,
// bootstrap), normalization and uniqueness, sentinel errors reachable with
// errors.Is, that the versions move after writes, durability across a restart,
// and the job queue's atomic keys and leases.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/server/internal/store"
)

// Backend opens the stores the suite runs against.
type Backend struct {
	// Open returns a fresh, empty store; the suite closes it.
	Open func(t *testing.T) store.Store
	// Reopen closes s and opens the same state again, as a restart would.
	Reopen func(t *testing.T, s store.Store) store.Store
}

// Run runs every conformance test.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"SystemGroupsSeeded", testSystemGroupsSeeded},
		{"UsersNormalizedAndUnique", testUsersNormalizedAndUnique},
		{"LastActiveAdminIsKept", testLastActiveAdminIsKept},
		{"BootstrapClosesOnceAPasswordExists", testBootstrapCloses},
		{"SystemGroupsCannotBeRenamedOrDeleted", testSystemGroupRules},
		{"DuplicatesAreAlreadyExists", testDuplicates},
		{"IdentityFollowsWrites", testIdentityFollowsWrites},
		{"DeleteUserRemovesMembershipsAndTokens", testDeleteUser},
		{"Tokens", testTokens},
		{"TokenScopes", testTokenScopes},
		{"OneTimeTokensAreSingleUse", testOneTimeTokens},
		{"OneTimeTokensHaveOneWinner", testOneTimeTokenRace},
		{"SyncMemberships", testSyncMemberships},
		{"CredentialsEndWithThePassword", testCredentialsEndWithThePassword},
		{"SessionRevocationSurvivesRestart", testSessionRevocationSurvivesRestart},
		{"AccessRequestApprovalGrants", testAccessRequests},
		{"Registry", testRegistry},
		{"DeleteTableCascades", testDeleteTableCascades},
		{"UpsertSyncStatesWritesOnlyChanges", testUpsertSyncStates},
		{"SyncErrorsKeepLastGoodData", testMarkSyncError},
		{"ProfilesAndMetrics", testProfilesAndMetrics},
		{"UserSettings", testUserSettings},
		{"AuditIsDurable", testAudit},
		{"JobKeysAreExclusive", testJobKeys},
		{"JobLeases", testJobLeases},
		{"JobRetryAndCancel", testJobRetryAndCancel},
		{"ListJobs", testListJobs},
		{"PruneJobs", testPruneJobs},
		{"CancelledWritesLeaveTheStoreUsable", testCancelledWrites},
		{"WebhookEvents", testWebhookEvents},
		{"ConcurrentWebhookEvents", testConcurrentWebhookEvents},
		{"RemoteQuotas", testRemoteQuotas},
		{"NotFoundEverywhere", testNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

func open(t *testing.T, b Backend) store.Store {
	t.Helper()
	s := b.Open(t)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func reopen(t *testing.T, b Backend, s store.Store) store.Store {
	t.Helper()
	s = b.Reopen(t, s)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ruleError(t *testing.T, err error) {
	t.Helper()
	var rule *store.RuleError
	require.ErrorAs(t, err, &rule)
	require.NotEmpty(t, rule.Msg)
}

func newUser(t *testing.T, s store.Store, email string, admin bool) *store.User {
	t.Helper()
	u, err := s.CreateUser(t.Context(), store.NewUser{Email: email, Name: email, Admin: admin, By: "test"})
	require.NoError(t, err)
	return u
}

func testSystemGroupsSeeded(t *testing.T, b Backend) {
	s := open(t, b)
	groups, err := s.ListGroups(t.Context())
	require.NoError(t, err)
	var names []string
	for _, g := range groups {
		require.True(t, g.IsSystem)
		names = append(names, g.Name)
	}
	sort.Strings(names)
	require.Equal(t, []string{store.GroupAdmin, store.GroupEveryone}, names)
	s = reopen(t, b, s)
	groups, err = s.ListGroups(t.Context())
	require.NoError(t, err)
	require.Len(t, groups, 2, "seeded once, not on every open")
}

func testUsersNormalizedAndUnique(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.NewUser{Email: "  Ana@Example.COM ", Name: "Ana", PasswordHash: "h"})
	require.NoError(t, err)
	require.Equal(t, "ana@example.com", u.Email)
	require.True(t, u.HasPassword)
	require.True(t, u.Active)
	require.False(t, u.IsAdmin)
	require.Equal(t, []string{store.GroupEveryone}, groupNames(u.Groups))
	_, err = s.CreateUser(ctx, store.NewUser{Email: "ana@example.com"})
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	_, err = s.CreateUser(ctx, store.NewUser{Email: "bo@example.com", Groups: []string{"no-such-group"}})
	require.ErrorIs(t, err, store.ErrNotFound)

	c, err := s.CredentialsByEmail(ctx, "ANA@example.com")
	require.NoError(t, err)
	require.Equal(t, u.ID, c.ID)
	require.Equal(t, "h", c.PasswordHash)
	id, err := s.UserIDByEmail(ctx, " ana@EXAMPLE.com")
	require.NoError(t, err)
	require.Equal(t, u.ID, id)

	name := "Ana B."
	u2, err := s.UpdateUser(ctx, u.ID, &name, nil)
	require.NoError(t, err)
	require.Equal(t, name, u2.Name)
	require.NoError(t, s.SetPassword(ctx, u.ID, "h2"))
	c, err = s.CredentialsByEmail(ctx, u.Email)
	require.NoError(t, err)
	require.Equal(t, "h2", c.PasswordHash)

	newUser(t, s, "zed@example.com", false)
	all, err := s.ListUsers(ctx, 10, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"ana@example.com", "zed@example.com"}, []string{all[0].Email, all[1].Email})
	page, err := s.ListUsers(ctx, 1, 1)
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.Equal(t, "zed@example.com", page[0].Email)
}

func groupNames(gs []store.GroupRef) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		out = append(out, g.Name)
	}
	sort.Strings(out)
	return out
}

func testLastActiveAdminIsKept(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	admin, err := s.Bootstrap(ctx, "Boss@Example.com", "Boss", "hash")
	require.NoError(t, err)
	require.True(t, admin.IsAdmin)
	require.Equal(t, "boss@example.com", admin.Email)

	f := false
	_, err = s.UpdateUser(ctx, admin.ID, nil, &f)
	ruleError(t, err)
	ruleError(t, s.DeleteUser(ctx, admin.ID))
	adminGroup, err := s.GroupIDByName(ctx, store.GroupAdmin)
	require.NoError(t, err)
	ruleError(t, s.RemoveMember(ctx, adminGroup, admin.ID))

	second := newUser(t, s, "two@example.com", true)
	_, err = s.UpdateUser(ctx, admin.ID, nil, &f)
	require.NoError(t, err, "another active admin exists")
	_, err = s.UpdateUser(ctx, second.ID, nil, &f)
	ruleError(t, err)
	tr := true
	u, err := s.UpdateUser(ctx, admin.ID, nil, &tr)
	require.NoError(t, err)
	require.True(t, u.Active)
	require.Nil(t, u.DeactivatedAt)
}

func testBootstrapCloses(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	any, err := s.AnyPassword(ctx)
	require.NoError(t, err)
	require.False(t, any)
	_, err = s.Bootstrap(ctx, "a@example.com", "A", "h")
	require.NoError(t, err)
	any, err = s.AnyPassword(ctx)
	require.NoError(t, err)
	require.True(t, any)
	_, err = s.Bootstrap(ctx, "b@example.com", "B", "h")
	ruleError(t, err)
}

func testSystemGroupRules(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	for _, name := range []string{store.GroupAdmin, store.GroupEveryone} {
		id, err := s.GroupIDByName(ctx, name)
		require.NoError(t, err)
		other := "renamed"
		_, err = s.UpdateGroup(ctx, id, &other, nil)
		ruleError(t, err)
		ruleError(t, s.DeleteGroup(ctx, id))
	}
	g, err := s.CreateGroup(ctx, "sales", "Sales team", "t")
	require.NoError(t, err)
	require.False(t, g.IsSystem)
	name, desc := "sales-eu", "EU"
	g, err = s.UpdateGroup(ctx, g.ID, &name, &desc)
	require.NoError(t, err)
	require.Equal(t, "sales-eu", g.Name)
	require.Equal(t, "EU", g.Description)
	got, err := s.GetGroup(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g.Name, got.Name)
}

func testDuplicates(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	newUser(t, s, "x@example.com", false)
	_, err := s.CreateUser(ctx, store.NewUser{Email: " X@example.com "})
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	g, err := s.CreateGroup(ctx, "analysts", "", "t")
	require.NoError(t, err)
	_, err = s.CreateGroup(ctx, "analysts", "", "t")
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	_, err = s.CreateGrant(ctx, g.ID, store.ResourceTable, "orders", "t")
	require.NoError(t, err)
	_, err = s.CreateGrant(ctx, g.ID, store.ResourceTable, "orders", "t")
	require.ErrorIs(t, err, store.ErrAlreadyExists)
}

func testIdentityFollowsWrites(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u := newUser(t, s, "u@example.com", false)
	id, err := s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.Empty(t, id.Grants)
	require.False(t, id.IsAdmin)
	require.Equal(t, []string{store.GroupEveryone}, groupNames(id.Groups))

	v := s.IdentityVersion()
	g, err := s.CreateGroup(ctx, "sales", "", "t")
	require.NoError(t, err)
	_, err = s.AddMember(ctx, g.ID, u.ID, "t")
	require.NoError(t, err)
	grant, err := s.CreateGrant(ctx, g.ID, store.ResourceTable, "orders", "t")
	require.NoError(t, err)
	require.NotEqual(t, v, s.IdentityVersion(), "identity writes move the version")
	id, err = s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.Contains(t, id.Grants, store.Resource{Type: store.ResourceTable, ID: "orders"})
	require.Equal(t, []string{"orders"}, id.GrantedIDs(store.ResourceTable))
	eff, err := s.EffectiveAccess(ctx, u.ID)
	require.NoError(t, err)
	require.Len(t, eff, 1)
	require.Equal(t, "sales", eff[0].Via[0].Name)
	grants, err := s.ListGrants(ctx, store.GrantFilter{GroupID: g.ID})
	require.NoError(t, err)
	require.Len(t, grants, 1)
	require.Equal(t, "sales", grants[0].GroupName)

	require.NoError(t, s.DeleteGrant(ctx, grant.ID))
	id, err = s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.Empty(t, id.Grants)

	_, err = s.CreateGrant(ctx, g.ID, store.ResourceTable, "orders", "t")
	require.NoError(t, err)
	require.NoError(t, s.RemoveMember(ctx, g.ID, u.ID))
	id, err = s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.Empty(t, id.Grants, "leaving the group loses its grants at once")

	_, err = s.AddMember(ctx, g.ID, u.ID, "t")
	require.NoError(t, err)
	members, err := s.ListMembers(ctx, g.ID)
	require.NoError(t, err)
	require.Len(t, members, 1)
	require.Equal(t, u.Email, members[0].Email)
	require.NoError(t, s.DeleteGroup(ctx, g.ID))
	id, err = s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.Empty(t, id.Grants, "deleting the group deletes its grants")
	grants, err = s.ListGrants(ctx, store.GrantFilter{})
	require.NoError(t, err)
	require.Empty(t, grants)

	f := false
	admin := newUser(t, s, "admin@example.com", true)
	_, err = s.UpdateUser(ctx, u.ID, nil, &f)
	require.NoError(t, err)
	id, err = s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.False(t, id.Active)
	aid, err := s.Identity(ctx, admin.ID)
	require.NoError(t, err)
	require.True(t, aid.IsAdmin)
}

func testDeleteUser(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u := newUser(t, s, "gone@example.com", false)
	require.NoError(t, s.CreatePAT(ctx, &store.PAT{ID: "pat-1", UserID: u.ID, Name: "cli", TokenHash: "h", Prefix: "p",
		CreatedAt: time.Now().UTC()}))
	require.NoError(t, s.DeleteUser(ctx, u.ID))
	_, err := s.GetUser(ctx, u.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.Identity(ctx, u.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	everyone, err := s.GroupIDByName(ctx, store.GroupEveryone)
	require.NoError(t, err)
	members, err := s.ListMembers(ctx, everyone)
	require.NoError(t, err)
	require.Empty(t, members)
	_, err = s.GetPAT(ctx, "pat-1")
	require.ErrorIs(t, err, store.ErrNotFound, "a deleted user's tokens go with them")
}

func testTokens(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u := newUser(t, s, "t@example.com", false)
	other := newUser(t, s, "o@example.com", false)
	now := time.Now().UTC().Truncate(time.Second)
	exp := now.Add(24 * time.Hour)
	require.NoError(t, s.CreatePAT(ctx, &store.PAT{ID: "a", UserID: u.ID, Name: "laptop", TokenHash: "ha", Prefix: "agn_a",
		CreatedAt: now, ExpiresAt: &exp}))
	require.NoError(t, s.CreatePAT(ctx, &store.PAT{ID: "b", UserID: u.ID, Name: "ci", TokenHash: "hb", Prefix: "agn_b",
		CreatedAt: now.Add(time.Second)}))
	require.NoError(t, s.CreatePAT(ctx, &store.PAT{ID: "c", UserID: other.ID, Name: "x", TokenHash: "hc", Prefix: "agn_c",
		CreatedAt: now.Add(2 * time.Second)}))

	p, err := s.GetPAT(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, u.Email, p.UserEmail)
	require.Equal(t, "ha", p.TokenHash)
	require.True(t, exp.Equal(*p.ExpiresAt))
	require.Nil(t, p.RevokedAt)

	mine, err := s.ListPATs(ctx, u.ID, 10, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"b", "a"}, []string{mine[0].ID, mine[1].ID}, "newest first")
	all, err := s.ListPATs(ctx, "", 10, 0)
	require.NoError(t, err)
	require.Len(t, all, 3)

	require.ErrorIs(t, s.RevokePAT(ctx, "c", u.ID), store.ErrNotFound, "only the owner's tokens")
	v := s.IdentityVersion()
	require.NoError(t, s.RevokePAT(ctx, "a", u.ID))
	require.NotEqual(t, v, s.IdentityVersion())
	p, err = s.GetPAT(ctx, "a")
	require.NoError(t, err)
	require.NotNil(t, p.RevokedAt)
	require.ErrorIs(t, s.RevokePAT(ctx, "missing", ""), store.ErrNotFound)

	used := now.Add(time.Minute)
	require.NoError(t, s.TouchPAT(ctx, "b", "10.0.0.7", used))
	p, err = s.GetPAT(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, "10.0.0.7", p.LastUsedIP)
	require.True(t, used.Equal(*p.LastUsedAt))
}

func testSessionRevocationSurvivesRestart(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	revoked, err := s.SessionRevoked(ctx, "jti-1")
	require.NoError(t, err)
	require.False(t, revoked)
	require.NoError(t, s.RevokeSession(ctx, "jti-1", "u", time.Now().Add(time.Hour)))
	require.NoError(t, s.RevokeSession(ctx, "jti-1", "u", time.Now().Add(time.Hour)), "idempotent")
	revoked, err = s.SessionRevoked(ctx, "jti-1")
	require.NoError(t, err)
	require.True(t, revoked)
	s = reopen(t, b, s)
	revoked, err = s.SessionRevoked(ctx, "jti-1")
	require.NoError(t, err)
	require.True(t, revoked)
	revoked, err = s.SessionRevoked(ctx, "jti-2")
	require.NoError(t, err)
	require.False(t, revoked)
}

func testAccessRequests(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u := newUser(t, s, "u@example.com", false)
	g, err := s.CreateGroup(ctx, "sales", "", "t")
	require.NoError(t, err)
	_, err = s.AddMember(ctx, g.ID, u.ID, "t")
	require.NoError(t, err)
	r, err := s.CreateAccessRequest(ctx, u.ID, store.ResourceTable, "orders", "need it")
	require.NoError(t, err)
	require.Equal(t, "pending", r.Status)
	_, err = s.CreateAccessRequest(ctx, u.ID, store.ResourceTable, "orders", "again")
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	pending, err := s.ListAccessRequests(ctx, u.ID, "pending")
	require.NoError(t, err)
	require.Len(t, pending, 1)
	r, err = s.ReviewAccessRequest(ctx, r.ID, true, g.ID, "ok", "admin@example.com")
	require.NoError(t, err)
	require.Equal(t, "approved", r.Status)
	require.Equal(t, g.ID, r.GrantedGroupID)
	id, err := s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.Contains(t, id.Grants, store.Resource{Type: store.ResourceTable, ID: "orders"}, "approval grants in the same write")
	_, err = s.ReviewAccessRequest(ctx, r.ID, false, "", "", "admin@example.com")
	ruleError(t, err)
	got, err := s.GetAccessRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, "approved", got.Status)
}

func table(id, name string) *store.RegisteredTable {
	return &store.RegisteredTable{ID: id, Name: name, SourceType: "upload", SyncStrategy: "full_refresh",
		QueryMode: "local", RegisteredBy: "admin@example.com", RegisteredAt: time.Now().UTC().Truncate(time.Second)}
}

func testRegistry(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	v := s.DataVersion()
	tb := table("orders", "Orders")
	tb.Source, tb.Bucket, tb.SourceTable = "kbc_sales", "in.c-crm", "orders"
	tb.PrimaryKey = []string{"id"}
	tb.WhereFilters = []store.WhereFilter{{Column: "country", Operator: "eq", Values: []string{"CZ", "SK"}, DataType: "STRING"}}
	require.NoError(t, s.CreateTable(ctx, tb))
	require.NotEqual(t, v, s.DataVersion(), "registry writes move the data version")
	got, err := s.GetTable(ctx, "orders")
	require.NoError(t, err)
	require.Equal(t, tb, got)
	require.Equal(t, "kbc_sales", got.SourceName())

	legacy := table("customers", "Customers")
	require.NoError(t, s.CreateTable(ctx, legacy))
	got, err = s.GetTable(ctx, "customers")
	require.NoError(t, err)
	require.Equal(t, "upload", got.SourceName(), "no source name: the type's default instance")
	require.Equal(t, []string{}, got.PrimaryKey)
	require.Equal(t, []store.WhereFilter{}, got.WhereFilters)

	require.ErrorIs(t, s.CreateTable(ctx, table("orders", "Other")), store.ErrAlreadyExists)
	require.ErrorIs(t, s.CreateTable(ctx, table("orders2", "ORDERS")), store.ErrAlreadyExists, "names are unique case-insensitively")

	tb.Description, tb.SyncSchedule = "All orders", "every 15m"
	require.NoError(t, s.UpdateTable(ctx, tb))
	got, err = s.GetTable(ctx, "orders")
	require.NoError(t, err)
	require.Equal(t, "All orders", got.Description)
	clash := *tb
	clash.Name = "customers"
	require.ErrorIs(t, s.UpdateTable(ctx, &clash), store.ErrAlreadyExists)
	require.ErrorIs(t, s.UpdateTable(ctx, table("missing", "Missing")), store.ErrNotFound)

	all, err := s.ListTables(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"customers", "orders"}, []string{all[0].ID, all[1].ID})
}

func testDeleteTableCascades(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u := newUser(t, s, "u@example.com", false)
	require.NoError(t, s.CreateTable(ctx, table("orders", "Orders")))
	g, err := s.CreateGroup(ctx, "sales", "", "t")
	require.NoError(t, err)
	_, err = s.AddMember(ctx, g.ID, u.ID, "t")
	require.NoError(t, err)
	_, err = s.CreateGrant(ctx, g.ID, store.ResourceTable, "orders", "t")
	require.NoError(t, err)
	require.NoError(t, s.UpsertSyncStates(ctx, []store.SyncState{{TableID: "orders", Source: "upload", QueryMode: "local", Hash: "h"}}))
	require.NoError(t, s.SaveProfile(ctx, "orders", []byte(`{}`), "h"))
	require.NoError(t, s.SetUserSettings(ctx, u.ID, "", map[string]bool{"orders": false}))

	require.NoError(t, s.DeleteTable(ctx, "orders"))
	_, err = s.GetTable(ctx, "orders")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetSyncState(ctx, "orders")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetProfile(ctx, "orders")
	require.ErrorIs(t, err, store.ErrNotFound)
	id, err := s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.Empty(t, id.Grants)
	settings, err := s.GetUserSettings(ctx, u.ID)
	require.NoError(t, err)
	require.Empty(t, settings.Tables)
	require.ErrorIs(t, s.DeleteTable(ctx, "orders"), store.ErrNotFound)
}

func testUpsertSyncStates(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	var states []store.SyncState
	for i := range 1200 {
		states = append(states, store.SyncState{TableID: fmt.Sprintf("t%04d", i), Source: "src", QueryMode: "local",
			LastSync: &now, Rows: int64(i), Hash: fmt.Sprintf("%032d", i), Path: "extracts/src/data/x.parquet",
			Parts: []store.Part{{Name: "p", Hash: "h", SizeBytes: 1}}})
	}
	require.NoError(t, s.UpsertSyncStates(ctx, states))
	v := s.DataVersion()
	require.NoError(t, s.UpsertSyncStates(ctx, states))
	require.Equal(t, v, s.DataVersion(), "nothing changed: nothing written")
	states[7].Hash = "changed"
	require.NoError(t, s.UpsertSyncStates(ctx, states))
	require.NotEqual(t, v, s.DataVersion())
	got, err := s.GetSyncState(ctx, "t0007")
	require.NoError(t, err)
	require.Equal(t, "changed", got.Hash)
	require.Equal(t, "ok", got.Status)
	require.Equal(t, []store.Part{{Name: "p", Hash: "h", SizeBytes: 1}}, got.Parts)
	require.True(t, now.Equal(*got.LastSync))
	all, err := s.SyncStates(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1200)
	require.True(t, sort.SliceIsSorted(all, func(i, j int) bool { return all[i].TableID < all[j].TableID }))
	require.NoError(t, s.DeleteSyncState(ctx, "t0007"))
	_, err = s.GetSyncState(ctx, "t0007")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testMarkSyncError(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	require.NoError(t, s.UpsertSyncStates(ctx, []store.SyncState{{TableID: "orders", Source: "kbc", QueryMode: "local",
		Rows: 10, Hash: "good", Path: "extracts/kbc/data/orders.parquet"}}))
	require.NoError(t, s.MarkSyncError(ctx, "orders", "kbc", "Keboola rejected the token"))
	got, err := s.GetSyncState(ctx, "orders")
	require.NoError(t, err)
	require.Equal(t, "error", got.Status)
	require.Equal(t, "Keboola rejected the token", got.Error)
	require.Equal(t, "good", got.Hash, "the last good data stays served")
	require.Equal(t, int64(10), got.Rows)
	require.NoError(t, s.MarkSyncError(ctx, "never", "kbc", "boom"))
	got, err = s.GetSyncState(ctx, "never")
	require.NoError(t, err)
	require.Equal(t, "error", got.Status)
	require.Empty(t, got.Path)

	now := time.Now().UTC()
	require.NoError(t, s.AddHistory(ctx, []store.HistoryEntry{{JobID: "j", TableID: "orders", Started: now, Finished: now,
		Status: store.JobFailed, Error: "boom"}}))
}

func testProfilesAndMetrics(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	require.NoError(t, s.SaveProfile(ctx, "orders", []byte(`{"row_count":3}`), "h1"))
	require.NoError(t, s.SaveProfile(ctx, "orders", []byte(`{"row_count":4}`), "h2"))
	p, err := s.GetProfile(ctx, "orders")
	require.NoError(t, err)
	require.JSONEq(t, `{"row_count":4}`, string(p.JSON))
	require.Equal(t, "h2", p.Hash)
	require.False(t, p.ProfiledAt.IsZero())

	require.NoError(t, s.UpsertMetrics(ctx,
		store.MetricRow{ID: "sales/revenue", Category: "sales", Name: "revenue", Definition: []byte(`{"a":1}`)},
		store.MetricRow{ID: "ops/latency", Category: "ops", Name: "latency", Definition: []byte(`{"b":2}`)}))
	all, err := s.ListMetrics(ctx, "")
	require.NoError(t, err)
	require.Equal(t, []string{"ops/latency", "sales/revenue"}, []string{all[0].ID, all[1].ID})
	sales, err := s.ListMetrics(ctx, "sales")
	require.NoError(t, err)
	require.Len(t, sales, 1)
	require.NoError(t, s.UpsertMetrics(ctx, store.MetricRow{ID: "sales/revenue", Category: "sales", Name: "revenue", Definition: []byte(`{"a":2}`)}))
	m, err := s.GetMetric(ctx, "sales/revenue")
	require.NoError(t, err)
	require.JSONEq(t, `{"a":2}`, string(m.Definition))
	require.NoError(t, s.DeleteMetric(ctx, "sales/revenue"))
	_, err = s.GetMetric(ctx, "sales/revenue")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testUserSettings(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u := newUser(t, s, "u@example.com", false)
	st, err := s.GetUserSettings(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, store.ModeAll, st.TableMode)
	require.True(t, st.Enabled("anything"))
	require.NoError(t, s.SetUserSettings(ctx, u.ID, store.ModeSelected, map[string]bool{"orders": true, "customers": false}))
	st, err = s.GetUserSettings(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, store.ModeSelected, st.TableMode)
	require.True(t, st.Enabled("orders"))
	require.False(t, st.Enabled("customers"))
	require.False(t, st.Enabled("anything"), "selected mode: only what was enabled")
	require.Equal(t, []string{"customers", "orders"}, []string{st.Tables[0].TableID, st.Tables[1].TableID})
	require.NoError(t, s.SetUserSettings(ctx, u.ID, "", map[string]bool{"customers": true}))
	st, err = s.GetUserSettings(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, store.ModeSelected, st.TableMode, "an empty mode keeps the mode")
	require.True(t, st.Enabled("customers"))
}

func testAudit(t *testing.T, b Backend) {
	s := open(t, b)
	for i := range 500 {
		s.Audit(t.Context(), store.AuditEntry{Action: "test.event", UserID: "u", Params: map[string]any{"i": float64(i)},
			ClientIP: "10.0.0.1", RequestID: "r"})
	}
	s.Audit(t.Context(), store.AuditEntry{Action: "other", Result: "error.permission_denied"})
	s = reopen(t, b, s)
	rows, err := s.ListAudit(t.Context(), "test.event", 1000)
	require.NoError(t, err)
	require.Len(t, rows, 500, "every entry was written by the time the store closed")
	require.Equal(t, "success", rows[0].Result)
	require.Equal(t, "10.0.0.1", rows[0].ClientIP)
	other, err := s.ListAudit(t.Context(), "other", 10)
	require.NoError(t, err)
	require.Equal(t, "error.permission_denied", other[0].Result)
	limited, err := s.ListAudit(t.Context(), "", 3)
	require.NoError(t, err)
	require.Len(t, limited, 3)
}

var jobSeq int

func job(kind string, keys ...string) *store.Job {
	jobSeq++
	return &store.Job{ID: fmt.Sprintf("job-%04d", jobSeq), Kind: kind, Keys: keys, CreatedBy: "t",
		CreatedAt: time.Now().UTC().Add(-time.Hour + time.Duration(jobSeq)*time.Millisecond), Params: []byte(`{"n":1}`)}
}

func claim(t *testing.T, s store.Store, owner string, kinds ...string) *store.Job {
	t.Helper()
	j, err := s.ClaimJob(t.Context(), store.Claim{Owner: owner, Lease: time.Minute, Kinds: kinds})
	require.NoError(t, err)
	return j
}

func testJobKeys(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	a := job("sync", "sync:kbc_sales", "sync:upload")
	require.NoError(t, s.CreateJob(ctx, a))
	other := job("sync", "sync:kbc_finance", "sync:upload")
	err := s.CreateJob(ctx, other)
	require.ErrorIs(t, err, store.ErrBusy)
	var busy *store.BusyError
	require.ErrorAs(t, err, &busy)
	require.Equal(t, a.ID, busy.JobID)
	require.Equal(t, "sync:upload", busy.Key)
	_, err = s.GetJob(ctx, other.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "a refused job leaves nothing behind")
	require.NoError(t, s.CreateJob(ctx, job("sync", "sync:kbc_finance")), "the refused job's other key stayed free")
	require.NoError(t, s.CreateJob(ctx, job("rebuild")), "no keys: never busy")
	require.NoError(t, s.CreateJob(ctx, job("rebuild")))

	j := claim(t, s, "w1", "sync")
	require.Equal(t, a.ID, j.ID, "oldest first")
	require.NoError(t, s.FinishJob(ctx, j.ID, "w1", store.JobSucceeded, "", []byte(`{"done":true}`)))
	require.NoError(t, s.CreateJob(ctx, job("sync", "sync:upload")), "a finished job frees its keys")
}

func testJobLeases(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	_, err := s.ClaimJob(ctx, store.Claim{Owner: "w1", Lease: time.Minute, Kinds: []string{"sync"}})
	require.ErrorIs(t, err, store.ErrNotFound, "nothing due")
	a := job("sync")
	require.NoError(t, s.CreateJob(ctx, a))
	_, err = s.ClaimJob(ctx, store.Claim{Owner: "w1", Lease: time.Minute, Kinds: []string{"rebuild"}})
	require.ErrorIs(t, err, store.ErrNotFound, "only the claimed kinds")

	j := claim(t, s, "w1", "sync", "rebuild")
	require.Equal(t, store.JobRunning, j.State)
	require.Equal(t, "w1", j.Owner)
	require.Equal(t, 1, j.Attempts)
	require.NotNil(t, j.StartedAt)
	require.JSONEq(t, `{"n":1}`, string(j.Params))
	_, err = s.ClaimJob(ctx, store.Claim{Owner: "w2", Lease: time.Minute, Kinds: []string{"sync"}})
	require.ErrorIs(t, err, store.ErrNotFound, "a leased job is nobody else's")

	cancel, err := s.RenewLease(ctx, j.ID, "w1", time.Minute)
	require.NoError(t, err)
	require.False(t, cancel)
	_, err = s.RenewLease(ctx, j.ID, "w2", time.Minute)
	require.ErrorIs(t, err, store.ErrLeaseLost)
	require.NoError(t, s.SaveProgress(ctx, j.ID, "w1", []byte(`{"step":"extract"}`)))
	require.ErrorIs(t, s.SaveProgress(ctx, j.ID, "w2", []byte(`{}`)), store.ErrLeaseLost)
	got, err := s.GetJob(ctx, j.ID)
	require.NoError(t, err)
	require.JSONEq(t, `{"step":"extract"}`, string(got.Progress))

	// A runner that stops renewing loses the job to the next claimer.
	_, err = s.RenewLease(ctx, j.ID, "w1", -time.Second)
	require.NoError(t, err)
	stolen := claim(t, s, "w2", "sync")
	require.Equal(t, j.ID, stolen.ID)
	require.Equal(t, 2, stolen.Attempts)
	require.Equal(t, "w2", stolen.Owner)
	require.ErrorIs(t, s.FinishJob(ctx, j.ID, "w1", store.JobSucceeded, "", nil), store.ErrLeaseLost,
		"the old owner can no longer finish it")
	require.NoError(t, s.FinishJob(ctx, j.ID, "w2", store.JobFailed, "boom", nil))
	got, err = s.GetJob(ctx, j.ID)
	require.NoError(t, err)
	require.Equal(t, store.JobFailed, got.State)
	require.Equal(t, "boom", got.Error)
	require.NotNil(t, got.FinishedAt)
	require.True(t, got.Finished())
	require.JSONEq(t, `{"step":"extract"}`, string(got.Progress), "nil progress keeps the last saved")
	require.Error(t, s.FinishJob(ctx, j.ID, "w2", store.JobSucceeded, "", nil), "finished once")

	// A restarted process reclaims what its previous life held at once.
	c := job("sync")
	require.NoError(t, s.CreateJob(ctx, c))
	held := claim(t, s, "node-a/old", "sync")
	n, err := s.ExpireLeases(ctx, "node-b/")
	require.NoError(t, err)
	require.Zero(t, n, "other nodes' leases are theirs")
	n, err = s.ExpireLeases(ctx, "node-a/")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	again := claim(t, s, "node-a/new", "sync")
	require.Equal(t, held.ID, again.ID)
	require.Equal(t, 2, again.Attempts)

	by := job("rebuild")
	require.NoError(t, s.CreateJob(ctx, by))
	require.NoError(t, s.CreateJob(ctx, job("rebuild")))
	picked, err := s.ClaimJob(ctx, store.Claim{Owner: "w1", Lease: time.Minute, Kinds: []string{"rebuild"}, ID: by.ID})
	require.NoError(t, err)
	require.Equal(t, by.ID, picked.ID, "a claim by id takes that job")
}

func testJobRetryAndCancel(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	a := job("jira.event", "jira:SUP-1")
	require.NoError(t, s.CreateJob(ctx, a))
	j := claim(t, s, "w1", "jira.event")
	later := time.Now().UTC().Add(time.Hour)
	require.NoError(t, s.RetryJob(ctx, j.ID, "w1", later, "Jira answered 503"))
	got, err := s.GetJob(ctx, j.ID)
	require.NoError(t, err)
	require.Equal(t, store.JobPending, got.State)
	require.Equal(t, "Jira answered 503", got.Error)
	_, err = s.ClaimJob(ctx, store.Claim{Owner: "w1", Lease: time.Minute, Kinds: []string{"jira.event"}})
	require.ErrorIs(t, err, store.ErrNotFound, "not before run_after")
	require.ErrorIs(t, s.CreateJob(ctx, job("jira.event", "jira:SUP-1")), store.ErrBusy, "a retried job keeps its keys")

	c, err := s.CancelJob(ctx, j.ID, "cancelled by admin")
	require.NoError(t, err)
	require.Equal(t, store.JobCancelled, c.State, "a pending job ends at once")
	require.NoError(t, s.CreateJob(ctx, job("jira.event", "jira:SUP-1")), "and frees its keys")

	r := job("sync", "sync:x")
	require.NoError(t, s.CreateJob(ctx, r))
	j = claim(t, s, "w1", "sync")
	c, err = s.CancelJob(ctx, j.ID, "")
	require.NoError(t, err)
	require.Equal(t, store.JobRunning, c.State, "a running job is asked to stop")
	require.True(t, c.CancelRequested)
	cancel, err := s.RenewLease(ctx, j.ID, "w1", time.Minute)
	require.NoError(t, err)
	require.True(t, cancel, "its runner learns it at the next renewal")
	require.NoError(t, s.FinishJob(ctx, j.ID, "w1", store.JobCancelled, "cancelled", nil))
	_, err = s.CancelJob(ctx, "missing", "")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testListJobs(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	var ids []string
	for i := range 5 {
		kind := "sync"
		if i%2 == 1 {
			kind = "rebuild"
		}
		j := job(kind)
		require.NoError(t, s.CreateJob(ctx, j))
		ids = append(ids, j.ID)
	}
	all, err := s.ListJobs(ctx, store.JobFilter{})
	require.NoError(t, err)
	require.Len(t, all, 5)
	require.Equal(t, ids[4], all[0].ID, "newest first")
	syncs, err := s.ListJobs(ctx, store.JobFilter{Kind: "sync"})
	require.NoError(t, err)
	require.Len(t, syncs, 3)
	j := claim(t, s, "w", "sync")
	running, err := s.ListJobs(ctx, store.JobFilter{States: []string{store.JobRunning}})
	require.NoError(t, err)
	require.Len(t, running, 1)
	require.Equal(t, j.ID, running[0].ID)
	two, err := s.ListJobs(ctx, store.JobFilter{Limit: 2})
	require.NoError(t, err)
	require.Len(t, two, 2)
	require.True(t, slices.Contains(ids, two[0].ID))
}

func testPruneJobs(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	finished := map[string][]string{}
	for _, kind := range []string{"sync", "sync", "sync", "rebuild"} {
		j := job(kind)
		require.NoError(t, s.CreateJob(ctx, j))
		claim(t, s, "w", kind)
		require.NoError(t, s.FinishJob(ctx, j.ID, "w", store.JobSucceeded, "", nil))
		finished[kind] = append(finished[kind], j.ID)
		time.Sleep(2 * time.Millisecond) // distinct finish times
	}
	pending := job("sync")
	require.NoError(t, s.CreateJob(ctx, pending))

	n, err := s.PruneJobs(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, n, "nothing finished an hour ago")
	n, err = s.PruneJobs(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 2, n, "the two older syncs")
	left, err := s.ListJobs(ctx, store.JobFilter{})
	require.NoError(t, err)
	var ids []string
	for _, j := range left {
		ids = append(ids, j.ID)
	}
	require.ElementsMatch(t, []string{pending.ID, finished["sync"][2], finished["rebuild"][0]}, ids,
		"unfinished jobs and each kind's latest stay")
	_, err = s.GetJob(ctx, finished["sync"][0])
	require.ErrorIs(t, err, store.ErrNotFound)
}

// A write whose context ends at any moment (a client gone, a server
// stopping) fails or succeeds as a whole, and the store stays usable: no
// connection is left inside a transaction.
func testCancelledWrites(t *testing.T, b Backend) {
	s := open(t, b)
	for i := range 300 {
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			time.Sleep(time.Duration(i%30) * 10 * time.Microsecond)
			cancel()
		}()
		_ = s.CreateJob(ctx, job("work"))
		cancel()
	}
	for range 20 {
		require.NoError(t, s.CreateJob(t.Context(), job("work")), "a write after the cancelled ones")
	}
}

func testWebhookEvents(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	t0 := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	ev := func(id string, at time.Duration) *store.WebhookEvent {
		return &store.WebhookEvent{Source: "jira", DeliveryID: id, Event: "jira:issue_updated", IssueKey: "SUP-1",
			Body: []byte(`{"webhookEvent":"jira:issue_updated","n":"` + id + `"}`), ReceivedAt: t0.Add(at)}
	}
	ids := func(es []*store.WebhookEvent) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.DeliveryID)
		}
		return out
	}
	require.NoError(t, s.AddWebhookEvent(ctx, ev("d2", 2*time.Second)))
	require.NoError(t, s.AddWebhookEvent(ctx, ev("d1", time.Second)))
	require.NoError(t, s.AddWebhookEvent(ctx, ev("d3", 3*time.Second)))
	require.ErrorIs(t, s.AddWebhookEvent(ctx, ev("d1", 9*time.Second)), store.ErrAlreadyExists, "a delivery is stored once")
	other := ev("d1", time.Second)
	other.Source = "jira_eng"
	require.NoError(t, s.AddWebhookEvent(ctx, other), "delivery ids are per source")
	require.Error(t, s.AddWebhookEvent(ctx, &store.WebhookEvent{Source: "jira"}), "delivery id and time required")

	s = reopen(t, b, s) // acknowledged events survive a restart
	due, err := s.DueWebhookEvents(ctx, "jira", time.Now(), 0)
	require.NoError(t, err)
	require.Equal(t, []string{"d1", "d2", "d3"}, ids(due), "oldest first")
	require.Equal(t, `{"webhookEvent":"jira:issue_updated","n":"d1"}`, string(due[0].Body), "the exact bytes")
	require.True(t, t0.Add(time.Second).Equal(due[0].ReceivedAt))
	require.Equal(t, "SUP-1", due[0].IssueKey)
	require.Nil(t, due[0].ProcessedAt)
	two, err := s.DueWebhookEvents(ctx, "jira", time.Now(), 2)
	require.NoError(t, err)
	require.Len(t, two, 2)

	later := time.Now().Add(time.Hour)
	require.NoError(t, s.RetryWebhookEvents(ctx, "jira", []store.WebhookRetry{{DeliveryID: "d2", At: later, Error: "jira 503"}}))
	require.NoError(t, s.FinishWebhookEvents(ctx, "jira", []string{"d1"}, time.Now(), ""))
	due, err = s.DueWebhookEvents(ctx, "jira", time.Now(), 0)
	require.NoError(t, err)
	require.Equal(t, []string{"d3"}, ids(due), "processed and put-off events are not due")
	due, err = s.DueWebhookEvents(ctx, "jira", later.Add(time.Second), 0)
	require.NoError(t, err)
	require.Equal(t, []string{"d2", "d3"}, ids(due), "due again once its time passed")
	require.Equal(t, 1, due[0].Attempts)
	require.Equal(t, "jira 503", due[0].LastError)
	require.NotNil(t, due[0].NextAttemptAt)

	st, err := s.WebhookEventStats(ctx, "jira")
	require.NoError(t, err)
	require.Equal(t, 2, st.Pending)
	require.Equal(t, 1, st.Retrying)
	require.True(t, t0.Add(2*time.Second).Equal(*st.OldestPending))
	require.True(t, t0.Add(3*time.Second).Equal(*st.LastReceived))
	require.NotNil(t, st.LastProcessed)
	empty, err := s.WebhookEventStats(ctx, "nobody")
	require.NoError(t, err)
	require.Equal(t, store.WebhookStats{}, *empty)

	require.NoError(t, s.FinishWebhookEvents(ctx, "jira", []string{"d2", "d3"}, time.Now(), "gave up"))
	n, err := s.PruneWebhookEvents(ctx, "jira", time.Now().Add(-time.Minute))
	require.NoError(t, err)
	require.Zero(t, n, "only events processed before the cut")
	n, err = s.PruneWebhookEvents(ctx, "jira", time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.NoError(t, s.AddWebhookEvent(ctx, ev("d1", time.Second)), "a pruned delivery id is free again")
	st, err = s.WebhookEventStats(ctx, "jira_eng")
	require.NoError(t, err)
	require.Equal(t, 1, st.Pending, "other sources untouched")
}

// testConcurrentWebhookEvents adds deliveries from many goroutines at once,
// each id several times (as concurrent redeliveries would): every id is
// stored once, exactly one of its adds succeeds and the others are
// ErrAlreadyExists, including ids the table had before.
func testConcurrentWebhookEvents(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	at := time.Now().UTC().Add(-time.Hour)
	ev := func(id string) *store.WebhookEvent {
		return &store.WebhookEvent{Source: "jira", DeliveryID: id, Event: "jira:issue_updated", IssueKey: "SUP-1",
			Body: []byte(id), ReceivedAt: at}
	}
	require.NoError(t, s.AddWebhookEvent(ctx, ev("d-7")), "an id stored before the burst")
	const ids, copies = 60, 3
	errs := make([]error, ids*copies)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = s.AddWebhookEvent(ctx, ev(fmt.Sprintf("d-%d", i%ids))) })
	}
	wg.Wait()
	for id := range ids {
		ok := 0
		for c := range copies {
			err := errs[c*ids+id]
			if err == nil {
				ok++
				continue
			}
			require.ErrorIs(t, err, store.ErrAlreadyExists, "d-%d", id)
		}
		want := 1
		if id == 7 {
			want = 0
		}
		require.Equal(t, want, ok, "successful adds of d-%d", id)
	}
	due, err := s.DueWebhookEvents(ctx, "jira", time.Now(), 1000)
	require.NoError(t, err)
	require.Len(t, due, ids, "each delivery stored once")
	for _, e := range due {
		require.Equal(t, e.DeliveryID, string(e.Body))
	}
}

// testRemoteQuotas: a user's daily count grows up to its limit and no
// further, per user and per UTC day, survives a reopen, and concurrent
// reservations never pass the limit together.
func testRemoteQuotas(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	day := time.Date(2026, 1, 1, 23, 30, 0, 0, time.UTC)
	reserve := func(user string, at time.Time, bytes int64) (int64, bool) {
		t.Helper()
		used, ok, err := s.ReserveRemoteBytes(ctx, user, at, bytes, 100)
		require.NoError(t, err)
		return used, ok
	}
	used, ok := reserve("ann", day, 60)
	require.True(t, ok)
	require.Zero(t, used)
	used, ok = reserve("ann", day, 60)
	require.False(t, ok, "over the limit")
	require.EqualValues(t, 60, used)
	used, ok = reserve("ann", day, 40)
	require.True(t, ok, "up to the limit exactly")
	require.EqualValues(t, 60, used, "a refused reservation added nothing")
	_, ok = reserve("bob", day, 100)
	require.True(t, ok, "another user's count is their own")
	used, ok = reserve("ann", day.Add(time.Hour), 100)
	require.True(t, ok, "the next UTC day starts over")
	require.Zero(t, used)
	inBerlin := time.Date(2026, 1, 2, 0, 15, 0, 0, time.FixedZone("CET", 3600)) // 23:15 UTC on the 1st
	used, ok = reserve("ann", inBerlin, 1)
	require.False(t, ok, "days are UTC days")
	require.EqualValues(t, 100, used)

	require.NoError(t, s.RefundRemoteBytes(ctx, "ann", day, 30))
	s = reopen(t, b, s)
	used, ok = reserve("ann", day, 30)
	require.True(t, ok, "a refund gives bytes back, and the counts survive a reopen")
	require.EqualValues(t, 70, used)
	require.NoError(t, s.RefundRemoteBytes(ctx, "ann", day, 1000))
	used, _ = reserve("ann", day, 0)
	require.Zero(t, used, "never below zero")
	require.NoError(t, s.RefundRemoteBytes(ctx, "nobody", day, 10), "refunding an unknown count is a no-op")
	_, _, err := s.ReserveRemoteBytes(ctx, "", day, 1, 100)
	require.Error(t, err, "a user is required")

	var granted atomic.Int64
	var wg sync.WaitGroup
	for range 25 {
		wg.Go(func() {
			if _, ok, err := s.ReserveRemoteBytes(ctx, "cy", day, 10, 100); err == nil && ok {
				granted.Add(1)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 10, granted.Load(), "concurrent reservations stop at the limit")
}

func testNotFound(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	checks := map[string]error{}
	_, checks["GetUser"] = s.GetUser(ctx, "x")
	_, checks["Identity"] = s.Identity(ctx, "x")
	_, checks["CredentialsByEmail"] = s.CredentialsByEmail(ctx, "x@example.com")
	_, checks["UserIDByEmail"] = s.UserIDByEmail(ctx, "x@example.com")
	_, checks["GetGroup"] = s.GetGroup(ctx, "x")
	_, checks["GroupIDByName"] = s.GroupIDByName(ctx, "x")
	checks["DeleteGroup"] = s.DeleteGroup(ctx, "x")
	checks["DeleteGrant"] = s.DeleteGrant(ctx, "x")
	_, checks["GetPAT"] = s.GetPAT(ctx, "x")
	_, checks["GetAccessRequest"] = s.GetAccessRequest(ctx, "x")
	_, checks["GetTable"] = s.GetTable(ctx, "x")
	_, checks["GetSyncState"] = s.GetSyncState(ctx, "x")
	_, checks["GetProfile"] = s.GetProfile(ctx, "x")
	_, checks["GetMetric"] = s.GetMetric(ctx, "x")
	_, checks["GetJob"] = s.GetJob(ctx, "x")
	checks["DeleteUser"] = s.DeleteUser(ctx, "x")
	checks["SetPassword"] = s.SetPassword(ctx, "x", "h")
	for name, err := range checks {
		require.ErrorIs(t, err, store.ErrNotFound, name)
		require.NotEqual(t, store.ErrNotFound.Error(), err.Error(), "%s: wrapped with the operation", name)
		require.False(t, errors.Is(err, store.ErrAlreadyExists), name)
	}
}

func testTokenScopes(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u := newUser(t, s, "scope@example.com", false)
	now := time.Now().UTC().Truncate(time.Second)
	require.NoError(t, s.CreatePAT(ctx, &store.PAT{ID: "g", UserID: u.ID, Name: "g", TokenHash: "hg", Prefix: "g", CreatedAt: now}))
	require.NoError(t, s.CreatePAT(ctx, &store.PAT{ID: "r", UserID: u.ID, Name: "r", TokenHash: "hr", Prefix: "r", CreatedAt: now,
		Scope: store.ScopeReadOnly}))
	s = reopen(t, b, s)
	g, err := s.GetPAT(ctx, "g")
	require.NoError(t, err)
	require.Equal(t, store.ScopeGeneral, g.Scope, "no scope given: general")
	r, err := s.GetPAT(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, store.ScopeReadOnly, r.Scope)
	list, err := s.ListPATs(ctx, u.ID, 10, 0)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{store.ScopeGeneral, store.ScopeReadOnly}, []string{list[0].Scope, list[1].Scope})
}

func testOneTimeTokens(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u := newUser(t, s, "once@example.com", false)
	now := time.Now().UTC()
	issue := func(hash, purpose, userID string, ttl time.Duration) {
		t.Helper()
		require.NoError(t, s.IssueOneTimeToken(ctx, &store.OneTimeToken{Hash: hash, Purpose: purpose, UserID: userID,
			Data: "data-" + hash, ExpiresAt: now.Add(ttl)}))
	}
	issue("magic-1", "magic_link", u.ID, time.Hour)
	issue("reset-1", "password_reset", u.ID, time.Hour)
	issue("state-1", "oidc_state", "", time.Hour)
	issue("state-2", "oidc_state", "", time.Hour)
	issue("old", "magic_link", "", -time.Minute)

	s = reopen(t, b, s) // tokens are durable
	_, err := s.ConsumeOneTimeToken(ctx, "password_reset", "magic-1", now)
	require.ErrorIs(t, err, store.ErrNotFound, "a token redeems only for its own purpose")
	got, err := s.ConsumeOneTimeToken(ctx, "magic_link", "magic-1", now)
	require.NoError(t, err)
	require.Equal(t, u.ID, got.UserID)
	require.Equal(t, "data-magic-1", got.Data)
	require.WithinDuration(t, now.Add(time.Hour), got.ExpiresAt, time.Second)
	_, err = s.ConsumeOneTimeToken(ctx, "magic_link", "magic-1", now)
	require.ErrorIs(t, err, store.ErrNotFound, "used up")

	got, err = s.ConsumeOneTimeToken(ctx, "password_reset", "reset-1", now)
	require.NoError(t, err, "a magic link does not kill a pending reset")
	require.Equal(t, u.ID, got.UserID)

	_, err = s.ConsumeOneTimeToken(ctx, "magic_link", "old", now)
	require.ErrorIs(t, err, store.ErrNotFound, "expired")
	issue("late", "magic_link", "", time.Minute)
	_, err = s.ConsumeOneTimeToken(ctx, "magic_link", "late", now.Add(2*time.Minute))
	require.ErrorIs(t, err, store.ErrNotFound, "expired by the caller's clock")

	// A new link replaces the user's earlier one of the same purpose; tokens of
	// nobody (OIDC states) coexist.
	issue("magic-2", "magic_link", u.ID, time.Hour)
	issue("magic-3", "magic_link", u.ID, time.Hour)
	_, err = s.ConsumeOneTimeToken(ctx, "magic_link", "magic-2", now)
	require.ErrorIs(t, err, store.ErrNotFound, "replaced by the newer link")
	_, err = s.ConsumeOneTimeToken(ctx, "magic_link", "magic-3", now)
	require.NoError(t, err)
	for _, h := range []string{"state-1", "state-2"} {
		got, err := s.ConsumeOneTimeToken(ctx, "oidc_state", h, now)
		require.NoError(t, err)
		require.Empty(t, got.UserID)
	}
}

func testOneTimeTokenRace(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	require.NoError(t, s.IssueOneTimeToken(ctx, &store.OneTimeToken{Hash: "h", Purpose: "magic_link",
		ExpiresAt: time.Now().Add(time.Hour)}))
	const n = 8
	results := make(chan error, n)
	for range n {
		go func() {
			_, err := s.ConsumeOneTimeToken(ctx, "magic_link", "h", time.Now())
			results <- err
		}()
	}
	won := 0
	for range n {
		err := <-results
		if err == nil {
			won++
			continue
		}
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	require.Equal(t, 1, won, "exactly one redeemer wins")
}

func testSyncMemberships(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u := newUser(t, s, "sync@example.com", false)
	manual, err := s.CreateGroup(ctx, "manual", "", "test")
	require.NoError(t, err)
	_, err = s.AddMember(ctx, manual.ID, u.ID, "admin@example.com")
	require.NoError(t, err)
	names := func() []string {
		t.Helper()
		id, err := s.Identity(ctx, u.ID)
		require.NoError(t, err)
		return groupNames(id.Groups)
	}

	require.NoError(t, s.SyncMemberships(ctx, u.ID, store.MemberGoogleSync, []string{"eng@corp.com", "manual"}, "system:google-sync"))
	require.Equal(t, []string{"Everyone", "eng@corp.com", "manual"}, names(), "groups created; the identity follows")
	eng, err := s.GroupIDByName(ctx, "eng@corp.com")
	require.NoError(t, err)
	g, err := s.GetGroup(ctx, eng)
	require.NoError(t, err)
	require.False(t, g.IsSystem)
	require.Equal(t, "system:google-sync", g.CreatedBy)
	members, err := s.ListMembers(ctx, eng)
	require.NoError(t, err)
	require.Equal(t, store.MemberGoogleSync, members[0].Source)

	// The next sync replaces only its own memberships.
	require.NoError(t, s.SyncMemberships(ctx, u.ID, store.MemberGoogleSync, []string{"data@corp.com"}, "system:google-sync"))
	require.Equal(t, []string{"Everyone", "data@corp.com", "manual"}, names(), "eng dropped, manual (admin-made) kept")
	require.NoError(t, s.SyncMemberships(ctx, u.ID, store.MemberGoogleSync, nil, "system:google-sync"))
	require.Equal(t, []string{"Everyone", "manual"}, names())

	// The last active admin keeps Admin even when the provider drops it.
	boss := newUser(t, s, "boss@example.com", false)
	require.NoError(t, s.SyncMemberships(ctx, boss.ID, store.MemberGoogleSync, []string{store.GroupAdmin}, "sync"))
	id, err := s.Identity(ctx, boss.ID)
	require.NoError(t, err)
	require.True(t, id.IsAdmin)
	require.NoError(t, s.SyncMemberships(ctx, boss.ID, store.MemberGoogleSync, nil, "sync"))
	id, err = s.Identity(ctx, boss.ID)
	require.NoError(t, err)
	require.True(t, id.IsAdmin, "the only admin stays one")

	require.ErrorIs(t, s.SyncMemberships(ctx, "nobody", store.MemberGoogleSync, []string{"x"}, "sync"), store.ErrNotFound)
}

// A password change and a deactivation end the user's sessions and tokens;
// reactivating revives none of them.
func testCredentialsEndWithThePassword(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	u := newUser(t, s, "u@example.com", false)
	other := newUser(t, s, "o@example.com", false)
	for _, p := range []*store.PAT{
		{ID: "mine", UserID: u.ID, Name: "cli", TokenHash: "h1", Prefix: "p1", CreatedAt: time.Now().UTC()},
		{ID: "theirs", UserID: other.ID, Name: "cli", TokenHash: "h2", Prefix: "p2", CreatedAt: time.Now().UTC()},
	} {
		require.NoError(t, s.CreatePAT(ctx, p))
	}
	id, err := s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.True(t, id.SessionsValidAfter.IsZero())

	before := time.Now().UTC().Add(-time.Second)
	require.NoError(t, s.SetPassword(ctx, u.ID, "new-hash"))
	id, err = s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.True(t, id.SessionsValidAfter.After(before), "sessions before the change are over")
	p, err := s.GetPAT(ctx, "mine")
	require.NoError(t, err)
	require.NotNil(t, p.RevokedAt, "the user's tokens are revoked")
	p, err = s.GetPAT(ctx, "theirs")
	require.NoError(t, err)
	require.Nil(t, p.RevokedAt, "other users' tokens stay")

	require.NoError(t, s.CreatePAT(ctx, &store.PAT{ID: "later", UserID: u.ID, Name: "cli", TokenHash: "h3", Prefix: "p3",
		CreatedAt: time.Now().UTC()}))
	f, tr := false, true
	_, err = s.UpdateUser(ctx, u.ID, nil, &f)
	require.NoError(t, err)
	_, err = s.UpdateUser(ctx, u.ID, nil, &tr)
	require.NoError(t, err)
	p, err = s.GetPAT(ctx, "later")
	require.NoError(t, err)
	require.NotNil(t, p.RevokedAt, "deactivation revoked it and reactivation did not revive it")
}
