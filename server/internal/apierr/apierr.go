// Package apierr is where errors become API errors. Services return wrapped domain
// errors or the helpers below; Interceptor converts whatever is left exactly once, at
// the edge, and never lets internal text reach the caller.
package apierr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Helpers for errors whose message is meant for the caller.

// InvalidArgument is a 400.
func InvalidArgument(format string, a ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, a...))
}

// NotFound is a 404.
func NotFound(format string, a ...any) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf(format, a...))
}

// AlreadyExists is a 409.
func AlreadyExists(format string, a ...any) error {
	return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf(format, a...))
}

// FailedPrecondition is a 409 through REST: the resource's state forbids the request.
func FailedPrecondition(format string, a ...any) error {
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(format, a...))
}

// PermissionDenied is a 403.
func PermissionDenied(format string, a ...any) error {
	return connect.NewError(connect.CodePermissionDenied, fmt.Errorf(format, a...))
}

// Unauthenticated is a 401.
func Unauthenticated(format string, a ...any) error {
	return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf(format, a...))
}

// ResourceExhausted is a 429.
func ResourceExhausted(format string, a ...any) error {
	return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(format, a...))
}

// Convert maps an error to the *connect.Error the caller sees.
func Convert(ctx context.Context, err error) *connect.Error {
	var ce *connect.Error
	var rule *store.RuleError
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &rule):
		return connect.NewError(connect.CodeFailedPrecondition, errors.New(rule.Msg))
	case errors.Is(err, store.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errors.New("not found"))
	case errors.Is(err, store.ErrAlreadyExists):
		return connect.NewError(connect.CodeAlreadyExists, errors.New("already exists"))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("deadline exceeded"))
	}
	id := reqctx.From(ctx).RequestID
	slog.ErrorContext(ctx, "internal error", "err", err, "request_id", id)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error (request id %s)", id))
}

// Interceptor converts handler errors with Convert, for unary and streaming RPCs.
type Interceptor struct{}

// WrapUnary implements connect.Interceptor.
func (Interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if err != nil {
			return nil, Convert(ctx, err)
		}
		return res, nil
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (Interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (Interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := next(ctx, conn); err != nil {
			return Convert(ctx, err)
		}
		return nil
	}
}

// Unavailable is a 503: a dependency (a source, the analytics engine) is down.
func Unavailable(format string, a ...any) error {
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf(format, a...))
}
