package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/reqctx"
)

// recoverPanics turns a handler panic into a 500 and a logged stack.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				log.ErrorContext(r.Context(), "panic", "value", v, "request_id", reqctx.From(r.Context()).RequestID,
					"stack", string(debug.Stack()))
				apierr.WriteHTTP(w, http.StatusInternalServerError, connect.CodeInternal, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// accessLog writes one line per request, with what inner layers recorded: the
// caller, the RPC and its code (also for REST calls, which reach the RPC over the
// in-memory hop).
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		info := reqctx.From(r.Context())
		user, procedure, code := info.Outcome()
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status(), "bytes", rec.bytes,
			"duration_ms", float64(time.Since(start).Microseconds()) / 1000, "request_id", info.RequestID,
			"client_ip", info.ClientIP}
		if user != "" {
			attrs = append(attrs, "user", user)
		}
		if procedure != "" {
			attrs = append(attrs, "rpc", procedure, "code", code)
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request", slogAttrs(attrs)...)
	})
}

func slogAttrs(kv []any) []slog.Attr {
	out := make([]slog.Attr, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, slog.Any(kv[i].(string), kv[i+1]))
	}
	return out
}

type recorder struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom keeps http.ServeContent's sendfile path open through the recorder:
// downloads are copied by the kernel, not through user-space buffers.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// notFoundJSON answers unknown paths with a JSON 404 instead of the RPC mux's plain
// text, keeping Connect, gRPC and reflection paths on the RPC mux.
func notFoundJSON(root *http.ServeMux, rpc *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := root.Handler(r); pattern == "/" {
			if _, p := rpc.Handler(r); p == "" {
				apierr.WriteHTTP(w, http.StatusNotFound, connect.CodeNotFound, "no route for "+r.Method+" "+r.URL.Path)
				return
			}
		}
		root.ServeHTTP(w, r) // not the handler found above: ServeHTTP also sets path values
	})
}

// outcomeInterceptor records each RPC's procedure and final code for the request log.
type outcomeInterceptor struct{}

func (outcomeInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		record(ctx, req.Spec().Procedure, err)
		return res, err
	}
}

func (outcomeInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (outcomeInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		record(ctx, conn.Spec().Procedure, err)
		return err
	}
}

func record(ctx context.Context, procedure string, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	reqctx.From(ctx).SetRPC(strings.TrimPrefix(procedure, "/"), code)
}
