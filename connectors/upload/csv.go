package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// The CSV dialect Agnes reads: RFC 4180 quoting (a field may be enclosed in
// double quotes, a quote inside is doubled), records end at \n, \r\n or \r,
// blank lines are skipped, and the delimiter is one of delimiters, detected
// from the head of the file. Before DuckDB reads a file, scanCSV checks it
// in one streaming pass, so a structural error (wrong number of fields, an
// unclosed quote, invalid UTF-8) is reported with its line number instead
// of confusing DuckDB's sniffer: given a file that breaks in its first
// rows, DuckDB 1.5.6 either fails with "It was not possible to
// automatically detect the CSV parsing dialect" and no line, or silently
// picks another dialect (one column named "a,b,c", or skipped rows).

// delimiters are the candidates, in order of preference on a tie.
var delimiters = []byte{',', ';', '\t', '|'}

const (
	quoteChar = '"'
	headSize  = 64 << 10 // bytes looked at to sniff the kind and the delimiter; also the read size
	headLines = 50       // records looked at to detect the delimiter
	// maxRecord is the longest record DuckDB reads by default
	// (max_line_size); a longer one is refused here with its line.
	maxRecord = 2_000_000
)

// csvError is a structural problem at a line of the file (1-based, as a
// text editor counts lines).
type csvError struct {
	line int
	msg  string
}

const utf8Msg = "invalid UTF-8 text: save the file with the UTF-8 encoding"

func (e *csvError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

type scanState int

const (
	fieldStart   scanState = iota
	unquoted               // inside a field without quotes; a quote here is literal (as DuckDB reads it)
	quoted                 // inside a quoted field
	closingQuote           // saw a quote inside a quoted field: a doubled quote or the end of the field
	afterQuote             // after the closing quote: only spaces until the delimiter or the line end
)

// scanner is a streaming CSV state machine over bytes. It counts physical
// lines (every \n, \r\n or \r, also inside quoted fields) and DuckDB's line
// numbers (the same without the line ends inside quoted fields: DuckDB
// 1.5.6 reports "CSV Error on Line: N" in those), validates UTF-8, and
// calls record for every non-blank record.
type scanner struct {
	delim byte
	// crlfTwo: DuckDB counts \r\n as two lines, as it does (strict mode
	// off) when it detected \n or \r as the file's line end.
	crlfTwo bool

	state     scanState
	line      int  // physical line of the current byte
	duckLine  int  // DuckDB's number of the current line
	skipLF    bool // the previous byte was \r: a \n now ends the same line
	fields    int  // fields completed in the current record
	hasData   bool // the current record has a byte (blank lines are skipped)
	recBytes  int  // bytes of the current record so far
	recLine   int  // physical line where the current record started
	recDuck   int  // DuckDB's number of that line
	quoteLine int  // line of the opening quote of the current quoted field

	utfNeed int  // continuation bytes still expected
	utfLo   byte // range of the next continuation byte
	utfHi   byte
	utfLine int // line of the rune's first byte
	record  func(fields, line, duckLine int) error
}

var errStop = fmt.Errorf("stop")

func newScanner(delim byte, record func(fields, line, duckLine int) error) *scanner {
	return &scanner{delim: delim, line: 1, duckLine: 1, recLine: 1, recDuck: 1, record: record}
}

// feed scans the next bytes of the file.
func (s *scanner) feed(b []byte) error {
	for _, c := range b {
		if c >= 0x80 || s.utfNeed > 0 {
			if err := s.utf8(c); err != nil {
				return err
			}
		}
		if c == 0 {
			return &csvError{s.line, "contains a NUL byte: this is binary data, not text"}
		}
		if s.skipLF {
			s.skipLF = false
			if c == '\n' {
				if s.crlfTwo && s.state != quoted {
					s.duckLine++
					s.recDuck = s.duckLine
				}
				continue
			}
		}
		if s.recBytes++; s.recBytes > maxRecord {
			return &csvError{s.recLine, fmt.Sprintf("the line is longer than %d bytes", maxRecord)}
		}
		if c == '\r' || c == '\n' {
			s.skipLF = c == '\r'
			if err := s.newline(); err != nil {
				return err
			}
			continue
		}
		switch s.state {
		case fieldStart:
			s.hasData = true
			switch c {
			case quoteChar:
				s.state, s.quoteLine = quoted, s.line
			case s.delim:
				s.fields++
			default:
				s.state = unquoted
			}
		case unquoted:
			if c == s.delim {
				s.fields++
				s.state = fieldStart
			}
		case quoted:
			if c == quoteChar {
				s.state = closingQuote
			}
		case closingQuote, afterQuote:
			switch {
			case c == quoteChar && s.state == closingQuote:
				s.state = quoted // a doubled quote
			case c == s.delim:
				s.fields++
				s.state = fieldStart
			case c == ' ' || c == '\t':
				s.state = afterQuote
			default:
				return &csvError{s.line, fmt.Sprintf("unexpected %q after the closing quote of a field "+
					"(a quote inside a quoted field must be doubled: \"\")", rune(c))}
			}
		}
	}
	return nil
}

// newline handles a line end at the current byte.
func (s *scanner) newline() error {
	s.line++
	if s.state == quoted {
		return nil // part of the field
	}
	s.duckLine++
	err := s.endRecord()
	s.recLine, s.recDuck, s.recBytes = s.line, s.duckLine, 0
	return err
}

func (s *scanner) endRecord() error {
	defer func() { s.fields, s.hasData, s.state = 0, false, fieldStart }()
	if !s.hasData {
		return nil // a blank line
	}
	return s.record(s.fields+1, s.recLine, s.recDuck)
}

// end finishes the scan at the end of the file.
func (s *scanner) end() error {
	if s.utfNeed > 0 {
		return &csvError{s.utfLine, utf8Msg}
	}
	if s.state == quoted {
		return &csvError{s.quoteLine, "a quoted field starts here and is never closed"}
	}
	return s.endRecord()
}

// utf8 validates one byte (the UTF-8 well-formed byte sequences of the
// Unicode standard, table 3-7: no overlong forms, no surrogates).
func (s *scanner) utf8(c byte) error {
	bad := func() error {
		line := s.line
		if s.utfNeed > 0 {
			line = s.utfLine
		}
		return &csvError{line, utf8Msg}
	}
	if s.utfNeed > 0 {
		if c < s.utfLo || c > s.utfHi {
			return bad()
		}
		s.utfNeed--
		s.utfLo, s.utfHi = 0x80, 0xBF
		return nil
	}
	switch {
	case c < 0x80:
		return nil
	case c >= 0xC2 && c <= 0xDF:
		s.utfNeed, s.utfLo, s.utfHi = 1, 0x80, 0xBF
	case c == 0xE0:
		s.utfNeed, s.utfLo, s.utfHi = 2, 0xA0, 0xBF
	case c == 0xED:
		s.utfNeed, s.utfLo, s.utfHi = 2, 0x80, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		s.utfNeed, s.utfLo, s.utfHi = 2, 0x80, 0xBF
	case c == 0xF0:
		s.utfNeed, s.utfLo, s.utfHi = 3, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		s.utfNeed, s.utfLo, s.utfHi = 3, 0x80, 0xBF
	case c == 0xF4:
		s.utfNeed, s.utfLo, s.utfHi = 3, 0x80, 0x8F
	default:
		return bad()
	}
	s.utfLine = s.line
	return nil
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// detectDelimiter picks the delimiter from the head of a file: the
// candidate whose first record has more than one field and whose next
// records most often have as many; "," when none splits the first record
// (a one-column file). truncated says the head is not the whole file, so
// its last record may be cut.
func detectDelimiter(head []byte, truncated bool) byte {
	head = bytes.TrimPrefix(head, bom)
	best, bestScore, bestFields := byte(','), -1, 0
	for _, d := range delimiters {
		var counts []int
		s := newScanner(d, func(fields, _, _ int) error {
			counts = append(counts, fields)
			if len(counts) > headLines {
				return errStop
			}
			return nil
		})
		if err := s.feed(head); err == nil && !truncated {
			_ = s.end()
		}
		if len(counts) > 0 && truncated && len(counts) <= headLines {
			counts = counts[:len(counts)-1] // may be cut; the next record was not reached
		}
		if len(counts) == 0 || counts[0] < 2 {
			continue
		}
		score := 0
		for _, n := range counts[1:] {
			if n == counts[0] {
				score++
			}
		}
		if score > bestScore || (score == bestScore && counts[0] > bestFields) {
			best, bestScore, bestFields = d, score, counts[0]
		}
	}
	return best
}

// csvInfo is what scanCSV learned about a file.
type csvInfo struct {
	delim   byte
	records int // non-blank records, the header included
	fields  int // fields per record
}

// scanCSV detects the delimiter of the CSV file at path and checks the
// whole file: UTF-8, every quoted field closed, every record with as many
// fields as the first. Structural problems are *csvError.
func scanCSV(ctx context.Context, path string) (csvInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return csvInfo{}, err
	}
	defer f.Close()
	buf := make([]byte, headSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return csvInfo{}, err
	}
	head := buf[:n]
	more := n == len(buf)
	info := csvInfo{delim: detectDelimiter(head, more)}
	s := newScanner(info.delim, func(fields, line, _ int) error {
		info.records++
		if info.records == 1 {
			info.fields = fields
			return nil
		}
		if fields != info.fields {
			return &csvError{line, fmt.Sprintf("%d fields, but the first line has %d (delimiter %s)", fields, info.fields, delimName(info.delim))}
		}
		return nil
	})
	if err := s.feed(bytes.TrimPrefix(head, bom)); err != nil {
		return info, err
	}
	for more {
		if err := ctx.Err(); err != nil {
			return info, err
		}
		n, err = io.ReadFull(f, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return info, err
		}
		if err := s.feed(buf[:n]); err != nil {
			return info, err
		}
		more = n == len(buf)
	}
	if err := s.end(); err != nil {
		return info, err
	}
	if info.records == 0 {
		return info, &csvError{1, "the file has no lines"}
	}
	return info, nil
}

// physicalLine returns the physical line where the record DuckDB numbers
// duckLine starts, or duckLine if the file cannot be read again. They
// differ after line ends inside quoted fields (DuckDB does not count them)
// and, with crlfTwo, after each \r\n.
func physicalLine(path string, delim byte, duckLine int, crlfTwo bool) int {
	f, err := os.Open(path)
	if err != nil {
		return duckLine
	}
	defer f.Close()
	found := duckLine
	s := newScanner(delim, func(_, line, duck int) error {
		if duck >= duckLine {
			found = line
			return errStop
		}
		return nil
	})
	s.crlfTwo = crlfTwo
	buf := make([]byte, headSize)
	first := true
	for {
		n, rerr := f.Read(buf)
		chunk := buf[:n]
		if first {
			chunk, first = bytes.TrimPrefix(chunk, bom), false
		}
		if err := s.feed(chunk); err != nil {
			return found
		}
		if rerr != nil {
			_ = s.end()
			return found
		}
	}
}

func delimName(d byte) string {
	switch d {
	case '\t':
		return "tab"
	case ',':
		return "comma"
	case ';':
		return "semicolon"
	case '|':
		return "|"
	}
	return string(d)
}
