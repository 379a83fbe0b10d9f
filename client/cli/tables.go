package cli

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

func isNotFound(err error) bool { return connect.CodeOf(err) == connect.CodeNotFound }

// jsonOf turns a message into a plain JSON value (nil for nil).
func jsonOf(m proto.Message) any {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil
	}
	raw, err := jsonOpts.Marshal(m)
	if err != nil {
		return nil
	}
	var v any
	_ = json.Unmarshal(raw, &v)
	return v
}

func (a *app) tablesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tables", Short: "Register, list and remove tables"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List the table registry",
		RunE: a.run(func(cmd *cobra.Command, _ []string, c *sdk.Client) error {
			res, err := c.Admin.ListRegistry(cmd.Context(), &agnesv1.ListRegistryRequest{})
			if err != nil {
				return err
			}
			return list(a.printer(), res.GetTables(), []string{"ID", "SOURCE", "STRATEGY", "MODE", "SCHEDULE", "LAST ERROR"},
				func(t *agnesv1.RegisteredTable) []string {
					return []string{t.GetId(), t.GetSourceType(), t.GetSyncStrategy(), t.GetQueryMode(),
						cmp.Or(t.GetSyncSchedule(), "on demand"), cut(t.GetLastSyncError(), 50)}
				})
		}),
	})
	var req agnesv1.RegisterTableRequest
	register := &cobra.Command{
		Use: "register NAME --source TYPE", Short: "Register a table", Args: cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			req.Name = args[0]
			res, err := c.Admin.RegisterTable(cmd.Context(), &req)
			if err != nil {
				return err
			}
			return a.printer().message(res, func() { fmt.Fprintf(a.out, "Registered %s\n", res.GetId()) })
		}),
	}
	register.Flags().StringVar(&req.SourceType, "source", "", "source type (demo, upload, ...)")
	register.Flags().StringVar(&req.SourceTable, "source-table", "", "table name in the source")
	register.Flags().StringVar(&req.Bucket, "bucket", "", "bucket / dataset in the source")
	register.Flags().StringVar(&req.SyncStrategy, "strategy", "", "full_refresh (default), incremental or partitioned")
	register.Flags().StringVar(&req.PartitionBy, "partition-by", "", "partition column (partitioned strategy)")
	register.Flags().StringVar(&req.SyncSchedule, "schedule", "", `"every 30m", "every 6h" or "daily 06:00"`)
	register.Flags().StringVar(&req.Description, "description", "", "description")
	cmd.AddCommand(register)
	cmd.AddCommand(&cobra.Command{
		Use: "delete ID", Short: "Unregister a table and remove its data", Args: cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			if _, err := c.Admin.DeleteRegisteredTable(cmd.Context(), &agnesv1.DeleteRegisteredTableRequest{TableId: args[0]}); err != nil {
				return err
			}
			return a.done("Unregistered %s", args[0])
		}),
	})
	return cmd
}

func (a *app) syncCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "sync [TABLE...]",
		Short: "Start a sync of the listed tables (all when none) and, with --wait, follow it",
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			res, err := c.Sync.TriggerSync(cmd.Context(), &agnesv1.TriggerSyncRequest{Tables: args})
			if err != nil {
				return err
			}
			if !wait {
				return a.printer().message(res, func() {
					fmt.Fprintf(a.out, "Started sync job %s (%s)\n", res.GetJobId(), strings.Join(res.GetTables(), ", "))
				})
			}
			stream, err := c.Sync.WatchSyncJob(cmd.Context(), &agnesv1.WatchSyncJobRequest{JobId: res.GetJobId()})
			if err != nil {
				return err
			}
			var last *agnesv1.SyncJob
			for stream.Receive() {
				last = stream.Msg().GetJob()
				if !a.jsonOut {
					fmt.Fprintf(a.err, "\r%s", jobLine(last))
				}
			}
			if err := stream.Err(); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printer().message(last, func() {})
			}
			fmt.Fprintln(a.err)
			for _, t := range last.GetTables() {
				fmt.Fprintf(a.out, "%-30s %-10s %8d rows  %s\n", t.GetTableId(), stateName(t.GetState()), t.GetRows(), t.GetError())
			}
			if last.GetState() != agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED {
				return errors.New("sync " + stateName(last.GetState()) + ": " + cmp.Or(last.GetError(), "see the tables above"))
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the job to its end")
	return cmd
}

func stateName(s agnesv1.SyncJobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SYNC_JOB_STATE_"))
}

func jobLine(j *agnesv1.SyncJob) string {
	done := 0
	for _, t := range j.GetTables() {
		if s := t.GetState(); s == agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED || s == agnesv1.SyncJobState_SYNC_JOB_STATE_FAILED {
			done++
		}
	}
	return fmt.Sprintf("sync %s: %s, %d/%d tables done ", j.GetJobId()[:8], stateName(j.GetState()), done, len(j.GetTables()))
}
