package harness

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// PlainHandler is an unhardened DuckDB-over-HTTP endpoint: POST /query with
// {"sql": "..."} runs the SQL as is (no authentication, no sandbox, no
// limits) and answers {"columns": [...], "rows": [[...]], "row_count": n}.
// GET /health answers 200.
func PlainHandler(db *sql.DB) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /query", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			SQL string `json:"sql"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 10<<20)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rows, err := db.QueryContext(r.Context(), req.SQL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out := [][]any{}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			for i, v := range vals {
				vals[i] = jsonValue(v)
			}
			out = append(out, vals)
		}
		if err := rows.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"columns": cols, "rows": out, "row_count": len(out)})
	})
	return mux
}

// ServePlain is the plain server's process: it opens parquet as view big in
// an in-memory DuckDB and serves PlainHandler on addr until SIGTERM/SIGINT.
func ServePlain(addr, parquet string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	db, err := openParquetDB(ctx, parquet)
	if err != nil {
		return err
	}
	defer db.Close()
	log.Printf("plain DuckDB-over-HTTP server on %s over %s", addr, parquet)
	return serveUntilDone(ctx, addr, PlainHandler(db))
}

// StartPlain starts the plain server as a child process: exe (the harness
// binary itself) run with -serve-plain.
func StartPlain(ctx context.Context, exe, parquet, logPath string) (*proc, error) {
	return startProc(ctx, "plain-http", logPath, os.Environ(), "/health", exe, "-serve-plain", "{addr}", "-plain-parquet", parquet)
}

// PlainQuery posts sql to the plain server and decodes the whole answer.
func PlainQuery(ctx context.Context, c *http.Client, base, sql string) (int, error) {
	b, _ := json.Marshal(map[string]string{"sql": sql})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/query", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return 0, errors.New("plain server: " + res.Status + ": " + string(msg))
	}
	var out struct {
		Rows [][]any `json:"rows"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return 0, err
	}
	return len(out.Rows), nil
}
