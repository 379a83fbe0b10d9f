package apitest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/server/internal/config"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// A request refused before its body is read (no or a bad token) is answered
// at once over HTTP/1.1, with the connection closed, on every kind of route:
// the server neither reads the body nor waits for a client that stalls
// mid-body until body_timeout.
func TestRefusalsDoNotWaitForTheBody(t *testing.T) {
	s := ts.New(t, ts.WithConfig(func(c *config.Config) { c.Limits.BodyTimeout = time.Minute }))
	addr := strings.TrimPrefix(s.URL, "http://")
	for _, route := range []struct{ path, contentType string }{
		{"/api/query", "application/json"},                               // REST mirror
		{"/agnes.v1.QueryService/Query", "application/proto"},            // Connect
		{"/api/upload", "multipart/form-data; boundary=x"},               // plain route
		{"/api/admin/register-table", "application/json; charset=utf-8"}, // REST, admin
	} {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = io.WriteString(conn, "POST "+route.path+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-a-token\r\n"+
			"Content-Type: "+route.contentType+"\r\nContent-Length: 100000\r\n\r\n{\"sql")
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err, route.path)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		require.Equal(t, http.StatusUnauthorized, res.StatusCode, route.path)
		require.Less(t, time.Since(start), 5*time.Second, "%s: answered only after the body deadline", route.path)
		require.True(t, res.Close, "%s: the connection ends with the refusal", route.path)
		_, err = io.Copy(io.Discard, br) // until the server closes
		if !errors.Is(err, syscall.ECONNRESET) {
			require.NoError(t, err, route.path)
		}
		require.Less(t, time.Since(start), 5*time.Second, "%s: the connection stayed open until the body deadline", route.path)
		_ = conn.Close()
	}
}

// Requests whose body is read to its end keep their connection, also when
// the answer is an error.
func TestReadBodiesKeepTheConnection(t *testing.T) {
	s := ts.New(t)
	client := &http.Client{Transport: &http.Transport{}}
	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
	for _, call := range []struct{ path, body string }{
		{"/api/query", `{"sql":"SELECT 1"}`},
		{"/api/query", `{"sql":"SELEC 1"}`},
		{"/agnes.v1.QueryService/Query", `{"sql":"SELECT 1"}`},
		{"/api/query", `{"sql":"SELECT 2"}`},
		{"/api/query/stream", `{"sql":"SELECT 3"}`},
		{"/api/query", `{"sql":"SELECT 4"}`},
	} {
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
			http.MethodPost, s.URL+call.path, strings.NewReader(call.body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.AdminToken)
		res, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		require.False(t, res.Close, "%s %s: Connection: close", call.path, call.body)
	}
	require.Equal(t, []bool{false, true, true, true, true, true}, reused)
}
