package engine

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	bindings "github.com/duckdb/duckdb-go-bindings"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/server/internal/ordered"
)

// This file is the engine's only contact with DuckDB: a generation's
// instance, its pool of connections, and one way to run a statement on a
// connection, streaming. Everything goes through DuckDB's C API
// (duckdb-go-bindings) rather than database/sql: duckdb-go materializes a
// whole result before handing out its first row, and keeps the connection
// handle to itself.

// interruptEvery is how often a cancelled query's connection is interrupted
// again until the query returns: DuckDB clears the flag when a query starts,
// so one interrupt that lands between two steps could be lost.
const interruptEvery = 100 * time.Millisecond

// streamingBuffer is how far (in DuckDB's format) a streaming query may
// run ahead of its reader, per query. It trades time to first batch for
// throughput: DuckDB hands out the first chunk only once the buffer is
// full (or the result complete). With DuckDB's default, 976.5 KiB, the
// first batch of a big result comes after ~10 ms, but the scanning threads
// keep stalling on the full buffer: a streamed scan costs 15–20% more CPU
// than a materialized one, and BenchmarkRunArrowScan (10M rows, engine /
// duckdb-go's materialized Arrow) came out at ~1.5. 16 MB: ~1.0–1.1, first
// batch after ~50–100 ms; 32 MB: ~0.9, ~100–300 ms, and end to end (a 10M-row
// Arrow stream over Connect) about 10% faster than 16 MB, with 64 MB no better.
// 32 MB it is: a big result's first batch a little later, all of it sooner. It is a connection
// (LOCAL) setting, refused once the configuration is locked, so the pool
// opens its connections before the lock (pool.fill).
const streamingBuffer = "32MB"

// errNoStatement is a query string with no statement in it.
var errNoStatement = errors.New("no statement")

// openDatabase opens a DuckDB instance of its own (no instance cache: the
// generation is the only owner, so closing it really closes the file).
func openDatabase(path string, config map[string]string) (bindings.Database, error) {
	var cfg bindings.Config
	if bindings.CreateConfig(&cfg) == bindings.StateError {
		bindings.DestroyConfig(&cfg)
		return bindings.Database{}, errors.New("create config")
	}
	defer bindings.DestroyConfig(&cfg)
	for k, v := range config {
		if bindings.SetConfig(cfg, k, v) == bindings.StateError {
			return bindings.Database{}, fmt.Errorf("config %s=%s", k, v)
		}
	}
	var db bindings.Database
	var msg string
	if bindings.OpenExt(path, &db, cfg, &msg) == bindings.StateError {
		bindings.Close(&db)
		return bindings.Database{}, dbError(bindings.ErrorTypeInvalid, msg)
	}
	return db, nil
}

// conn is one DuckDB connection. A conn is used by one goroutine at a time;
// only the interrupter of its running query touches it concurrently.
type conn struct {
	c bindings.Connection
	// dirty: a result was abandoned before its end. DuckDB keeps such a
	// query's state (sort runs, hash tables, buffered chunks) on the
	// connection until its next statement or disconnect; the pool runs a
	// statement before the connection waits idle (pool.put).
	dirty bool
	// prepared keeps this connection's most recent SELECTs prepared (text →
	// statement), so a repeated query skips parsing, binding and planning.
	// Statements belong to the connection; they are freed with it.
	prepared map[string]bindings.PreparedStatement
	recent   []string // prepared's keys, oldest first
}

// maxPrepared bounds the prepared statements one connection keeps.
const maxPrepared = 32

// keep remembers a prepared SELECT, freeing the oldest beyond maxPrepared.
func (c *conn) keep(query string, ps bindings.PreparedStatement) {
	if c.prepared == nil {
		c.prepared = map[string]bindings.PreparedStatement{}
	}
	c.prepared[query] = ps
	c.recent = append(c.recent, query)
	if len(c.recent) > maxPrepared {
		old := c.recent[0]
		c.recent = c.recent[1:]
		stale := c.prepared[old]
		delete(c.prepared, old)
		bindings.DestroyPrepare(&stale)
	}
}

// forget frees the prepared statement kept for query, if any.
func (c *conn) forget(query string) {
	ps, ok := c.prepared[query]
	if !ok {
		return
	}
	delete(c.prepared, query)
	c.recent = slices.DeleteFunc(c.recent, func(q string) bool { return q == query })
	bindings.DestroyPrepare(&ps)
}

func connect(db bindings.Database) (*conn, error) {
	var c bindings.Connection
	if bindings.Connect(db, &c) == bindings.StateError {
		bindings.Disconnect(&c)
		return nil, errors.New("connect to DuckDB")
	}
	return &conn{c: c}, nil
}

// exec runs one statement of any kind and reads its result to the end.
func (c *conn) exec(ctx context.Context, query string, args ...driver.NamedValue) error {
	st, err := c.query(ctx, query, false, args...)
	if err != nil {
		return err
	}
	defer st.close()
	return st.drain()
}

// close frees the kept statements and disconnects; DuckDB cleans up whatever
// query state the connection still holds.
func (c *conn) close() {
	for q, ps := range c.prepared {
		bindings.DestroyPrepare(&ps)
		delete(c.prepared, q)
	}
	c.recent = nil
	bindings.Disconnect(&c.c)
}

// watch interrupts c once ctx is done, and again every interruptEvery,
// until the returned func is called. That func returns only when no more
// interrupt can come, so the connection is safe to hand on. Nothing runs
// (no goroutine) unless ctx ends while the statement does.
func (c *conn) watch(ctx context.Context) func() {
	stop, exited := make(chan struct{}), make(chan struct{})
	unregister := context.AfterFunc(ctx, func() {
		defer close(exited)
		tick := time.NewTicker(interruptEvery)
		defer tick.Stop()
		for {
			bindings.Interrupt(c.c)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	return func() {
		if unregister() {
			return // the interrupter never started
		}
		close(stop)
		<-exited
	}
}

// stream is a running statement's result, read one DuckDB chunk (up to
// 2048 rows) at a time as an Arrow record batch. DuckDB computes the result
// as it is read, running ahead at most the connection's streaming buffer
// (streamingBuffer), so memory does not grow with the size of the result.
type stream struct {
	c      *conn
	ps     bindings.PreparedStatement
	kept   bool // ps belongs to the connection's prepared statements
	res    bindings.Result
	opts   bindings.ArrowOptions
	types  []bindings.LogicalType
	names  []string
	schema *arrow.Schema
	ended  bool // DuckDB returned its last chunk, or failed
	// delivered: the caller passed part of the result on (its columns or
	// rows), so the query can no longer be started again unseen.
	delivered bool
	stop      func()
}

// query starts one statement on c. With selectOnly, a statement DuckDB does
// not classify as a SELECT is refused with ErrInvalidQuery before it runs.
// A string holding more than one statement is always refused: preparing it
// would execute all but the last. args bind to ? placeholders in order.
// Cancelling ctx interrupts the statement until the stream is closed.
func (c *conn) query(ctx context.Context, query string, selectOnly bool, args ...driver.NamedValue) (*stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &stream{c: c, stop: c.watch(ctx)}
	if err := s.start(query, selectOnly, args); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *stream) start(query string, selectOnly bool, args []driver.NamedValue) error {
	if err := s.prepare(query, selectOnly, args); err != nil {
		return err
	}
	return s.execute()
}

// prepare readies the statement: a SELECT this connection prepared before is
// reused (only SELECTs without arguments are kept, once they passed the checks).
func (s *stream) prepare(query string, selectOnly bool, args []driver.NamedValue) error {
	reusable := selectOnly && len(args) == 0
	if ps, ok := s.c.prepared[query]; ok && reusable {
		s.ps, s.kept = ps, true
		return nil
	}
	c := s.c.c
	var ext bindings.ExtractedStatements
	n := bindings.ExtractStatements(c, query, &ext)
	defer bindings.DestroyExtracted(&ext)
	switch {
	case n == 0:
		s.ended = true
		if msg := bindings.ExtractStatementsError(ext); msg != "" {
			return dbError(bindings.ErrorTypeParser, msg)
		}
		return errNoStatement
	case n > 1:
		s.ended = true
		return &QueryError{Message: ErrInvalidQuery.Error(), err: ErrInvalidQuery}
	}
	if bindings.PrepareExtractedStatement(c, ext, 0, &s.ps) == bindings.StateError {
		s.ended = true
		return dbError(bindings.ErrorTypeInvalid, bindings.PrepareError(s.ps))
	}
	if selectOnly && bindings.PreparedStatementType(s.ps) != bindings.StatementTypeSelect {
		s.ended = true
		return &QueryError{Message: ErrInvalidQuery.Error(), err: ErrInvalidQuery}
	}
	if err := bind(s.ps, args); err != nil {
		s.ended = true
		return err
	}
	if reusable {
		s.c.keep(query, s.ps)
		s.kept = true
	}
	return nil
}

// execute runs the prepared statement as a streaming result.
func (s *stream) execute() error {
	var pending bindings.PendingResult
	if bindings.PendingPreparedStreaming(s.ps, &pending) == bindings.StateError {
		s.ended = true
		err := dbError(bindings.ErrorTypeInvalid, bindings.PendingError(pending))
		bindings.DestroyPending(&pending)
		return err
	}
	state := bindings.ExecutePending(pending, &s.res)
	bindings.DestroyPending(&pending)
	if state == bindings.StateError {
		s.ended = true // a failed query is cleaned up by DuckDB
		return dbError(bindings.ResultErrorType(&s.res), bindings.ResultError(&s.res))
	}

	cols := bindings.ColumnCount(&s.res)
	s.types = make([]bindings.LogicalType, cols)
	s.names = make([]string, cols)
	for i := range cols {
		s.names[i] = bindings.ColumnName(&s.res, i)
		s.types[i] = bindings.ColumnLogicalType(&s.res, i)
	}
	s.opts = bindings.ResultGetArrowOptions(&s.res)
	schema, ed := bindings.NewArrowSchema(s.opts, s.types, s.names)
	if err := errorData(ed); err != nil {
		return fmt.Errorf("arrow schema: %w", err)
	}
	s.schema = schema
	return nil
}

// next returns the next chunk as a record batch the caller must release,
// or nil at the end of the result.
func (s *stream) next() (arrow.RecordBatch, error) {
	chunk, err := s.fetch()
	if chunk.Ptr == nil || err != nil {
		return nil, err
	}
	c := s.convert(chunk)
	return c.rec, c.err
}

// fetch returns the next non-empty chunk, which the caller must convert,
// or a nil chunk at the end of the result.
func (s *stream) fetch() (bindings.DataChunk, error) {
	for !s.ended {
		chunk := bindings.FetchChunk(s.res)
		if chunk.Ptr == nil {
			s.ended = true
			if msg := bindings.ResultError(&s.res); msg != "" {
				return chunk, dbError(bindings.ResultErrorType(&s.res), msg)
			}
			return chunk, nil
		}
		if bindings.DataChunkGetSize(chunk) > 0 {
			return chunk, nil
		}
		bindings.DestroyDataChunk(&chunk)
	}
	return bindings.DataChunk{}, nil
}

// converted is a chunk turned into a record batch.
type converted struct {
	rec arrow.RecordBatch
	err error
}

// convert turns a fetched chunk into a record batch and frees the chunk. It
// copies every value (the batch owns its buffers), and may run on any
// goroutine, concurrently with fetch and other converts.
func (s *stream) convert(chunk bindings.DataChunk) converted {
	rec, ed := bindings.DataChunkToArrowArray(s.opts, s.schema, chunk)
	bindings.DestroyDataChunk(&chunk)
	if err := errorData(ed); err != nil {
		return converted{err: fmt.Errorf("arrow batch: %w", err)}
	}
	return converted{rec: rec}
}

// Converting chunks to Arrow is, after computing them, the largest cost of a
// big result, and fetch alone would do it on one thread: records spreads it
// over converters goroutines, with at most convertAhead chunks in flight.
const (
	converters   = 2
	convertAhead = 8
)

// errStop ends records early without an error.
var errStop = errors.New("stop")

// records hands the rest of the result to fn, batch by batch and in order, on
// one goroutine. Chunks are fetched here and converted on other goroutines
// meanwhile. fn returning errStop ends the reading without an error.
func (s *stream) records(ctx context.Context, fn func(arrow.RecordBatch) error) error {
	p := ordered.Pipeline[bindings.DataChunk, converted]{
		Workers: converters, Ahead: convertAhead, Work: s.convert,
		Emit: func(c converted) error {
			if c.err != nil {
				return c.err
			}
			defer c.rec.Release()
			return fn(c.rec)
		},
		Discard: func(c converted) {
			if c.rec != nil {
				c.rec.Release()
			}
		},
	}
	err := func() error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			chunk, err := s.fetch()
			if chunk.Ptr == nil || err != nil {
				return err
			}
			if p.Push(chunk) != nil {
				bindings.DestroyDataChunk(&chunk)
				return nil //nolint:nilerr // the pipeline's error is reported by Drain
			}
		}
	}()
	if derr := p.Drain(); err == nil {
		err = derr
	}
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// drain reads the rest of the result.
func (s *stream) drain() error {
	for {
		rec, err := s.next()
		if rec == nil || err != nil {
			return err
		}
		rec.Release()
	}
}

// close stops the interrupter and frees the result. A result left before
// its end is interrupted (background threads stop at once) and marks the
// connection dirty.
func (s *stream) close() {
	s.stop()
	if !s.ended {
		bindings.Interrupt(s.c.c)
		s.c.dirty = true
	}
	bindings.DestroyResult(&s.res)
	bindings.DestroyArrowOptions(&s.opts)
	for i := range s.types {
		bindings.DestroyLogicalType(&s.types[i])
	}
	if !s.kept {
		bindings.DestroyPrepare(&s.ps)
	}
}

// bind binds database/sql-style arguments by position.
func bind(ps bindings.PreparedStatement, args []driver.NamedValue) error {
	if want := int(bindings.NParams(ps)); want != len(args) {
		return dbError(bindings.ErrorTypeInvalidInput,
			fmt.Sprintf("Invalid Input Error: the statement has %d parameters, %d values were given", want, len(args)))
	}
	for i, a := range args {
		idx := bindings.IdxT(i + 1)
		var state bindings.State
		switch v := a.Value.(type) {
		case nil:
			state = bindings.BindNull(ps, idx)
		case string:
			state = bindings.BindVarchar(ps, idx, v)
		case int64:
			state = bindings.BindInt64(ps, idx, v)
		case float64:
			state = bindings.BindDouble(ps, idx, v)
		case bool:
			state = bindings.BindBoolean(ps, idx, v)
		case []byte:
			state = bindings.BindBlob(ps, idx, v)
		default:
			return fmt.Errorf("argument %d: unsupported type %T", i+1, a.Value)
		}
		if state == bindings.StateError {
			return fmt.Errorf("argument %d: bind failed", i+1)
		}
	}
	return nil
}

// dbError is DuckDB's error, as duckdb-go reports it.
func dbError(t bindings.ErrorType, msg string) error {
	return &duckdb.Error{Type: duckdb.ErrorType(t), Msg: msg}
}

// errorData turns (and destroys) a duckdb_error_data.
func errorData(ed bindings.ErrorData) error {
	defer bindings.DestroyErrorData(&ed)
	if !bindings.ErrorDataHasError(ed) {
		return nil
	}
	return dbError(bindings.ErrorDataErrorType(ed), bindings.ErrorDataMessage(ed))
}

// pool holds a generation's connections: max of them, opened by fill
// before the instance is locked (so they can take the streaming buffer
// setting), at most max in use.
type pool struct {
	db    bindings.Database
	slots chan struct{} // a token per connection in use

	mu     sync.Mutex
	idle   []*conn
	open   int // idle + in use
	closed bool
}

func newPool(db bindings.Database, max int) *pool {
	return &pool{db: db, slots: make(chan struct{}, max)}
}

// fill opens the pool's connections. It runs during setup, before the
// configuration is locked.
func (p *pool) fill(ctx context.Context) error {
	for range cap(p.slots) {
		c, err := connect(p.db)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.idle = append(p.idle, c)
		p.open++
		p.mu.Unlock()
		if err := c.exec(ctx, "SET streaming_buffer_size = '"+streamingBuffer+"'"); err != nil {
			return err
		}
	}
	return nil
}

// get returns a connection, waiting for one to be free until ctx is done.
func (p *pool) get(ctx context.Context) (*conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	// A connection was dropped (see put). Its replacement cannot change
	// settings any more and streams with DuckDB's default buffer.
	p.open++
	p.mu.Unlock()
	c, err := connect(p.db)
	if err != nil {
		p.mu.Lock()
		p.open--
		p.mu.Unlock()
		<-p.slots
		return nil, err
	}
	return c, nil
}

// put returns a connection from get. A dirty one first runs a trivial
// statement, which makes DuckDB free the abandoned query's state; if that
// fails the connection is disconnected instead.
func (p *pool) put(c *conn) {
	defer func() { <-p.slots }()
	if c.dirty {
		c.dirty = false
		if err := c.exec(context.Background(), "SELECT 1"); err != nil || c.dirty {
			c.dirty = true
		}
	}
	p.mu.Lock()
	keep := !c.dirty && !p.closed
	if keep {
		p.idle = append(p.idle, c)
	} else {
		p.open--
	}
	p.mu.Unlock()
	if !keep {
		c.close()
	}
}

// openConns is the number of connections open, idle or in use.
func (p *pool) openConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

// close disconnects the idle connections; ones in use are disconnected
// when they are put back. The caller closes the database once none are in
// use.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.open -= len(idle)
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}
