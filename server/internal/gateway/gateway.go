// Package gateway is the REST/JSON mirror: grpc-gateway's ServeMux at the documented
// paths, calling back into our own Connect handlers over an in-memory gRPC connection
// so that every protocol passes the same authentication, authorization and error
// interceptors. RegisterXHandlerServer is never used: it would skip them.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/restjson"
)

// Options configure the mirror.
type Options struct {
	MaxBodyBytes int64               // request bodies above this answer 413
	JSON         *restjson.Marshaler // the REST JSON encoding
}

// New returns the REST handler. conn leads to the server's own Connect handlers.
func New(ctx context.Context, conn *grpc.ClientConn, services []protoreflect.ServiceDescriptor, opts Options) (http.Handler, error) {
	statuses := successStatuses(services)
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, opts.JSON),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithStreamErrorHandler(streamErrorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithMetadata(edgeMetadata),
		runtime.WithForwardResponseOption(func(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
			if name, ok := runtime.RPCMethod(ctx); ok {
				if code := statuses[name]; code != 0 {
					w.WriteHeader(code)
				}
			}
			return nil
		}),
	)
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		agnesv1.RegisterAuthServiceHandler,
		agnesv1.RegisterAdminServiceHandler,
		agnesv1.RegisterSyncServiceHandler,
		agnesv1.RegisterQueryServiceHandler,
		agnesv1.RegisterCatalogServiceHandler,
		agnesv1.RegisterMemoryServiceHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			return nil, err
		}
	}
	return checkBody(opts.MaxBodyBytes, shapeResponses(mux)), nil
}

// successStatuses maps "/agnes.v1.X/Method" to its declared REST success status.
func successStatuses(services []protoreflect.ServiceDescriptor) map[string]int {
	out := map[string]int{}
	for _, sd := range services {
		for i := range sd.Methods().Len() {
			m := sd.Methods().Get(i)
			if code, ok := proto.GetExtension(m.Options(), agnesv1.E_HttpStatus).(int32); ok && code != 0 {
				out[access.Procedure(m)] = int(code)
			}
		}
	}
	return out
}

// incomingHeader forwards what the Connect hop needs: credentials (Authorization is
// forwarded by default), cookies and the request id.
func incomingHeader(key string) (string, bool) {
	switch strings.ToLower(key) {
	case "cookie", "x-request-id":
		return strings.ToLower(key), true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader passes the few response headers a REST client needs unprefixed.
func outgoingHeader(key string) (string, bool) {
	switch strings.ToLower(key) {
	case "set-cookie", "retry-after":
		return key, true
	}
	return "", false
}

// edgeMetadata hands the edge's facts to the Connect hop, which trusts them only
// because they arrive on the in-memory listener.
func edgeMetadata(ctx context.Context, r *http.Request) metadata.MD {
	info := reqctx.From(r.Context())
	return metadata.Pairs(
		strings.ToLower(reqctx.HeaderClientIP), info.ClientIP,
		strings.ToLower(reqctx.HeaderVia), "rest",
		strings.ToLower(reqctx.HeaderRequestID), info.RequestID,
	)
}

func errorHandler(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		for _, v := range append(md.HeaderMD.Get("retry-after"), md.TrailerMD.Get("retry-after")...) {
			w.Header().Set("Retry-After", v)
		}
		for _, v := range md.HeaderMD.Get("set-cookie") {
			w.Header().Add("Set-Cookie", v)
		}
	}
	code := connect.Code(st.Code())
	msg := st.Message()
	if st.Code() == codes.Unknown || msg == "" {
		code, msg = connect.CodeInternal, "internal error"
	}
	apierr.WriteHTTP(w, apierr.HTTPStatus(code), code, msg)
}

func streamErrorHandler(_ context.Context, err error) *status.Status {
	return status.Convert(err)
}

func routingErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		apierr.WriteHTTP(w, httpStatus, connect.CodeUnimplemented, "method "+r.Method+" not allowed on "+r.URL.Path)
	case http.StatusBadRequest:
		apierr.WriteHTTP(w, httpStatus, connect.CodeInvalidArgument, "bad request path")
	default:
		apierr.WriteHTTP(w, http.StatusNotFound, connect.CodeNotFound, "no route for "+r.Method+" "+r.URL.Path)
	}
}

// shapeResponses drops the "{}" the gateway writes after a 204, and gives errors of
// streaming RPCs that fail before their first message the same {"detail", "code"}
// body and status as every other REST error (the gateway would write its own
// {"error": {...}} chunk).
func shapeResponses(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&statusWriter{ResponseWriter: w}, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status  int
	pending int // an error status held back until its body shows whose it is
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status != 0 || w.pending != 0 {
		return
	}
	if code >= 400 {
		w.pending = code
		return
	}
	w.commit(code)
}

func (w *statusWriter) commit(code int) {
	w.status = code
	if code == http.StatusNoContent {
		w.Header().Del("Content-Type")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.pending != 0 {
		code := w.pending
		w.pending = 0
		var chunk struct {
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if bytes.HasPrefix(b, []byte(`{"error"`)) && json.Unmarshal(b, &chunk) == nil && chunk.Error != nil {
			c := connect.Code(chunk.Error.Code)
			w.status = apierr.HTTPStatus(c)
			apierr.WriteHTTP(w.ResponseWriter, w.status, c, chunk.Error.Message)
			w.status = -1 // swallow the stream delimiter that follows
			return len(b), nil
		}
		w.commit(code)
	}
	if w.status == 0 {
		w.commit(http.StatusOK)
	}
	if w.status == http.StatusNoContent || w.status == -1 {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 && w.pending == 0 {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// checkBody reads the (bounded) request body before the gateway does: an oversized
// body answers 413 and malformed JSON a 400 that says where it breaks, instead of the
// decoder's bare "unexpected EOF".
func checkBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		tooLarge := func() {
			apierr.WriteHTTP(w, http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted,
				"request body too large (max "+strconv.FormatInt(max, 10)+" bytes)")
		}
		if r.ContentLength > max {
			tooLarge()
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			tooLarge()
			return
		case err != nil:
			apierr.WriteHTTP(w, http.StatusBadRequest, connect.CodeInvalidArgument, "could not read request body")
			return
		}
		if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
			var v any
			err := json.Unmarshal(body, &v)
			apierr.WriteHTTP(w, http.StatusBadRequest, connect.CodeInvalidArgument, "malformed JSON body: "+err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}
