package apierr

import (
	"encoding/json"
	"net/http"

	"connectrpc.com/connect"
)

// Body is the JSON error body of every REST and plain-HTTP error.
type Body struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// HTTPStatus is the REST status of a code. FailedPrecondition is 409: the state of
// the resource conflicts with the request (last admin, system group), as the Python
// API answered.
func HTTPStatus(c connect.Code) int {
	switch c {
	case connect.CodeInvalidArgument, connect.CodeOutOfRange:
		return http.StatusBadRequest
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeAlreadyExists, connect.CodeAborted, connect.CodeFailedPrecondition:
		return http.StatusConflict
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case connect.CodeCanceled:
		return 499
	case connect.CodeUnimplemented:
		return http.StatusNotImplemented
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	case connect.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// WriteHTTP writes an error body with its status.
func WriteHTTP(w http.ResponseWriter, status int, code connect.Code, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Body{Detail: detail, Code: code.String()})
}

// WriteConnect writes a *connect.Error as a REST error (for plain handlers).
func WriteConnect(w http.ResponseWriter, err *connect.Error) {
	WriteConnectStatus(w, HTTPStatus(err.Code()), err)
}

// WriteConnectStatus is WriteConnect with another status than the code's (413
// for a body over its limit).
func WriteConnectStatus(w http.ResponseWriter, status int, err *connect.Error) {
	for k, v := range err.Meta() {
		if http.CanonicalHeaderKey(k) == "Retry-After" {
			w.Header()[k] = v
		}
	}
	WriteHTTP(w, status, err.Code(), err.Message())
}
