package soak

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agnesdata/agnes/internal/childproc"
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

	bin    string
	starts int
	proc   *childproc.Proc // the current process; nil before the first start
}

// StopAll stops every server the harness started and has not stopped.
func StopAll() { childproc.StopAll() }

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
	s.starts++
	p, err := childproc.Start(ctx, childproc.Spec{Name: s.Name, Bin: s.bin,
		Args: []string{"serve", "--config", s.Config, "--data-dir", s.DataDir, "--addr", "{addr}"}, Env: serverEnv(),
		LogPath: filepath.Join(s.Dir, fmt.Sprintf("server-%d.log", s.starts)), Health: "/api/health", Timeout: 3 * time.Minute})
	if err != nil {
		return err
	}
	s.proc, s.Addr, s.URL = p, p.Addr, p.URL
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

// Alive reports whether the server process runs.
func (s *Server) Alive() bool { return s.proc != nil && s.proc.Alive() }

// Pid is the server's process id.
func (s *Server) Pid() int { return s.proc.Pid }

// RSS is the server's resident set size in bytes.
func (s *Server) RSS() (int64, error) { return s.proc.RSS() }

// Kill ends the server with SIGKILL, as a crash or the OOM killer would.
func (s *Server) Kill() error {
	if !s.Alive() {
		return nil
	}
	return s.proc.Kill()
}

// Stop asks the server to exit (SIGTERM) and kills it after 20 s.
func (s *Server) Stop() error {
	if !s.Alive() {
		return nil
	}
	return s.proc.Stop()
}

// LogTail is the end of the current log, for error messages.
func (s *Server) LogTail(n int) string { return s.proc.Tail(n) }
