package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/server/internal/store"
)

func open(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "state", "system.duckdb"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestMigrateIsIdempotentAndVersioned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "system.duckdb")
	s, err := store.Open(t.Context(), path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s, err = store.Open(t.Context(), path)
	require.NoError(t, err)
	defer s.Close()
	v, err := s.CurrentVersion(t.Context())
	require.NoError(t, err)
	require.Equal(t, store.SchemaVersion(), v)
	groups, err := s.ListGroups(t.Context())
	require.NoError(t, err)
	require.Len(t, groups, 2, "system groups seeded once")
}

func TestLastActiveAdminIsKept(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	admin, err := s.Bootstrap(ctx, "Boss@Example.com", "Boss", "hash")
	require.NoError(t, err)
	require.True(t, admin.IsAdmin)
	require.Equal(t, "boss@example.com", admin.Email)

	var rule *store.RuleError
	f := false
	_, err = s.UpdateUser(ctx, admin.ID, nil, &f)
	require.ErrorAs(t, err, &rule)
	require.ErrorAs(t, s.DeleteUser(ctx, admin.ID), &rule)
	adminGroup, err := s.GroupIDByName(ctx, store.GroupAdmin)
	require.NoError(t, err)
	require.ErrorAs(t, s.RemoveMember(ctx, adminGroup, admin.ID), &rule)

	second, err := s.CreateUser(ctx, store.NewUser{Email: "two@example.com", Admin: true})
	require.NoError(t, err)
	_, err = s.UpdateUser(ctx, admin.ID, nil, &f)
	require.NoError(t, err, "another active admin exists")
	_, err = s.UpdateUser(ctx, second.ID, nil, &f)
	require.ErrorAs(t, err, &rule, "second is now the last active admin")
}

func TestBootstrapClosesOnceAPasswordExists(t *testing.T) {
	s := open(t)
	_, err := s.Bootstrap(t.Context(), "a@example.com", "A", "h")
	require.NoError(t, err)
	_, err = s.Bootstrap(t.Context(), "b@example.com", "B", "h")
	var rule *store.RuleError
	require.ErrorAs(t, err, &rule)
}

func TestDuplicatesAreAlreadyExists(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	_, err := s.CreateUser(ctx, store.NewUser{Email: "x@example.com"})
	require.NoError(t, err)
	_, err = s.CreateUser(ctx, store.NewUser{Email: " X@example.com "})
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	g, err := s.CreateGroup(ctx, "analysts", "", "t")
	require.NoError(t, err)
	_, err = s.CreateGroup(ctx, "analysts", "", "t")
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	_, err = s.CreateGrant(ctx, g.ID, "table", "orders", "t")
	require.NoError(t, err)
	_, err = s.CreateGrant(ctx, g.ID, "table", "orders", "t")
	require.ErrorIs(t, err, store.ErrAlreadyExists)
}

func TestIdentityFollowsWrites(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.NewUser{Email: "u@example.com"})
	require.NoError(t, err)
	id, err := s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.False(t, id.Can("table", "orders"))
	require.Equal(t, []store.GroupRef{{ID: id.Groups[0].ID, Name: store.GroupEveryone, IsSystem: true}}, id.Groups)

	g, err := s.CreateGroup(ctx, "sales", "", "t")
	require.NoError(t, err)
	_, err = s.AddMember(ctx, g.ID, u.ID, "t")
	require.NoError(t, err)
	grant, err := s.CreateGrant(ctx, g.ID, "table", "orders", "t")
	require.NoError(t, err)
	id, err = s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.True(t, id.Can("table", "orders"), "cache dropped after the grant")

	require.NoError(t, s.DeleteGrant(ctx, grant.ID))
	id, err = s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.False(t, id.Can("table", "orders"))

	require.NoError(t, s.DeleteGroup(ctx, g.ID))
	_, err = s.Identity(ctx, "nobody")
	require.True(t, errors.Is(err, store.ErrNotFound))
}

func TestSessionRevocationSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "system.duckdb")
	s, err := store.Open(t.Context(), path)
	require.NoError(t, err)
	require.NoError(t, s.RevokeSession(t.Context(), "jti-1", "u", time.Now().Add(time.Hour)))
	require.True(t, s.SessionRevoked("jti-1"))
	require.NoError(t, s.Close())
	s, err = store.Open(t.Context(), path)
	require.NoError(t, err)
	defer s.Close()
	require.True(t, s.SessionRevoked("jti-1"))
	require.False(t, s.SessionRevoked("jti-2"))
}

func TestAccessRequestApprovalGrants(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.NewUser{Email: "u@example.com"})
	require.NoError(t, err)
	g, err := s.CreateGroup(ctx, "sales", "", "t")
	require.NoError(t, err)
	_, err = s.AddMember(ctx, g.ID, u.ID, "t")
	require.NoError(t, err)
	r, err := s.CreateAccessRequest(ctx, u.ID, "table", "orders", "need it")
	require.NoError(t, err)
	_, err = s.CreateAccessRequest(ctx, u.ID, "table", "orders", "again")
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	r, err = s.ReviewAccessRequest(ctx, r.ID, true, g.ID, "ok", "admin@example.com")
	require.NoError(t, err)
	require.Equal(t, "approved", r.Status)
	id, err := s.Identity(ctx, u.ID)
	require.NoError(t, err)
	require.True(t, id.Can("table", "orders"))
	_, err = s.ReviewAccessRequest(ctx, r.ID, false, "", "", "admin@example.com")
	var rule *store.RuleError
	require.ErrorAs(t, err, &rule)
}

func TestUpsertSyncStatesWritesOnlyChanges(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	var states []store.SyncState
	for i := range 1200 {
		states = append(states, store.SyncState{TableID: fmt.Sprintf("t%04d", i), Source: "src", QueryMode: "local",
			LastSync: &now, Rows: int64(i), Hash: fmt.Sprintf("%032d", i), Parts: []store.Part{{Name: "p", Hash: "h", SizeBytes: 1}}})
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
	require.Equal(t, []store.Part{{Name: "p", Hash: "h", SizeBytes: 1}}, got.Parts)
	all, err := s.SyncStates(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1200)
}

func TestAuditIsWrittenOffThePathAndFlushedOnClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "system.duckdb")
	s, err := store.Open(t.Context(), path)
	require.NoError(t, err)
	for i := range 500 {
		s.Audit(t.Context(), store.AuditEntry{Action: "test.event", Params: map[string]any{"i": i}})
	}
	require.NoError(t, s.Close())
	s.Audit(t.Context(), store.AuditEntry{Action: "after.close"}) // must not panic
	s, err = store.Open(t.Context(), path)
	require.NoError(t, err)
	defer s.Close()
	rows, err := s.ListAudit(t.Context(), "test.event", 1000)
	require.NoError(t, err)
	require.Len(t, rows, 500, "every queued row was written before Close returned")
}
