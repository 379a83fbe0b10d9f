package querysvc

import (
	"errors"
	"io"
	"runtime"
	"strconv"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/ordered"
)

// answer is a unary Query's result, encoded as it is read: DuckDB's Arrow
// batches go straight to rows in the answer's wire form, with no value
// objects in between. The rows are held (one chunk per DuckDB chunk, or one
// buffer, below) until the query has ended, so a query that fails midway is
// answered with an error and nothing partial. What is held is bounded by the
// byte limit, which counts the encoded rows themselves: a chunk that would
// cross it is cut at a row boundary and the answer marked truncated.
//
// An answer handed over as one slice (oneSlice: Connect and gRPC, whose codec
// returns one) is gathered into one buffer instead, sized once when the
// second batch comes (an answer of one batch is copied once either way) for
// rowCap rows at their size so far plus a sixteenth, within the byte limit
// and the server's budget. Gathering the chunks at the end would copy every
// row a second time onto fresh pages: 0.16–0.26 s of a 98 MB answer on the
// build machine, where a first touch of memory costs far more than the copy
// (ADR 7a). Rows beyond the estimate go on as chunks, gathered at the end as
// before. An estimate above what comes (fewer rows than the limit) reserves
// address space and budget, never more than the byte limit, until the answer
// is sent; pages never written are not touched.
type answer struct {
	form     form
	maxBytes int64
	rowCap   int64 // the most rows the engine sends (the row limit)
	oneSlice bool
	// memory is the server-wide budget for held answers; held is this one's
	// share (the chunks' lengths and the buffer's capacity).
	memory *semaphore.Weighted
	held   int64

	columns, types []string
	whole          []byte   // oneSlice: head and rows, followed by chunks if they did not fit
	chunks         [][]byte // encoded rows: JSON arrays each after a comma, or protobuf rows fields
	bytes          int64    // of rows held
	rows           int64
	truncated      bool
	pipe           *ordered.Pipeline[arrow.RecordBatch, encodedRows]
	perRow         atomic.Int64 // bytes per row so far, to size the next chunk once
}

// encodedRows is one record batch's rows and where each row ends.
type encodedRows struct {
	data []byte
	ends []int
}

// errAnswerFull stops a query whose answer reached the byte limit.
var errAnswerFull = errors.New("the answer reached the byte limit")

// Columns implements engine.ColumnSink.
func (a *answer) Columns(cols []engine.Column) error {
	a.columns, a.types = make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		a.columns[i], a.types[i] = c.Name, c.Type
	}
	return nil
}

// Schema implements engine.ArrowSink.
func (a *answer) Schema(*arrow.Schema) error {
	a.pipe = &ordered.Pipeline[arrow.RecordBatch, encodedRows]{Workers: rowEncoders, Ahead: sendAhead, Work: a.encode, Emit: a.keep}
	return nil
}

// Batch implements engine.ArrowSink: the batch is kept (Retain) until encoded.
func (a *answer) Batch(rec arrow.RecordBatch) error {
	rec.Retain()
	if err := a.pipe.Push(rec); err != nil {
		rec.Release()
		return err
	}
	return nil
}

// encode writes a record's rows, and releases it.
func (a *answer) encode(rec arrow.RecordBatch) encodedRows {
	defer rec.Release()
	e := newRowEncoder(rec, a.types, a.form)
	n := int(rec.NumRows())
	per := a.perRow.Load()
	if per == 0 {
		per = 64
	}
	out := encodedRows{data: make([]byte, 0, int64(n)*per*9/8), ends: make([]int, n)}
	for i := range n {
		out.data = e.appendRows(out.data, i, i+1, true)
		out.ends[i] = len(out.data)
	}
	a.perRow.Store(int64(len(out.data)/max(n, 1) + 1))
	return out
}

// errServerMemory: the server-wide budget for held answers is used up.
var errServerMemory = errors.New("server memory for answers used up")

// keep holds a batch's rows, as many as the byte limit allows, within the
// server's budget for held answers.
func (a *answer) keep(r encodedRows) error {
	fit, n := len(r.ends), len(r.data)
	if a.bytes+int64(n) > a.maxBytes {
		fit, n = 0, 0
		for fit < len(r.ends) && a.bytes+int64(r.ends[fit]) <= a.maxBytes {
			n = r.ends[fit]
			fit++
		}
	}
	if err := a.hold(r.data[:n]); err != nil {
		return err
	}
	a.bytes += int64(n)
	a.rows += int64(fit)
	if fit < len(r.ends) {
		a.truncated = true
		return errAnswerFull
	}
	return nil
}

// hold keeps encoded rows: in the answer's one buffer while they fit there,
// else as a chunk of their own.
func (a *answer) hold(rows []byte) error {
	if len(rows) == 0 {
		return nil
	}
	if a.oneSlice && a.whole == nil && len(a.chunks) == 1 {
		a.gather()
	}
	if a.whole != nil && len(a.chunks) == 0 && len(rows) <= cap(a.whole)-len(a.whole) {
		a.whole = append(a.whole, rows...)
		return nil
	}
	if !a.take(int64(len(rows))) {
		return errServerMemory
	}
	a.chunks = append(a.chunks, rows)
	return nil
}

// gather moves the head and the first chunk into the answer's one buffer,
// sized for the rest of the rows (see answer). Without room in the server's
// budget, the rows stay chunks.
func (a *answer) gather() {
	size := a.gatherSize()
	if size == 0 || !a.take(size) {
		return
	}
	first := a.chunks[0]
	a.give(int64(len(first)))
	if a.form == formJSON {
		first = first[1:]
	}
	a.whole = append(append(make([]byte, 0, size), a.head()...), first...)
	a.chunks = nil
}

// gatherSize is the size of the answer's one buffer: the head, the rows so
// far, the rest of the row limit at the rows' size so far plus a sixteenth
// (within the byte limit and maxGather), and the tail; 0 if there is no room.
func (a *answer) gatherSize() int64 {
	room := min(a.maxBytes, maxGather) - a.bytes
	if room <= 0 || a.rows == 0 {
		return 0
	}
	per := a.bytes/a.rows + 1
	est := max(0, min(a.rowCap-a.rows, room/per)) * per
	est += min(est/16, room-est)
	// The tail grows by at most the row count's digits and "true".
	return int64(len(a.head())) + a.bytes + est + int64(len(a.tail())) + 32
}

// maxGather is the most room for rows an answer's one buffer is made with
// (1 GiB, the default byte limit): a larger answer goes on in chunks. It
// bounds what a wrong estimate reserves on a server with no answer budget.
const maxGather = 1 << 30

// take counts n more bytes against the server's budget, if it has them.
func (a *answer) take(n int64) bool {
	if a.memory == nil {
		return true
	}
	if !a.memory.TryAcquire(n) {
		return false
	}
	a.held += n
	return true
}

// give returns n bytes to the server's budget.
func (a *answer) give(n int64) {
	if a.memory != nil {
		a.memory.Release(n)
		a.held -= n
	}
}

// free gives the answer's memory back to the server's budget.
func (a *answer) free() {
	if a.held > 0 {
		a.give(a.held)
	}
}

// drain waits until every queued batch is held; a full answer is no error.
func (a *answer) drain() error {
	if a.pipe == nil {
		return nil
	}
	if err := a.pipe.Drain(); !errors.Is(err, errAnswerFull) {
		return err
	}
	return nil
}

// QueryResponse's fields.
const (
	fieldColumns     = 1
	fieldRowCount    = 3
	fieldTruncated   = 4
	fieldColumnTypes = 5
)

// head and tail are what comes before and after the rows: in JSON the shape
// the REST mirror always wrote (proto field names, every field, row_count a
// number), which protojson reads too; in protobuf, QueryResponse's fields
// in their order, as proto.Marshal writes them.
func (a *answer) head() []byte {
	if a.form == formJSON {
		return append(appendStrings([]byte(`{"columns":`), a.columns), `,"rows":[`...)
	}
	var b []byte
	for _, c := range a.columns {
		b = protowire.AppendTag(b, fieldColumns, protowire.BytesType)
		b = protowire.AppendString(b, c)
	}
	return b
}

func (a *answer) tail() []byte {
	if a.form == formJSON {
		b := strconv.AppendInt([]byte(`],"row_count":`), a.rows, 10)
		b = strconv.AppendBool(append(b, `,"truncated":`...), a.truncated)
		return append(appendStrings(append(b, `,"column_types":`...), a.types), '}')
	}
	var b []byte
	if a.rows != 0 {
		b = protowire.AppendTag(b, fieldRowCount, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.rows))
	}
	if a.truncated {
		b = protowire.AppendTag(b, fieldTruncated, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	for _, t := range a.types {
		b = protowire.AppendTag(b, fieldColumnTypes, protowire.BytesType)
		b = protowire.AppendString(b, t)
	}
	return b
}

func appendStrings(buf []byte, ss []string) []byte {
	buf = append(buf, '[')
	for i, s := range ss {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, s)
	}
	return append(buf, ']')
}

// parts is the whole answer, in order. In JSON the first row's comma goes.
func (a *answer) parts() [][]byte {
	parts := make([][]byte, 0, len(a.chunks)+2)
	if a.whole != nil {
		parts = append(parts, a.whole) // the head and the first rows, comma gone
	} else {
		parts = append(parts, a.head())
	}
	for i, c := range a.chunks {
		if i == 0 && a.whole == nil && a.form == formJSON {
			c = c[1:]
		}
		parts = append(parts, c)
	}
	return append(parts, a.tail())
}

// size is the length of the whole answer.
func (a *answer) size() int64 {
	var n int64
	for _, p := range a.parts() {
		n += int64(len(p))
	}
	return n
}

// WriteTo writes the answer (the REST response body), chunk by chunk.
func (a *answer) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, p := range a.parts() {
		m, err := w.Write(p)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// encoded returns the whole answer as one slice (a connect codec hands over
// one): the answer's buffer when every row fit in it, else a new slice; and
// lets go of the rows.
func (a *answer) encoded() []byte {
	if a.whole != nil && len(a.chunks) == 0 {
		out := append(a.whole, a.tail()...) // in the room kept for it
		a.whole = nil
		return out
	}
	parts := a.parts()
	var n int
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
		// A copy onto fresh pages cannot be preempted, and a garbage
		// collection waiting to scan this goroutine would signal it every
		// few microseconds, interrupting the page faults (measured: a fifth
		// of a fresh server's CPU during a 100 MB answer). Yielding after
		// each chunk lets it in.
		runtime.Gosched()
	}
	a.chunks, a.whole = nil, nil
	return out
}
