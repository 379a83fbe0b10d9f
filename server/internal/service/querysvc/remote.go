package querysvc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/bigquery"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/pushdown"
)

// run runs an authorized query where it belongs: on the engine, or pushed
// down to its remote tables' source, whose Arrow result goes to the same
// sinks under the same limits.
func (s *Service) run(ctx context.Context, tgt target, opts engine.RunOptions, sink engine.ArrowSink) (engine.Summary, error) {
	if len(tgt.remote) == 0 {
		return s.engine.RunArrow(ctx, tgt.sql, opts, sink)
	}
	return s.engine.RunReader(ctx, opts, func(ctx context.Context, maxRows int64) (array.RecordReader, []engine.Column, error) {
		plan, err := s.remote.Prepare(ctx, opts.User, tgt.sql, tgt.remote)
		if err != nil {
			return nil, nil, err
		}
		rows, err := plan.Run(ctx, maxRows)
		if err != nil {
			return nil, nil, err
		}
		slog.InfoContext(ctx, "remote query", "source", plan.Source, "user", opts.User, "estimated_bytes", plan.Estimate)
		cols := make([]engine.Column, 0, len(rows.Columns()))
		for _, c := range rows.Columns() {
			cols = append(cols, engine.Column{Name: c.Name, Type: c.Type})
		}
		return rows, cols, nil
	}, sink)
}

// remoteError turns the refusals of a pushed-down query into API errors:
// over the scan cap, a query BigQuery would run differently or rejects
// → 400; over the daily quota → 429 until the quota resets; BigQuery
// failing → 503 with its message. Anything else passes as it is.
func remoteError(err error) error {
	var quota *pushdown.QuotaError
	var over *bigquery.OverCapError
	var dialect *bigquery.DialectError
	var in *connectors.InputError
	var up *pushdown.UpstreamError
	switch {
	case errors.As(err, &quota):
		return retryAfter(apierr.ResourceExhausted("%s", quota.Error()), max(time.Until(quota.Reset), time.Second))
	case errors.As(err, &over):
		return apierr.InvalidArgument("%s", over.Error())
	case errors.As(err, &dialect):
		return apierr.InvalidArgument("%s", dialect.Error())
	case errors.As(err, &in):
		return apierr.InvalidArgument("%s", in.Msg)
	case errors.As(err, &up):
		slog.Warn("remote query failed", "err", errors.Unwrap(up))
		return apierr.Unavailable("%s", up.Msg)
	}
	return err
}
