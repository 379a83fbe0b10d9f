package upload

import (
	"bytes"
	"errors"
	"io"
	"os"

	"github.com/agnesdata/agnes/connectors"
)

// Kind is the format of an uploaded file.
type Kind string

// Kinds of uploads.
const (
	KindCSV     Kind = "csv"
	KindParquet Kind = "parquet"
)

// Ext is the file name extension of the kind, with its dot.
func (k Kind) Ext() string { return "." + string(k) }

var parquetMagic = []byte("PAR1")

// Sniff tells the format of the size bytes readable from r: Parquet when
// they start and end with the magic bytes PAR1, CSV when the head is text
// (UTF-8, no NUL bytes). An empty file, binary data, UTF-16 text and a
// truncated Parquet file are *connectors.InputError.
func Sniff(r io.ReaderAt, size int64) (Kind, error) {
	if size == 0 {
		return "", inputError("the file is empty")
	}
	head := make([]byte, min(size, headSize))
	if _, err := r.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if bytes.HasPrefix(head, parquetMagic) {
		tail := make([]byte, len(parquetMagic))
		if size < 12 { // magic, footer length, magic
			return "", inputError("the file starts like Parquet but is too short to be one")
		}
		if _, err := r.ReadAt(tail, size-int64(len(tail))); err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		if !bytes.Equal(tail, parquetMagic) {
			return "", inputError("the file starts like Parquet but does not end like one: is it truncated?")
		}
		return KindParquet, nil
	}
	if bytes.HasPrefix(head, []byte{0xFF, 0xFE}) || bytes.HasPrefix(head, []byte{0xFE, 0xFF}) {
		return "", inputError("the file is UTF-16 text; save it as UTF-8 CSV")
	}
	if binary(head) {
		return "", inputError("the file is neither CSV text nor Parquet (it holds binary data)")
	}
	// UTF-8 all through the head, except a character cut at its end.
	s := newScanner(',', func(int, int, int) error { return nil })
	err := s.feed(head)
	if err == nil && int64(len(head)) == size {
		err = s.end()
	}
	var ce *csvError
	if errors.As(err, &ce) && ce.msg == utf8Msg {
		return "", inputError(ce.Error())
	}
	if len(bytes.TrimSpace(bytes.TrimPrefix(head, bom))) == 0 && int64(len(head)) == size {
		return "", inputError("the file holds no data, only white space")
	}
	return KindCSV, nil
}

// SniffFile is Sniff of the file at path.
func SniffFile(path string) (Kind, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	return Sniff(f, st.Size())
}

func inputError(msg string) error { return &connectors.InputError{Msg: msg} }

// binary reports whether head looks like binary data: a NUL byte, or more
// than 1% control characters other than tab, line ends and form feed.
func binary(head []byte) bool {
	ctrl := 0
	for _, c := range head {
		switch {
		case c == 0:
			return true
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f':
			ctrl++
		}
	}
	return ctrl*100 > len(head)
}
