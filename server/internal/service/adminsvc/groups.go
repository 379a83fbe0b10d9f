package adminsvc

import (
	"context"
	"errors"
	"strings"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/service"
	"github.com/agnesdata/agnes/server/internal/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func group(g *store.Group) *agnesv1.Group {
	return &agnesv1.Group{Id: g.ID, Name: g.Name, Description: g.Description, IsSystem: g.IsSystem,
		Origin: service.Origin(g.IsSystem), CreatedAt: timestamppb.New(g.CreatedAt), CreatedBy: g.CreatedBy,
		MemberCount: int32(g.MemberCount), GrantCount: int32(g.GrantCount)}
}

func groupNotFound(id string) error { return apierr.NotFound("group %q not found", id) }

func groupName(raw string) (string, error) {
	name := strings.TrimSpace(raw)
	if name == "" {
		return "", apierr.InvalidArgument("group name is required")
	}
	if len(name) > 200 {
		return "", apierr.InvalidArgument("group name must be at most 200 characters")
	}
	return name, nil
}

// ListGroups implements AdminService.
func (s *Service) ListGroups(ctx context.Context, _ *agnesv1.ListGroupsRequest) (*agnesv1.ListGroupsResponse, error) {
	gs, err := s.store.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	out := &agnesv1.ListGroupsResponse{Groups: []*agnesv1.Group{}}
	for _, g := range gs {
		out.Groups = append(out.Groups, group(g))
	}
	return out, nil
}

// GetGroup implements AdminService.
func (s *Service) GetGroup(ctx context.Context, req *agnesv1.GetGroupRequest) (*agnesv1.GetGroupResponse, error) {
	g, err := s.store.GetGroup(ctx, req.GetGroupId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, groupNotFound(req.GetGroupId())
	}
	if err != nil {
		return nil, err
	}
	return &agnesv1.GetGroupResponse{Group: group(g)}, nil
}

// CreateGroup implements AdminService.
func (s *Service) CreateGroup(ctx context.Context, req *agnesv1.CreateGroupRequest) (*agnesv1.CreateGroupResponse, error) {
	name, err := groupName(req.GetName())
	if err != nil {
		return nil, err
	}
	g, err := s.store.CreateGroup(ctx, name, strings.TrimSpace(req.GetDescription()), actor(ctx))
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, apierr.AlreadyExists("group %q already exists", name)
	}
	if err != nil {
		return nil, err
	}
	s.audit(ctx, "group.create", g.ID, map[string]any{"name": name})
	return &agnesv1.CreateGroupResponse{Group: group(g)}, nil
}

// UpdateGroup implements AdminService.
func (s *Service) UpdateGroup(ctx context.Context, req *agnesv1.UpdateGroupRequest) (*agnesv1.UpdateGroupResponse, error) {
	name := req.Name
	if name != nil {
		n, err := groupName(*name)
		if err != nil {
			return nil, err
		}
		name = &n
	}
	g, err := s.store.UpdateGroup(ctx, req.GetGroupId(), name, req.Description)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, groupNotFound(req.GetGroupId())
	case errors.Is(err, store.ErrAlreadyExists):
		return nil, apierr.AlreadyExists("group %q already exists", *name)
	case err != nil:
		return nil, err
	}
	s.audit(ctx, "group.update", g.ID, map[string]any{"name": name, "description": req.Description})
	return &agnesv1.UpdateGroupResponse{Group: group(g)}, nil
}

// DeleteGroup implements AdminService.
func (s *Service) DeleteGroup(ctx context.Context, req *agnesv1.DeleteGroupRequest) (*agnesv1.DeleteGroupResponse, error) {
	if err := s.store.DeleteGroup(ctx, req.GetGroupId()); errors.Is(err, store.ErrNotFound) {
		return nil, groupNotFound(req.GetGroupId())
	} else if err != nil {
		return nil, err
	}
	s.audit(ctx, "group.delete", req.GetGroupId(), nil)
	return &agnesv1.DeleteGroupResponse{}, nil
}

func member(m *store.Member) *agnesv1.GroupMember {
	return &agnesv1.GroupMember{UserId: m.UserID, Email: m.Email, Name: m.Name, Active: m.Active, Source: m.Source,
		AddedAt: timestamppb.New(m.AddedAt), AddedBy: m.AddedBy}
}

// ListGroupMembers implements AdminService.
func (s *Service) ListGroupMembers(ctx context.Context, req *agnesv1.ListGroupMembersRequest) (*agnesv1.ListGroupMembersResponse, error) {
	ms, err := s.store.ListMembers(ctx, req.GetGroupId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, groupNotFound(req.GetGroupId())
	}
	if err != nil {
		return nil, err
	}
	out := &agnesv1.ListGroupMembersResponse{Members: []*agnesv1.GroupMember{}}
	for _, m := range ms {
		out.Members = append(out.Members, member(m))
	}
	return out, nil
}

// AddGroupMember implements AdminService.
func (s *Service) AddGroupMember(ctx context.Context, req *agnesv1.AddGroupMemberRequest) (*agnesv1.AddGroupMemberResponse, error) {
	userID := req.GetUserId()
	switch {
	case userID == "" && req.GetEmail() == "":
		return nil, apierr.InvalidArgument("email or user_id is required")
	case userID == "":
		id, err := s.store.UserIDByEmail(ctx, req.GetEmail())
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.NotFound("user %q not found", req.GetEmail())
		}
		if err != nil {
			return nil, err
		}
		userID = id
	}
	m, err := s.store.AddMember(ctx, req.GetGroupId(), userID, actor(ctx))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, apierr.NotFound("group or user not found")
	case errors.Is(err, store.ErrAlreadyExists):
		return nil, apierr.AlreadyExists("user is already a member of the group")
	case err != nil:
		return nil, err
	}
	s.audit(ctx, "group.member_add", req.GetGroupId(), map[string]any{"user_id": userID})
	return &agnesv1.AddGroupMemberResponse{Member: member(m)}, nil
}

// RemoveGroupMember implements AdminService.
func (s *Service) RemoveGroupMember(ctx context.Context, req *agnesv1.RemoveGroupMemberRequest) (*agnesv1.RemoveGroupMemberResponse, error) {
	if err := s.store.RemoveMember(ctx, req.GetGroupId(), req.GetUserId()); errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("membership not found")
	} else if err != nil {
		return nil, err
	}
	s.audit(ctx, "group.member_remove", req.GetGroupId(), map[string]any{"user_id": req.GetUserId()})
	return &agnesv1.RemoveGroupMemberResponse{}, nil
}
