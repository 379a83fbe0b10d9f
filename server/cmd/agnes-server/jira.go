package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/jira"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/orchestrator"
	"github.com/agnesdata/agnes/server/internal/app"
	"github.com/agnesdata/agnes/server/internal/store/duckdbstore"
)

func jiraCmd(f *flags) *cobra.Command {
	cmd := &cobra.Command{Use: "jira", Short: "Jira source maintenance"}
	var o backfillOpts
	backfill := &cobra.Command{
		Use:   "backfill",
		Short: "Load every issue of a Jira project (the first load), with progress",
		Long: `Load every issue of a Jira project created since a date into the source's six
tables, through the same refetch and apply as webhooks.

By default it asks the running server to do it (JiraService.StartJiraBackfill, an
admin token in --token or AGNES_TOKEN) and follows the job's progress; the tables
fill while it runs. With --offline it runs in this process against the data
directory, with the server stopped; the server publishes the result when it starts.`,
		Example: "  agnes-server jira backfill --project SUP --since 2025-01-01",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.project == "" {
				return errors.New("--project is required (a project key such as SUP)")
			}
			if o.offline {
				return backfillOffline(cmd, f, o)
			}
			return backfillOnline(cmd.Context(), cmd.ErrOrStderr(), o)
		},
	}
	backfill.Flags().StringVar(&o.project, "project", "", "project key, e.g. SUP (required)")
	backfill.Flags().StringVar(&o.since, "since", "", "only issues created on or after this date, YYYY-MM-DD")
	backfill.Flags().StringVar(&o.source, "source", "", "the Jira source instance (default: the one named jira, or the only one)")
	backfill.Flags().StringVar(&o.url, "url", cmp.Or(os.Getenv("AGNES_SERVER"), "http://127.0.0.1:8000"), "server URL (env AGNES_SERVER)")
	backfill.Flags().StringVar(&o.token, "token", "", "an admin's token (env AGNES_TOKEN)")
	backfill.Flags().BoolVar(&o.offline, "offline", false, "run here against --data-dir, with the server stopped")
	backfill.Flags().DurationVar(&o.every, "progress-every", time.Second, "how often progress is shown")
	cmd.AddCommand(backfill)
	return cmd
}

type backfillOpts struct {
	project, since, source, url, token string
	offline                            bool
	every                              time.Duration
}

// backfillOnline starts the backfill on the server and follows it to its end.
func backfillOnline(ctx context.Context, out io.Writer, o backfillOpts) error {
	token := cmp.Or(o.token, os.Getenv("AGNES_TOKEN"))
	if token == "" {
		return errors.New("an admin token is required: --token or AGNES_TOKEN")
	}
	bearer := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	})
	c := agnesv1connect.NewJiraServiceClient(&http.Client{Timeout: time.Minute}, strings.TrimRight(o.url, "/"),
		connect.WithInterceptors(bearer))
	res, err := c.StartJiraBackfill(ctx, &agnesv1.StartJiraBackfillRequest{Source: o.source, Project: o.project, Since: o.since})
	if err != nil {
		return fmt.Errorf("start the backfill: %w", err)
	}
	b := res.GetBackfill()
	fmt.Fprintf(out, "backfill of %s (source %s) started: job %s\n", b.GetProject(), b.GetSource(), b.GetJobId())
	last := ""
	for {
		line := fmt.Sprintf("%s: %d/%d issues, %d written, %d deleted, %d failed", stateName(b.GetState()),
			b.GetDone(), b.GetTotal(), b.GetUpserted(), b.GetDeleted(), len(b.GetFailed()))
		if line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		switch b.GetState() {
		case agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED:
			return nil
		case agnesv1.SyncJobState_SYNC_JOB_STATE_PARTIAL:
			fmt.Fprintf(out, "not fetched (the consistency check retries them): %s\n", strings.Join(b.GetFailed(), ", "))
			return nil
		case agnesv1.SyncJobState_SYNC_JOB_STATE_FAILED, agnesv1.SyncJobState_SYNC_JOB_STATE_CANCELLED:
			return fmt.Errorf("backfill %s: %s", stateName(b.GetState()), b.GetError())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following job %s (it goes on on the server): %w", b.GetJobId(), ctx.Err())
		case <-time.After(o.every):
		}
		got, err := c.GetJiraBackfill(ctx, &agnesv1.GetJiraBackfillRequest{JobId: b.GetJobId()})
		if err != nil {
			return fmt.Errorf("follow job %s: %w", b.GetJobId(), err)
		}
		b = got.GetBackfill()
	}
}

func stateName(s agnesv1.SyncJobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SYNC_JOB_STATE_"))
}

// backfillOffline runs the backfill here. It holds system.duckdb open
// meanwhile: a running server holds it too, so the two never write the same
// extract at once.
func backfillOffline(cmd *cobra.Command, f *flags, o backfillOpts) error {
	ctx, out := cmd.Context(), cmd.ErrOrStderr()
	cfg, err := load(cmd, f)
	if err != nil {
		return err
	}
	state, err := duckdbstore.Open(ctx, cfg.StatePath())
	if err != nil {
		return fmt.Errorf("%w (is the server running? stop it, or run without --offline)", err)
	}
	defer state.Close()
	sources, err := app.Sources(cfg, os.Getenv)
	if err != nil {
		return err
	}
	var src *jira.Source
	var name string
	var names []string
	for _, s := range sources {
		if js, ok := s.Connector.(*jira.Source); ok {
			names = append(names, s.Name)
			if o.source == s.Name || o.source == "" && (s.Name == jira.Type || src == nil) {
				src, name = js, s.Name
			}
		}
	}
	switch {
	case src == nil && o.source != "":
		return fmt.Errorf("no Jira source is named %q (have: %s)", o.source, strings.Join(names, ", "))
	case src == nil:
		return errors.New("no Jira source is configured (JIRA_DOMAIN or JIRA_BASE_URL, or a source of type jira)")
	case o.source == "" && len(names) > 1 && name != jira.Type:
		return fmt.Errorf("several Jira sources (%s): name one with --source", strings.Join(names, ", "))
	}
	dir := orchestrator.ExtractDir(cfg.DataDir, name)
	st, err := src.OpenStore(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	w, err := extract.NewWriter(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	fmt.Fprintf(out, "backfill of %s (source %s) into %s\n", o.project, name, dir)
	res, err := st.Backfill(ctx, w, jira.BackfillOptions{Project: o.project, Since: o.since,
		Progress: func(done, total int) { fmt.Fprintf(out, "%d/%d issues\n", done, total) }})
	var fe *jira.FetchError
	if err != nil && !errors.As(err, &fe) {
		return err
	}
	if len(res.Tables) > 0 {
		if err := w.Update(ctx, res.Tables...); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "done: %d written, %d deleted; the server publishes them when it starts\n", len(res.Upserted), len(res.Deleted))
	if fe != nil {
		fmt.Fprintf(out, "not fetched (the consistency check retries them): %s\n", strings.Join(fe.Keys(), ", "))
	}
	return nil
}
