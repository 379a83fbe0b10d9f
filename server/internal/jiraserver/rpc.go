package jiraserver

import (
	"context"
	"encoding/json"
	"errors"

	"google.golang.org/protobuf/types/known/timestamppb"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/jobs"
	"github.com/agnesdata/agnes/server/internal/service"
	"github.com/agnesdata/agnes/server/internal/store"
)

var _ agnesv1connect.JiraServiceHandler = (*Server)(nil)

// StartJiraBackfill implements JiraService.
func (s *Server) StartJiraBackfill(ctx context.Context, req *agnesv1.StartJiraBackfillRequest) (*agnesv1.StartJiraBackfillResponse, error) {
	x, err := s.site(req.GetSource())
	switch {
	case errors.Is(err, errNotConfigured):
		return nil, apierr.FailedPrecondition("no Jira source is configured (set JIRA_DOMAIN or JIRA_BASE_URL, or a source of type jira)")
	case errors.Is(err, errUnknownSource):
		return nil, apierr.InvalidArgument("source: no Jira source is named %q", req.GetSource())
	}
	params := BackfillParams{Source: x.name, Project: req.GetProject(), Since: req.GetSince()}
	if params.Project == "" {
		return nil, apierr.InvalidArgument("project: name the project to load, e.g. SUP")
	}
	if _, err := backfillJQL(params.Project, params.Since); err != nil {
		return nil, apierr.InvalidArgument("%v", err)
	}
	j, err := s.runner.Submit(ctx, jobs.Spec{Kind: KindBackfill, Keys: []string{key(KindBackfill, x.name)}, Params: params,
		Progress: BackfillProgress{Failed: []string{}}, CreatedBy: auth.FromContext(ctx).Email})
	var busy *store.BusyError
	if errors.As(err, &busy) {
		return nil, apierr.AlreadyExists("a backfill of %s is already running (job %s)", x.name, busy.JobID)
	}
	if err != nil {
		return nil, err
	}
	b, err := backfillProto(j)
	if err != nil {
		return nil, err
	}
	return &agnesv1.StartJiraBackfillResponse{Backfill: b}, nil
}

// GetJiraBackfill implements JiraService.
func (s *Server) GetJiraBackfill(ctx context.Context, req *agnesv1.GetJiraBackfillRequest) (*agnesv1.GetJiraBackfillResponse, error) {
	j, err := s.runner.Get(ctx, req.GetJobId())
	if errors.Is(err, store.ErrNotFound) || err == nil && j.Kind != KindBackfill {
		return nil, apierr.NotFound("jira backfill %q not found", req.GetJobId())
	}
	if err != nil {
		return nil, err
	}
	b, err := backfillProto(j)
	if err != nil {
		return nil, err
	}
	return &agnesv1.GetJiraBackfillResponse{Backfill: b}, nil
}

var jobStates = map[string]agnesv1.SyncJobState{
	store.JobPending: agnesv1.SyncJobState_SYNC_JOB_STATE_PENDING, store.JobRunning: agnesv1.SyncJobState_SYNC_JOB_STATE_RUNNING,
	store.JobSucceeded: agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, store.JobFailed: agnesv1.SyncJobState_SYNC_JOB_STATE_FAILED,
	store.JobPartial: agnesv1.SyncJobState_SYNC_JOB_STATE_PARTIAL, store.JobCancelled: agnesv1.SyncJobState_SYNC_JOB_STATE_CANCELLED,
}

func backfillProto(j *store.Job) (*agnesv1.JiraBackfill, error) {
	var params BackfillParams
	var p BackfillProgress
	if err := json.Unmarshal(j.Params, &params); err != nil {
		return nil, err
	}
	if len(j.Progress) > 0 {
		if err := json.Unmarshal(j.Progress, &p); err != nil {
			return nil, err
		}
	}
	out := &agnesv1.JiraBackfill{JobId: j.ID, Source: params.Source, Project: params.Project, Since: params.Since,
		State: jobStates[j.State], Total: int32(p.Total), Done: int32(p.Done), Upserted: int32(p.Upserted),
		Deleted: int32(p.Deleted), Failed: p.Failed, Error: j.Error, CreatedAt: timestamppb.New(j.CreatedAt),
		FinishedAt: service.Timestamp(j.FinishedAt), CreatedBy: j.CreatedBy}
	if out.Failed == nil {
		out.Failed = []string{}
	}
	return out, nil
}
