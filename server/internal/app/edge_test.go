package app

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A handler that gives up on a body after its read failed and closes it (as
// connect does) must not hand the connection back to a client that stalls
// mid-body: the connection ends at the body deadline. Closing used to lift
// the deadline first, and net/http's Close then waited for the rest of the
// body for ever.
func TestBodyDeadlineClosesAStalledBodyAfterClose(t *testing.T) {
	srv := httptest.NewServer(bodyDeadline(100*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err == nil {
			t.Error("reading a stalled body succeeded")
		}
		http.Error(w, "slow body", http.StatusRequestTimeout)
	})))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"em"); err != nil {
		t.Fatal(err)
	}
	// Far beyond the deadline: only a connection left open runs into it.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	status, err := r.ReadString('\n')
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection stayed open after the body deadline (answer %q)", status)
	}
	if !strings.Contains(status, "408") {
		t.Fatalf("answer %q, want the handler's 408", status)
	}
}

// The per-address listener's connections keep what net/http looks for on a
// TCP connection: ReadFrom (sendfile for downloads) and CloseWrite.
func TestCountedConnKeepsTCPFastPaths(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitConnsPerIP(ln, 4, nil)
	defer l.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(io.ReaderFrom); !ok {
		t.Error("no ReadFrom: net/http cannot send files with sendfile")
	}
	if _, ok := c.(interface{ CloseWrite() error }); !ok {
		t.Error("no CloseWrite: net/http cannot half-close before closing")
	}
}
