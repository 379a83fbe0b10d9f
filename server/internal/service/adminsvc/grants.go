package adminsvc

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/service"
	"github.com/agnesdata/agnes/server/internal/store"
)

// ListResourceTypes implements AdminService.
func (s *Service) ListResourceTypes(context.Context, *agnesv1.ListResourceTypesRequest) (*agnesv1.ListResourceTypesResponse, error) {
	return &agnesv1.ListResourceTypesResponse{ResourceTypes: ResourceTypes}, nil
}

func grant(g *store.Grant) *agnesv1.Grant {
	return &agnesv1.Grant{Id: g.ID, GroupId: g.GroupID, GroupName: g.GroupName, ResourceType: g.ResourceType,
		ResourceId: g.ResourceID, AssignedAt: timestamppb.New(g.AssignedAt), AssignedBy: g.AssignedBy}
}

// ListGrants implements AdminService.
func (s *Service) ListGrants(ctx context.Context, req *agnesv1.ListGrantsRequest) (*agnesv1.ListGrantsResponse, error) {
	if t := req.GetResourceType(); t != "" && !knownResourceType(t) {
		return nil, apierr.InvalidArgument("unknown resource type %q", t)
	}
	gs, err := s.store.ListGrants(ctx, store.GrantFilter{ResourceType: req.GetResourceType(), GroupID: req.GetGroupId()})
	if err != nil {
		return nil, err
	}
	out := &agnesv1.ListGrantsResponse{Grants: []*agnesv1.Grant{}}
	for _, g := range gs {
		out.Grants = append(out.Grants, grant(g))
	}
	return out, nil
}

// resourceRef validates a (type, id) pair named in a request.
func resourceRef(typ, id string) (string, string, error) {
	typ, id = strings.TrimSpace(typ), strings.TrimSpace(id)
	if !knownResourceType(typ) {
		return "", "", apierr.InvalidArgument("unknown resource type %q", typ)
	}
	if id == "" {
		return "", "", apierr.InvalidArgument("resource_id is required")
	}
	if len(id) > 256 {
		return "", "", apierr.InvalidArgument("resource_id must be at most 256 characters")
	}
	return typ, id, nil
}

// CreateGrant implements AdminService.
func (s *Service) CreateGrant(ctx context.Context, req *agnesv1.CreateGrantRequest) (*agnesv1.CreateGrantResponse, error) {
	typ, id, err := resourceRef(req.GetResourceType(), req.GetResourceId())
	if err != nil {
		return nil, err
	}
	groupID := req.GetGroupId()
	switch {
	case groupID == "" && req.GetGroupName() == "":
		return nil, apierr.InvalidArgument("group_id or group_name is required")
	case groupID == "":
		if groupID, err = s.store.GroupIDByName(ctx, req.GetGroupName()); errors.Is(err, store.ErrNotFound) {
			return nil, apierr.NotFound("group %q not found", req.GetGroupName())
		} else if err != nil {
			return nil, err
		}
	}
	g, err := s.store.CreateGrant(ctx, groupID, typ, id, actor(ctx))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, groupNotFound(groupID)
	case errors.Is(err, store.ErrAlreadyExists):
		return nil, apierr.AlreadyExists("the group already has this grant")
	case err != nil:
		return nil, err
	}
	s.audit(ctx, "grant.create", g.ID, map[string]any{"group_id": groupID, "resource_type": typ, "resource_id": id})
	return &agnesv1.CreateGrantResponse{Grant: grant(g)}, nil
}

// DeleteGrant implements AdminService.
func (s *Service) DeleteGrant(ctx context.Context, req *agnesv1.DeleteGrantRequest) (*agnesv1.DeleteGrantResponse, error) {
	if err := s.store.DeleteGrant(ctx, req.GetGrantId()); errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("grant %q not found", req.GetGrantId())
	} else if err != nil {
		return nil, err
	}
	s.audit(ctx, "grant.delete", req.GetGrantId(), nil)
	return &agnesv1.DeleteGrantResponse{}, nil
}

func accessRequest(r *store.AccessRequest) *agnesv1.AccessRequest {
	return &agnesv1.AccessRequest{Id: r.ID, UserId: r.UserID, UserEmail: r.UserEmail, ResourceType: r.ResourceType,
		ResourceId: r.ResourceID, Reason: r.Reason, Status: r.Status, CreatedAt: timestamppb.New(r.CreatedAt),
		ReviewedBy: r.ReviewedBy, ReviewedAt: service.Timestamp(r.ReviewedAt), ReviewNote: r.ReviewNote,
		GrantedGroupId: r.GrantedGroupID}
}

// CreateAccessRequest implements AdminService.
func (s *Service) CreateAccessRequest(ctx context.Context, req *agnesv1.CreateAccessRequestRequest) (*agnesv1.CreateAccessRequestResponse, error) {
	typ, id, err := resourceRef(req.GetResourceType(), req.GetResourceId())
	if err != nil {
		return nil, err
	}
	p := auth.FromContext(ctx)
	if access.Can(p.Identity, typ, id) {
		return nil, apierr.FailedPrecondition("you already have access to %s '%s'", typ, id)
	}
	if len(req.GetReason()) > 2000 {
		return nil, apierr.InvalidArgument("reason must be at most 2000 characters")
	}
	r, err := s.store.CreateAccessRequest(ctx, p.UserID, typ, id, strings.TrimSpace(req.GetReason()))
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, apierr.AlreadyExists("you already have a pending request for %s '%s'", typ, id)
	}
	if err != nil {
		return nil, err
	}
	s.audit(ctx, "access_request.create", r.ID, map[string]any{"resource_type": typ, "resource_id": id})
	return &agnesv1.CreateAccessRequestResponse{Request: accessRequest(r)}, nil
}

// ListAccessRequests implements AdminService.
func (s *Service) ListAccessRequests(ctx context.Context, req *agnesv1.ListAccessRequestsRequest) (*agnesv1.ListAccessRequestsResponse, error) {
	switch req.GetStatus() {
	case "", "pending", "approved", "denied":
	default:
		return nil, apierr.InvalidArgument("status must be pending, approved or denied")
	}
	p := auth.FromContext(ctx)
	userID := p.UserID
	if p.IsAdmin {
		userID = ""
	}
	rs, err := s.store.ListAccessRequests(ctx, userID, req.GetStatus())
	if err != nil {
		return nil, err
	}
	out := &agnesv1.ListAccessRequestsResponse{Requests: []*agnesv1.AccessRequest{}}
	for _, r := range rs {
		out.Requests = append(out.Requests, accessRequest(r))
	}
	return out, nil
}

// ReviewAccessRequest implements AdminService.
func (s *Service) ReviewAccessRequest(ctx context.Context, req *agnesv1.ReviewAccessRequestRequest) (*agnesv1.ReviewAccessRequestResponse, error) {
	if req.GetApprove() && req.GetGroupId() == "" {
		return nil, apierr.InvalidArgument("group_id is required to approve")
	}
	r, err := s.store.ReviewAccessRequest(ctx, req.GetRequestId(), req.GetApprove(), req.GetGroupId(),
		strings.TrimSpace(req.GetNote()), actor(ctx))
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("access request or group not found")
	}
	if err != nil {
		return nil, err
	}
	s.audit(ctx, "access_request.review", r.ID, map[string]any{"approve": req.GetApprove(), "group_id": req.GetGroupId()})
	return &agnesv1.ReviewAccessRequestResponse{Request: accessRequest(r)}, nil
}
