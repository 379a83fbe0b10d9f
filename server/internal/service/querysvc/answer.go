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
// objects in between. The rows are held in chunks (one per DuckDB chunk)
// until the query has ended, so a query that fails midway is answered with
// an error and nothing partial. What is held is bounded by the byte limit,
// which counts the encoded rows themselves: a chunk that would cross it is
// cut at a row boundary and the answer marked truncated.
type answer struct {
	form     form
	maxBytes int64
	// memory is the server-wide budget for held answers; held is this one's share.
	memory *semaphore.Weighted
	held   int64

	columns, types []string
	chunks         [][]byte // encoded rows: JSON arrays each after a comma, or protobuf rows fields
	bytes          int64    // in chunks
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
	if a.memory != nil {
		n := int64(len(r.data))
		if !a.memory.TryAcquire(n) {
			return errServerMemory
		}
		a.held += n
	}
	if a.bytes+int64(len(r.data)) <= a.maxBytes {
		a.chunks = append(a.chunks, r.data)
		a.bytes += int64(len(r.data))
		a.rows += int64(len(r.ends))
		return nil
	}
	fit := 0
	for fit < len(r.ends) && a.bytes+int64(r.ends[fit]) <= a.maxBytes {
		fit++
	}
	if fit > 0 {
		a.chunks = append(a.chunks, r.data[:r.ends[fit-1]])
		a.bytes += int64(r.ends[fit-1])
		a.rows += int64(fit)
	}
	a.truncated = true
	return errAnswerFull
}

// free gives the answer's memory back to the server's budget.
func (a *answer) free() {
	if a.memory != nil && a.held > 0 {
		a.memory.Release(a.held)
		a.held = 0
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
	parts = append(parts, a.head())
	for i, c := range a.chunks {
		if i == 0 && a.form == formJSON {
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

// encoded returns the whole answer as one new slice (a connect codec hands
// over one), and lets go of the chunks.
func (a *answer) encoded() []byte {
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
	a.chunks = nil
	return out
}
