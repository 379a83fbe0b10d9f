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
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agnesdata/agnes/internal/procfs"
)

// proc is a child process the harness started: an Agnes server or the plain
// DuckDB-over-HTTP server.
type proc struct {
	Name    string
	URL     string // http://127.0.0.1:<port>
	Pid     int
	LogPath string

	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // Wait's result, after exited is closed
}

// procs are all children still running, for cleanup on exit or a signal.
var procs struct {
	sync.Mutex
	m map[*proc]bool
}

// StopAll stops every child the harness started and has not stopped yet.
func StopAll() {
	procs.Lock()
	list := make([]*proc, 0, len(procs.m))
	for p := range procs.m {
		list = append(list, p)
	}
	procs.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Go(func() { _ = p.Stop() })
	}
	wg.Wait()
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startProc starts a child in its own process group (a Ctrl-C reaches the
// harness, which stops the children itself), killed if the harness dies,
// with stdout and stderr in logPath. It waits until GET url+healthPath
// answers 200.
func startProc(ctx context.Context, name, logPath string, env []string, healthPath string, bin string, args ...string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "{addr}", addr)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(env, "AGNES_ADDR="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{Name: name, URL: "http://" + addr, Pid: cmd.Process.Pid, LogPath: logPath, cmd: cmd, log: logf, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	procs.Lock()
	if procs.m == nil {
		procs.m = map[*proc]bool{}
	}
	procs.m[p] = true
	procs.Unlock()

	if err := p.waitHealthy(ctx, healthPath, 5*time.Minute); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

func (p *proc) waitHealthy(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited during startup (%w); last lines of %s:\n%s", p.Name, p.err, p.LogPath, tail(p.LogPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
		if res, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not become healthy within %s; last lines of %s:\n%s", p.Name, timeout, p.LogPath, tail(p.LogPath, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop asks the child to exit (SIGTERM), and kills it after 15 s.
func (p *proc) Stop() error {
	procs.Lock()
	delete(procs.m, p)
	procs.Unlock()
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	return p.log.Close()
}

// Alive reports whether the child is still running.
func (p *proc) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// RSS is the child's resident set size in bytes.
func (p *proc) RSS() (int64, error) { return procfs.RSS(p.Pid) }

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
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
