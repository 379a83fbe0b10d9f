package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/demo"
	"github.com/agnesdata/agnes/connectors/keboola"
)

type lookup map[string]connectors.Connector

func (l lookup) Source(name string) (connectors.Connector, bool) { c, ok := l[name]; return c, ok }
func (l lookup) SourceNames() []string {
	var out []string
	for _, n := range []string{"demo", "kbc", "slow"} {
		if _, ok := l[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

func TestMonitor(t *testing.T) {
	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"Invalid access token","code":"storage.tokenInvalid","exceptionId":"exception-1"}`)
	}))
	defer refused.Close()
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hang)
	kbc, err := keboola.New("kbc", keboola.Settings{StackURL: refused.URL, Token: connectors.NewSecret("secret-token-1")})
	if err != nil {
		t.Fatal(err)
	}
	stuck, err := keboola.New("slow", keboola.Settings{StackURL: slow.URL, Token: connectors.NewSecret("secret-token-2")})
	if err != nil {
		t.Fatal(err)
	}
	m := New(lookup{"demo": demo.New(), "kbc": kbc, "slow": stuck}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.Timeout = 200 * time.Millisecond

	if got := fmt.Sprint(m.List()); !strings.Contains(got, "demo demo local") || !strings.Contains(got, "kbc keboola unchecked") {
		t.Errorf("before any check: %s", got)
	}
	m.VerifyAll(context.Background())
	h := m.List()
	if h[1].Status != Failing || !strings.Contains(h[1].Message, "Keboola rejected the token for source kbc") || h[1].CheckedAt.IsZero() {
		t.Errorf("refused token: %+v", h[1])
	}
	if h[2].Status != Failing || h[2].Message != "the source did not answer in time" {
		t.Errorf("no answer: %+v", h[2])
	}
	for _, x := range h {
		if strings.Contains(x.Message, "secret-token") {
			t.Errorf("a token in %q", x.Message)
		}
	}
	if _, ok := m.Verify(context.Background(), "nope"); ok {
		t.Error("an unknown source was verified")
	}
}

func TestMessage(t *testing.T) {
	_, err := http.Get("http://127.0.0.1:1/v2/storage?token=x")
	if got := Message(fmt.Errorf("source kbc: %w", err)); !strings.HasPrefix(got, "cannot reach 127.0.0.1:1: ") || strings.Contains(got, "token") {
		t.Errorf("transport error: %q", got)
	}
	if got := Message(errors.New("open /etc/secret.json: bad key AAAA")); got != "the check failed (see the server log)" {
		t.Errorf("other error: %q", got)
	}
}
