// Package adminsvc implements agnes.v1.AdminService: health, users, groups, grants,
// access requests, the table registry and analytics rebuilds.
package adminsvc

import (
	"context"
	"errors"
	"strings"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/service"
	"github.com/agnesdata/agnes/server/internal/sources"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/syncer"
)

// Store is what the admin service reads and writes.
type Store interface {
	store.Users
	store.Groups
	store.Grants
	store.AccessRequests
	store.Registry
	store.SyncStates
	store.Audit
	store.Schema
}

// Service implements AdminService.
type Service struct {
	store   Store
	version string
	syncer  *syncer.Syncer
	invites Inviter
	sources *sources.Monitor
}

var _ agnesv1connect.AdminServiceHandler = (*Service)(nil)

// Inviter mails a new user a link to set their password (authsvc).
type Inviter interface {
	Invite(ctx context.Context, userID string) (url string, sent bool, err error)
}

// New returns the service; mon reports and checks the sources' health.
func New(st Store, version string, sy *syncer.Syncer, invites Inviter, mon *sources.Monitor) *Service {
	return &Service{store: st, version: version, syncer: sy, invites: invites, sources: mon}
}

// RebuildAnalytics implements AdminService.
func (s *Service) RebuildAnalytics(ctx context.Context, _ *agnesv1.RebuildAnalyticsRequest) (*agnesv1.RebuildAnalyticsResponse, error) {
	res, err := s.syncer.Rebuild(ctx, actor(ctx))
	var busy *store.BusyError
	if errors.As(err, &busy) {
		return nil, apierr.AlreadyExists("a rebuild is already running (job %s)", busy.JobID)
	}
	if err != nil {
		return nil, err
	}
	out := &agnesv1.RebuildAnalyticsResponse{Generation: res.Generation, Sources: int32(res.Sources),
		Views: int32(res.Views), DurationMs: res.TookMS, Problems: []*agnesv1.RebuildProblem{}}
	for _, p := range res.Problems {
		out.Problems = append(out.Problems, &agnesv1.RebuildProblem{Source: p.Source, Table: p.Table, Message: p.Message})
	}
	s.audit(ctx, "analytics.rebuild", "", map[string]any{"generation": res.Generation})
	return out, nil
}

// ResourceTypes are the resource types grants can name.
var ResourceTypes = []*agnesv1.ResourceType{
	{Key: store.ResourceTable, DisplayName: "Table", Description: "A registered table: query, download, catalog", IdFormat: "registry id, e.g. orders"},
}

func knownResourceType(t string) bool {
	for _, rt := range ResourceTypes {
		if rt.GetKey() == t {
			return true
		}
	}
	return false
}

func (s *Service) audit(ctx context.Context, action, resource string, params map[string]any) {
	info := reqctx.From(ctx)
	s.store.Audit(ctx, store.AuditEntry{UserID: auth.FromContext(ctx).UserID, Action: action, Resource: resource,
		Params: params, ClientIP: info.ClientIP, RequestID: info.RequestID})
}

func actor(ctx context.Context) string { return auth.FromContext(ctx).Email }

// GetHealth implements AdminService.
func (s *Service) GetHealth(ctx context.Context, _ *agnesv1.GetHealthRequest) (*agnesv1.GetHealthResponse, error) {
	v, latest, err := s.store.SchemaVersion(ctx)
	res := &agnesv1.GetHealthResponse{Status: "ok", DbSchema: "ok", Expected: int32(latest), Version: s.version}
	switch {
	case err != nil:
		res.Status, res.DbSchema = "unhealthy", "unreachable"
	case v != latest:
		res.Status, res.DbSchema = "unhealthy", "mismatch"
	}
	res.Current = int32(v)
	return res, nil
}

// ListUsers implements AdminService.
func (s *Service) ListUsers(ctx context.Context, req *agnesv1.ListUsersRequest) (*agnesv1.ListUsersResponse, error) {
	limit, offset, err := service.Page(req.GetLimit(), req.GetOffset(), 1000, 10000)
	if err != nil {
		return nil, err
	}
	users, err := s.store.ListUsers(ctx, limit, offset)
	if err != nil {
		return nil, err
	}
	out := &agnesv1.ListUsersResponse{Users: []*agnesv1.User{}}
	for _, u := range users {
		out.Users = append(out.Users, service.User(u))
	}
	return out, nil
}

func (s *Service) user(ctx context.Context, id string) (*agnesv1.User, error) {
	u, err := s.store.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("user %q not found", id)
	}
	if err != nil {
		return nil, err
	}
	return service.User(u), nil
}

// GetUser implements AdminService.
func (s *Service) GetUser(ctx context.Context, req *agnesv1.GetUserRequest) (*agnesv1.GetUserResponse, error) {
	u, err := s.user(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	return &agnesv1.GetUserResponse{User: u}, nil
}

// CreateUser implements AdminService.
func (s *Service) CreateUser(ctx context.Context, req *agnesv1.CreateUserRequest) (*agnesv1.CreateUserResponse, error) {
	email, err := service.Email(req.GetEmail())
	if err != nil {
		return nil, err
	}
	nu := store.NewUser{Email: email, Name: strings.TrimSpace(req.GetName()), By: actor(ctx)}
	if nu.Name == "" {
		nu.Name, _, _ = strings.Cut(email, "@")
	}
	if req.GetPassword() != "" {
		if nu.PasswordHash, err = service.Password(ctx, req.GetPassword()); err != nil {
			return nil, err
		}
	}
	for _, g := range req.GetGroups() {
		if _, err := s.store.GroupIDByName(ctx, g); err != nil {
			return nil, apierr.NotFound("group %q not found", g)
		}
		nu.Groups = append(nu.Groups, g)
	}
	u, err := s.store.CreateUser(ctx, nu)
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, apierr.AlreadyExists("a user with email %q already exists", email)
	}
	if err != nil {
		return nil, err
	}
	s.audit(ctx, "user.create", u.ID, map[string]any{"email": email, "groups": req.GetGroups()})
	out := &agnesv1.CreateUserResponse{User: service.User(u)}
	if req.GetSendInvite() {
		link, sent, err := s.invites.Invite(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		out.User.InviteUrl, out.User.InviteEmailSent = &link, &sent
	}
	return out, nil
}

// changeActive applies name/active changes with the self and last-admin rules.
func (s *Service) changeActive(ctx context.Context, id string, name *string, active *bool) (*agnesv1.User, error) {
	if active != nil && !*active && id == auth.FromContext(ctx).UserID {
		return nil, apierr.FailedPrecondition("cannot deactivate yourself")
	}
	if name != nil {
		trimmed := strings.TrimSpace(*name)
		name = &trimmed
	}
	u, err := s.store.UpdateUser(ctx, id, name, active)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("user %q not found", id)
	}
	if err != nil {
		return nil, err
	}
	s.audit(ctx, "user.update", id, map[string]any{"name": name, "active": active})
	return service.User(u), nil
}

// UpdateUser implements AdminService.
func (s *Service) UpdateUser(ctx context.Context, req *agnesv1.UpdateUserRequest) (*agnesv1.UpdateUserResponse, error) {
	u, err := s.changeActive(ctx, req.GetUserId(), req.Name, req.Active)
	if err != nil {
		return nil, err
	}
	return &agnesv1.UpdateUserResponse{User: u}, nil
}

// DeactivateUser implements AdminService.
func (s *Service) DeactivateUser(ctx context.Context, req *agnesv1.DeactivateUserRequest) (*agnesv1.DeactivateUserResponse, error) {
	f := false
	u, err := s.changeActive(ctx, req.GetUserId(), nil, &f)
	if err != nil {
		return nil, err
	}
	return &agnesv1.DeactivateUserResponse{User: u}, nil
}

// ActivateUser implements AdminService.
func (s *Service) ActivateUser(ctx context.Context, req *agnesv1.ActivateUserRequest) (*agnesv1.ActivateUserResponse, error) {
	t := true
	u, err := s.changeActive(ctx, req.GetUserId(), nil, &t)
	if err != nil {
		return nil, err
	}
	return &agnesv1.ActivateUserResponse{User: u}, nil
}

// DeleteUser implements AdminService.
func (s *Service) DeleteUser(ctx context.Context, req *agnesv1.DeleteUserRequest) (*agnesv1.DeleteUserResponse, error) {
	if req.GetUserId() == auth.FromContext(ctx).UserID {
		return nil, apierr.FailedPrecondition("cannot delete yourself")
	}
	if err := s.store.DeleteUser(ctx, req.GetUserId()); errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("user %q not found", req.GetUserId())
	} else if err != nil {
		return nil, err
	}
	s.audit(ctx, "user.delete", req.GetUserId(), nil)
	return &agnesv1.DeleteUserResponse{}, nil
}

// SetUserPassword implements AdminService.
func (s *Service) SetUserPassword(ctx context.Context, req *agnesv1.SetUserPasswordRequest) (*agnesv1.SetUserPasswordResponse, error) {
	hash, err := service.Password(ctx, req.GetPassword())
	if err != nil {
		return nil, err
	}
	if err := s.store.SetPassword(ctx, req.GetUserId(), hash); errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("user %q not found", req.GetUserId())
	} else if err != nil {
		return nil, err
	}
	s.audit(ctx, "user.set_password", req.GetUserId(), nil)
	return &agnesv1.SetUserPasswordResponse{}, nil
}

// GetUserEffectiveAccess implements AdminService.
func (s *Service) GetUserEffectiveAccess(ctx context.Context, req *agnesv1.GetUserEffectiveAccessRequest) (*agnesv1.GetUserEffectiveAccessResponse, error) {
	u, err := s.user(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	items, err := service.EffectiveAccess(ctx, s.store, u.GetId())
	if err != nil {
		return nil, err
	}
	return &agnesv1.GetUserEffectiveAccessResponse{IsAdmin: u.GetIsAdmin(), Items: items}, nil
}
