package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

// Transports the Connect clients can use.
const (
	HTTP1 = "h1"  // Connect protocol over HTTP/1.1
	H2C   = "h2c" // Connect protocol over HTTP/2 without TLS (prior knowledge)
)

func transportName(kind string) string {
	if kind == H2C {
		return "Connect over HTTP/2 (h2c)"
	}
	return "Connect over HTTP/1.1"
}

// newTransport returns a transport of the given kind with room for many
// concurrent connections to one host.
func newTransport(kind string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 512
	if kind == H2C {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		t.Protocols = &p
	}
	return t
}

// encodingRecorder remembers the content encodings the server answered with.
type encodingRecorder struct {
	next http.RoundTripper

	mu   sync.Mutex
	seen map[string]string // request kind → encoding
}

func (e *encodingRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := e.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	kind := "unary"
	enc := res.Header.Get("Content-Encoding")
	if ce := res.Header.Get("Connect-Content-Encoding"); ce != "" || strings.HasPrefix(res.Header.Get("Content-Type"), "application/connect+") {
		kind, enc = "stream", ce
	}
	if enc == "" {
		enc = "identity"
	}
	e.mu.Lock()
	if e.seen == nil {
		e.seen = map[string]string{}
	}
	e.seen[kind] = enc
	e.mu.Unlock()
	return res, nil
}

func (e *encodingRecorder) Seen() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	for k, v := range e.seen {
		out[k] = v
	}
	return out
}

// Agnes is one caller of one server over every protocol the benchmark uses.
type Agnes struct {
	URL   string
	Token string

	H1, H2C *sdk.Client // Connect over HTTP/1.1 and over h2c (the SDK's defaults otherwise)
	rec     map[string]*encodingRecorder
	rest    *http.Client // REST mirror, HTTP/1.1
}

// NewAgnes returns clients for the server at url.
func NewAgnes(url, token string) *Agnes {
	a := &Agnes{URL: url, Token: token, rec: map[string]*encodingRecorder{}}
	mk := func(kind string) *sdk.Client {
		r := &encodingRecorder{next: newTransport(kind)}
		a.rec[kind] = r
		return sdk.New(url, token, sdk.WithHTTPClient(&http.Client{Transport: r}))
	}
	a.H1 = mk(HTTP1)
	a.H2C = mk(H2C)
	a.rest = &http.Client{Transport: newTransport(HTTP1)}
	return a
}

// Connect returns the SDK client of a transport kind.
func (a *Agnes) Connect(kind string) *sdk.Client {
	if kind == H2C {
		return a.H2C
	}
	return a.H1
}

// Encodings reports the response encodings seen per client and call kind.
func (a *Agnes) Encodings() map[string]map[string]string {
	out := map[string]map[string]string{}
	for k, r := range a.rec {
		out[k] = r.Seen()
	}
	return out
}

// ConnectQuery runs a unary Query and returns the rows received.
func ConnectQuery(ctx context.Context, c *sdk.Client, sql string, limit int64) (int, error) {
	res, err := c.Query.Query(ctx, &agnesv1.QueryRequest{Sql: sql, Limit: limit})
	if err != nil {
		return 0, err
	}
	return len(res.GetRows()), nil
}

// StreamResult is what a streamed query delivered.
type StreamResult struct {
	Rows      int64
	Bytes     int64 // payload bytes (Arrow IPC) or NDJSON bytes
	Truncated bool
	// Compressed: the response came gzip-compressed (REST; Go's transport
	// decompressed it transparently).
	Compressed bool
}

// ConnectArrow streams a query through the SDK's Arrow reader (Connect,
// every batch read in place) and reads every batch.
func ConnectArrow(ctx context.Context, c *sdk.Client, sql string) (StreamResult, error) {
	var r StreamResult
	s, err := c.QueryArrow(ctx, &agnesv1.QueryStreamRequest{Sql: sql})
	if err != nil {
		return r, err
	}
	defer s.Close()
	r.Bytes = int64(len(s.Schema()))
	for s.Next() {
		r.Bytes += int64(len(s.Batch()))
		r.Rows += s.BatchRows()
	}
	if err := s.Err(); err != nil {
		return r, err
	}
	return r, checkSummary(&r, s.Summary())
}

// ConnectArrowGenerated streams a query as Arrow through the generated
// client's QueryStream (every message its own allocation) and reads every batch.
func ConnectArrowGenerated(ctx context.Context, c *sdk.Client, sql string) (StreamResult, error) {
	var r StreamResult
	stream, err := c.Query.QueryStream(ctx, &agnesv1.QueryStreamRequest{Sql: sql, Format: agnesv1.ResultFormat_RESULT_FORMAT_ARROW})
	if err != nil {
		return r, err
	}
	defer stream.Close()
	var sum *agnesv1.QuerySummary
	for stream.Receive() {
		switch ev := stream.Msg().GetEvent().(type) {
		case *agnesv1.QueryStreamResponse_Schema:
			r.Bytes += int64(len(ev.Schema.GetArrowSchema()))
		case *agnesv1.QueryStreamResponse_Batch:
			r.Bytes += int64(len(ev.Batch.GetArrowBatch()))
			r.Rows += ev.Batch.GetRowCount()
		case *agnesv1.QueryStreamResponse_Summary:
			sum = ev.Summary
		}
	}
	if err := stream.Err(); err != nil {
		return r, err
	}
	return r, checkSummary(&r, sum)
}

// checkSummary records the summary's truncation, checking that it agrees
// with the rows received.
func checkSummary(r *StreamResult, sum *agnesv1.QuerySummary) error {
	if sum == nil {
		return errors.New("stream ended without a summary")
	}
	r.Truncated = sum.GetTruncated()
	if sum.GetRows() != r.Rows {
		return fmt.Errorf("summary says %d rows, batches carried %d", sum.GetRows(), r.Rows)
	}
	return nil
}

// post sends a JSON body to the REST mirror.
func (a *Agnes) post(ctx context.Context, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.Token)
	res, err := a.rest.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return nil, fmt.Errorf("POST %s: HTTP %d: %s", path, res.StatusCode, bytes.TrimSpace(msg))
	}
	return res, nil
}

// RESTQuery runs POST /api/query and decodes the whole answer.
func (a *Agnes) RESTQuery(ctx context.Context, sql string, limit int64) (int, error) {
	body := map[string]any{"sql": sql}
	if limit > 0 {
		body["limit"] = limit
	}
	res, err := a.post(ctx, "/api/query", body)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var out struct {
		Rows     [][]any `json:"rows"`
		RowCount int     `json:"row_count"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return 0, err
	}
	return len(out.Rows), nil
}

// RESTStream runs POST /api/query/stream and reads the NDJSON to the end.
// Lines are counted, not decoded, except the last (the summary), which
// must account for every row.
func (a *Agnes) RESTStream(ctx context.Context, sql string) (StreamResult, error) {
	var r StreamResult
	res, err := a.post(ctx, "/api/query/stream", map[string]any{"sql": sql, "format": "RESULT_FORMAT_JSON"})
	if err != nil {
		return r, err
	}
	defer res.Body.Close()
	r.Compressed = res.Uncompressed
	br := bufio.NewReaderSize(res.Body, 1<<20)
	var last []byte
	for {
		line, err := br.ReadSlice('\n')
		r.Bytes += int64(len(line))
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: not the summary; skip its rest.
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				r.Bytes += int64(len(line))
			}
			last = nil
		} else if len(bytes.TrimSpace(line)) > 0 {
			last = append(last[:0], line...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return r, err
		}
	}
	var end struct {
		Result struct {
			Summary *struct {
				Rows      int64 `json:"rows"`
				Truncated bool  `json:"truncated"`
			} `json:"summary"`
		} `json:"result"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(last, &end); err != nil {
		return r, fmt.Errorf("last NDJSON line: %w", err)
	}
	if len(end.Error) > 0 {
		return r, fmt.Errorf("stream failed: %s", end.Error)
	}
	if end.Result.Summary == nil {
		return r, fmt.Errorf("stream ended without a summary: %.200s", last)
	}
	r.Rows, r.Truncated = end.Result.Summary.Rows, end.Result.Summary.Truncated
	return r, nil
}

// Rebuild calls POST /api/admin/rebuild and returns the new generation.
func (a *Agnes) Rebuild(ctx context.Context) (gen int64, problems int, err error) {
	res, err := a.post(ctx, "/api/admin/rebuild", map[string]any{})
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	var out struct {
		Generation int64             `json:"generation"`
		Problems   []json.RawMessage `json:"problems"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return 0, 0, err
	}
	return out.Generation, len(out.Problems), nil
}
