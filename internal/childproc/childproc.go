// Package childproc runs the servers a harness (make bench, make soak) starts
// as child processes: each in its own process group (a Ctrl-C reaches the
// harness, which stops its children itself), killed if the harness dies, its
// output in a log file, on a free loopback port, and ready once a health path
// answers 200.
package childproc

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

// Spec is what to start.
type Spec struct {
	Name string
	Bin  string
	// Args and Env (the child's whole environment) may name "{addr}": the
	// free loopback address the child is to listen on.
	Args, Env []string
	LogPath   string        // the child's stdout and stderr
	Health    string        // the path that answers 200 once the child is ready
	Timeout   time.Duration // to become ready
}

// Proc is a running child.
type Proc struct {
	Name    string
	Addr    string // 127.0.0.1:<port>
	URL     string // http://127.0.0.1:<port>
	Pid     int
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// stopGrace is how long Stop waits after SIGTERM before it kills.
const stopGrace = 20 * time.Second

// running are the children not stopped yet, for StopAll.
var running struct {
	sync.Mutex
	m map[*Proc]bool
}

// StopAll stops every child started and not stopped yet (on exit or a signal).
func StopAll() {
	running.Lock()
	list := make([]*Proc, 0, len(running.m))
	for p := range running.m {
		list = append(list, p)
	}
	running.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Go(func() { _ = p.Stop() })
	}
	wg.Wait()
}

// Start starts the child and returns once it is ready; a child that exits or
// is not ready in time is killed, and the error ends with its log's last lines.
func Start(ctx context.Context, s Spec) (*Proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(s.LogPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return nil, err
	}
	withAddr := func(in []string) []string {
		out := make([]string, len(in))
		for i, a := range in {
			out[i] = strings.ReplaceAll(a, "{addr}", addr)
		}
		return out
	}
	cmd := exec.Command(s.Bin, withAddr(s.Args)...)
	cmd.Env = withAddr(s.Env)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Proc{Name: s.Name, Addr: addr, URL: "http://" + addr, Pid: cmd.Process.Pid, LogPath: s.LogPath,
		cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.exited)
	}()
	running.Lock()
	if running.m == nil {
		running.m = map[*Proc]bool{}
	}
	running.m[p] = true
	running.Unlock()
	if err := p.waitReady(ctx, s.Health, s.Timeout); err != nil {
		_ = p.Kill()
		return nil, err
	}
	return p, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func (p *Proc) waitReady(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited during startup (%w); last lines of %s:\n%s", p.Name, p.err, p.LogPath, p.Tail(20))
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
			return fmt.Errorf("%s did not become ready within %s; last lines of %s:\n%s", p.Name, timeout, p.LogPath, p.Tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Alive reports whether the child runs.
func (p *Proc) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// RSS is the child's resident set size in bytes.
func (p *Proc) RSS() (int64, error) { return procfs.RSS(p.Pid) }

func (p *Proc) forget() {
	running.Lock()
	delete(running.m, p)
	running.Unlock()
}

// Kill ends the child with SIGKILL, as a crash or the OOM killer would, and
// waits for it.
func (p *Proc) Kill() error {
	p.forget()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.exited
	return nil
}

// Stop asks the child to exit (SIGTERM) and kills it after 20 s, which is an
// error.
func (p *Proc) Stop() error {
	p.forget()
	if !p.Alive() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within %s of SIGTERM", p.Name, stopGrace)
	}
}

// Tail is the last n lines of the child's log, for error messages.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
