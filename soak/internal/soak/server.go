package soak

import (
	"context"
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

// Server is agnes-server running as a child process: the real binary, its
// own DATA_DIR and config file, on a free loopback port. It can be stopped,
// killed (SIGKILL, as a crash) and started again on the same DATA_DIR.
type Server struct {
	Name    string
	Dir     string // the scenario's folder: config.yaml, data/, server-N.log
	DataDir string
	Config  string // config.yaml's path
	URL     string // http://127.0.0.1:<port>
	Addr    string

	bin     string
	starts  int
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// children are the servers still running, for cleanup on exit or a signal.
var children struct {
	sync.Mutex
	m map[*Server]bool
}

// StopAll stops every server the harness started and has not stopped.
func StopAll() {
	children.Lock()
	list := make([]*Server, 0, len(children.m))
	for s := range children.m {
		list = append(list, s)
	}
	children.Unlock()
	var wg sync.WaitGroup
	for _, s := range list {
		wg.Go(func() { _ = s.Stop() })
	}
	wg.Wait()
}

// StartServer writes config (YAML) to dir/config.yaml and starts bin serve
// with a fresh dir/data. It returns once /api/health answers 200.
func StartServer(ctx context.Context, bin, name, dir, config string) (*Server, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Server{Name: name, Dir: dir, DataDir: filepath.Join(dir, "data"), Config: filepath.Join(dir, "config.yaml"), bin: bin}
	if err := os.WriteFile(s.Config, []byte(config), 0o644); err != nil {
		return nil, err
	}
	return s, s.Start(ctx)
}

// Command is the command line the server runs with (for the report).
func (s *Server) Command() string {
	return fmt.Sprintf("agnes-server serve --config %s --data-dir %s --addr %s", s.Config, s.DataDir, s.Addr)
}

// Start starts the server (again) on a new free port, with the same config
// and DATA_DIR.
func (s *Server) Start(ctx context.Context) error {
	if s.Alive() {
		return fmt.Errorf("%s is already running", s.Name)
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	s.starts++
	s.Addr, s.URL = addr, "http://"+addr
	s.logPath = filepath.Join(s.Dir, fmt.Sprintf("server-%d.log", s.starts))
	logf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "serve", "--config", s.Config, "--data-dir", s.DataDir, "--addr", addr)
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (a Ctrl-C reaches the harness, which stops it),
	// and killed when the harness dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		_ = logf.Close()
		close(s.exited)
	}()
	children.Lock()
	if children.m == nil {
		children.m = map[*Server]bool{}
	}
	children.m[s] = true
	children.Unlock()
	if err := s.waitHealthy(ctx, 3*time.Minute); err != nil {
		_ = s.Kill()
		return err
	}
	return nil
}

// serverEnv is a minimal environment: nothing from the harness's own
// AGNES_*, DATA_DIR, JWT or source variables reaches the server, so the
// config file is the whole configuration.
func serverEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func (s *Server) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited during startup (%w); last lines of %s:\n%s", s.Name, s.waitErr, s.logPath, tail(s.logPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if res, err := client.Get(s.URL + "/api/health"); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not become healthy within %s; last lines of %s:\n%s", s.Name, timeout, s.logPath, tail(s.logPath, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Alive reports whether the server process runs.
func (s *Server) Alive() bool {
	if s.exited == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// RSS is the server's resident set size in bytes.
func (s *Server) RSS() (int64, error) { return procfs.RSS(s.Pid()) }

// Kill ends the server with SIGKILL, as a crash or the OOM killer would.
func (s *Server) Kill() error {
	if !s.Alive() {
		return nil
	}
	children.Lock()
	delete(children.m, s)
	children.Unlock()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-s.exited
	return nil
}

// Stop asks the server to exit (SIGTERM) and kills it after 20 s.
func (s *Server) Stop() error {
	if !s.Alive() {
		return nil
	}
	children.Lock()
	delete(children.m, s)
	children.Unlock()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("%s did not stop within 20 s of SIGTERM", s.Name)
	}
}

// LogTail is the end of the current log, for error messages.
func (s *Server) LogTail(n int) string { return tail(s.logPath, n) }

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
