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
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
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

// MaxAnswerBytes bounds one answer crossing the in-memory hop (the REST mirror's
// client side of it).
const MaxAnswerBytes = 256 << 20

// Options configure the mirror.
type Options struct {
	MaxBodyBytes    int64               // request bodies above this answer 413
	PublicBodyBytes int64               // the same for methods anyone may call
	JSON            *restjson.Marshaler // the REST JSON encoding
}

// New returns the REST handler. conn leads to the server's own Connect handlers.
//
// Mount it behind the authentication middleware: every route's policy is
// prechecked at the edge (who the caller is, admin or not) before its body is
// read, and the route's procedure and outcome are recorded for the access log.
// The full check, resource grants and rate limits included, runs on the hop.
func New(ctx context.Context, conn *grpc.ClientConn, services []protoreflect.ServiceDescriptor, opts Options) (http.Handler, error) {
	statuses := successStatuses(services)
	edge := edgeChecks(services, opts.MaxBodyBytes, opts.PublicBodyBytes)
	mux := runtime.NewServeMux(
		runtime.WithMiddlewares(edge),
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
		agnesv1.RegisterJiraServiceHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			return nil, err
		}
	}
	return shapeResponses(mux), nil
}

// edgeChecks runs on every matched REST route before the gateway reads the
// request: it records the procedure, prechecks its policy, then bounds and
// checks the body.
func edgeChecks(services []protoreflect.ServiceDescriptor, maxBody, publicBody int64) runtime.Middleware {
	policies := access.LoadPolicies(services...)
	procedures := map[string]string{} // "GET /api/x/{id=*}" → "/agnes.v1.S/M"
	for _, sd := range services {
		for i := range sd.Methods().Len() {
			m := sd.Methods().Get(i)
			rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
			for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
				if method, path := Binding(r); method != "" {
					procedures[method+" "+wildcardRE.ReplaceAllString(path, "{$1=*}")] = access.Procedure(m)
				}
			}
		}
	}
	return func(next runtime.HandlerFunc) runtime.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
			ctx := r.Context()
			pattern, _ := runtime.HTTPPattern(ctx)
			procedure := procedures[r.Method+" "+pattern.String()]
			record(ctx, procedure, nil)
			if err := access.Precheck(ctx, policies[procedure]); err != nil {
				ce := apierr.Convert(ctx, err)
				record(ctx, procedure, ce)
				apierr.WriteConnect(w, ce)
				return
			}
			limit := maxBody
			if policies[procedure].GetAccess() == agnesv1.Access_ACCESS_PUBLIC && publicBody > 0 {
				limit = publicBody // anyone may call it: read little
			}
			if !readBody(w, r, limit) {
				return
			}
			next(w, r, params)
		}
	}
}

var wildcardRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// Binding is an HTTP rule's method and path template ("" when it has none).
func Binding(r *annotations.HttpRule) (method, path string) {
	switch {
	case r.GetGet() != "":
		return http.MethodGet, r.GetGet()
	case r.GetPost() != "":
		return http.MethodPost, r.GetPost()
	case r.GetPut() != "":
		return http.MethodPut, r.GetPut()
	case r.GetPatch() != "":
		return http.MethodPatch, r.GetPatch()
	case r.GetDelete() != "":
		return http.MethodDelete, r.GetDelete()
	}
	return "", ""
}

// record notes the REST call's procedure and outcome for the access log.
// An empty procedure keeps the one already known.
func record(ctx context.Context, procedure string, err *connect.Error) {
	info := reqctx.From(ctx)
	if procedure == "" {
		if name, ok := runtime.RPCMethod(ctx); ok {
			procedure = name
		} else {
			_, procedure, _ = info.Outcome()
		}
	}
	code := "ok"
	if err != nil {
		code = err.Code().String()
	}
	info.SetRPC(strings.TrimPrefix(procedure, "/"), code)
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
	switch {
	case strings.HasPrefix(msg, "grpc: received message larger than max"):
		// The in-memory hop's own limit, in gRPC's words: say what it means.
		code, msg = connect.CodeOutOfRange, fmt.Sprintf("the answer is larger than the REST API carries "+
			"(%d bytes); ask for less (a smaller limit or page), or use the Connect or gRPC API", MaxAnswerBytes)
	case strings.HasPrefix(msg, "grpc: "), st.Code() == codes.Unknown, msg == "":
		// Transport text is not for callers.
		code, msg = connect.CodeInternal, "internal error (request id "+reqctx.From(ctx).RequestID+")"
	}
	record(ctx, "", connect.NewError(code, errors.New(msg)))
	apierr.WriteHTTP(w, apierr.HTTPStatus(code), code, msg)
}

func streamErrorHandler(ctx context.Context, err error) *status.Status {
	st := status.Convert(err)
	record(ctx, "", connect.NewError(connect.Code(st.Code()), errors.New(st.Message())))
	return st
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

// readBody reads the (bounded) request body before the gateway does: an
// oversized body answers 413 naming the limit and malformed JSON a 400 that says
// where it breaks, instead of the decoder's bare "unexpected EOF". It reports
// whether the request may go on.
func readBody(w http.ResponseWriter, r *http.Request, max int64) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	fail := func(status int, code connect.Code, msg string) bool {
		record(r.Context(), "", connect.NewError(code, errors.New(msg)))
		apierr.WriteHTTP(w, status, code, msg)
		return false
	}
	tooLarge := "request body too large (max " + strconv.FormatInt(max, 10) + " bytes)"
	if r.ContentLength > max {
		return fail(http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted, tooLarge)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return fail(http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted, tooLarge)
	case err != nil:
		return fail(http.StatusBadRequest, connect.CodeInvalidArgument, "could not read request body")
	}
	if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		return fail(http.StatusBadRequest, connect.CodeInvalidArgument, "malformed JSON body: "+err.Error())
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return true
}
