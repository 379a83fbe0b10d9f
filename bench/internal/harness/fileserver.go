package harness

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ServeFiles is the file server baseline's process (scenario I): the plain
// net/http http.FileServer over dir under /files/, and GET /health, on addr
// until SIGTERM/SIGINT. No authentication, no logging per request.
func ServeFiles(addr, dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("/files/", http.StripPrefix("/files/", http.FileServer(http.Dir(dir))))
	log.Printf("http.FileServer on %s over %s", addr, dir)
	return serveUntilDone(ctx, addr, mux)
}

// serveUntilDone serves handler on addr until ctx is done, then shuts down
// gracefully (the harness's child servers).
func serveUntilDone(ctx context.Context, addr string, handler http.Handler) error {
	srv := &http.Server{Addr: addr, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// StartFileServer starts the file server as a child process: exe (the
// harness binary itself) run with -serve-files.
func StartFileServer(ctx context.Context, exe, dir, logPath string) (*proc, error) {
	return startProc(ctx, "file-server", logPath, os.Environ(), "/health", exe, "-serve-files", "{addr}", "-files-dir", dir)
}
