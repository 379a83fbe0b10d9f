package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// REST answers never carry gRPC's transport text (issue #11, L5).
func TestErrorsCarryNoTransportText(t *testing.T) {
	for _, err := range []error{
		status.Error(codes.ResourceExhausted, "grpc: received message larger than max (300000000 vs. 268435456)"),
		status.Error(codes.Unavailable, "grpc: the client connection is closing"),
		status.Error(codes.Unknown, "something internal"),
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/api/x", nil)
		errorHandler(req.Context(), nil, nil, rec, req, err)
		var body struct{ Detail, Code string }
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		require.NotContains(t, body.Detail, "grpc:")
		require.NotContains(t, body.Detail, "something internal")
		require.NotEmpty(t, body.Code)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	errorHandler(req.Context(), nil, nil, rec, req,
		status.Error(codes.ResourceExhausted, "grpc: received message larger than max (300000000 vs. 268435456)"))
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Contains(t, rec.Body.String(), "larger than the REST API carries")
}
