package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agnesdata/agnes/internal/childproc"
)

// proc is a child process the harness started: an Agnes server, the plain
// DuckDB-over-HTTP server or the file server.
type proc = childproc.Proc

// StopAll stops every child the harness started and has not stopped yet.
func StopAll() { childproc.StopAll() }

// startProc starts a child with AGNES_ADDR (and "{addr}" in its arguments)
// set to a free loopback address, and waits until GET healthPath answers 200.
func startProc(ctx context.Context, name, logPath string, env []string, healthPath string, bin string, args ...string) (*proc, error) {
	return childproc.Start(ctx, childproc.Spec{Name: name, Bin: bin, Args: args, Env: append(env, "AGNES_ADDR={addr}"),
		LogPath: logPath, Health: healthPath, Timeout: 5 * time.Minute})
}

// ServerOptions start an Agnes server.
type ServerOptions struct {
	Bin     string // bin/agnes-server
	DataDir string
	LogPath string
	Env     []string // extra environment, after the harness's own settings
}

// Server is a running agnes-server with a bootstrapped admin.
type Server struct {
	*proc
	DataDir string
	Token   string
}

// serverEnv is the environment of an agnes-server child: the harness's
// environment without any Agnes setting, plus the benchmark's.
func serverEnv(dataDir string, extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AGNES_") || k == "DATA_DIR" || k == "JWT_SECRET_KEY" {
			continue
		}
		env = append(env, kv)
	}
	var secret [32]byte
	_, _ = rand.Read(secret[:])
	env = append(env,
		"DATA_DIR="+dataDir,
		"JWT_SECRET_KEY="+hex.EncodeToString(secret[:]),
		"AGNES_RATE_LIMIT=false",
		"AGNES_QUERY_PER_USER=64",
		"AGNES_QUERY_MAX_ROWS=1000000000",
		"AGNES_QUERY_MAX_BYTES=1099511627776", // 1 TiB
		"AGNES_QUERY_TIMEOUT=30m",
	)
	return append(env, extra...)
}

// StartServer starts agnes-server serve on a free loopback port with a fresh
// state (the DATA_DIR's state/ and analytics/ are removed first; extracts/
// is kept), waits for /api/health and bootstraps an admin.
func StartServer(ctx context.Context, name string, o ServerOptions) (*Server, error) {
	for _, d := range []string{"state", "analytics"} {
		if err := os.RemoveAll(filepath.Join(o.DataDir, d)); err != nil {
			return nil, err
		}
	}
	p, err := startProc(ctx, name, o.LogPath, serverEnv(o.DataDir, o.Env), "/api/health", o.Bin, "serve")
	if err != nil {
		return nil, err
	}
	s := &Server{proc: p, DataDir: o.DataDir}
	if s.Token, err = bootstrap(ctx, p.URL); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// CleanState removes the server's state and analytics folders (after Stop).
func (s *Server) CleanState() error {
	return errors.Join(os.RemoveAll(filepath.Join(s.DataDir, "state")), os.RemoveAll(filepath.Join(s.DataDir, "analytics")))
}

func bootstrap(ctx context.Context, base string) (string, error) {
	body := `{"email":"bench@example.com","password":"bench-password-1"}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/auth/bootstrap", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("bootstrap: HTTP %d: %s", res.StatusCode, bytes.TrimSpace(b))
	}
	var out struct {
		AccessToken string `json:"access_token"`
		Role        string `json:"role"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.AccessToken == "" {
		return "", fmt.Errorf("bootstrap: unexpected answer %s", b)
	}
	return out.AccessToken, nil
}
