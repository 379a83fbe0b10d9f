package upload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/agnesdata/agnes/connectors"
)

// TooLargeError is returned by Store when an upload exceeds its limit; the
// HTTP layer answers 413.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the upload is larger than the limit of %d bytes", e.Limit)
}

// Store saves an upload for the table id in dir (created if needed) as
// <id>.csv or <id>.parquet, the format sniffed from its bytes, and returns
// that file name (the table's SourceTable), the kind and the size. It
// streams src to a hidden temp file in dir, never holding the upload in
// memory, stops with *TooLargeError as soon as more than max bytes arrive
// (max <= 0: no limit), checks the file (Sniff; for CSV also the structure
// of every line, see scanCSV) and renames it into place, replacing an
// earlier upload of the same id in either format. On any error nothing is
// left behind and an earlier upload stays as it was. A bad file is
// *connectors.InputError, its message safe to show.
func Store(ctx context.Context, dir, id string, src io.Reader, max int64) (fileName string, kind Kind, size int64, err error) {
	if got, err := connectors.TableID(id); err != nil || got != id {
		return "", "", 0, inputError(fmt.Sprintf("%q is not a table id", id))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", 0, fmt.Errorf("store upload %s: %w", id, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	tmp := filepath.Join(dir, ".upload-"+id+"-"+hex.EncodeToString(b[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", "", 0, fmt.Errorf("store upload %s: %w", id, err)
	}
	renamed := false
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if !renamed {
			os.Remove(tmp)
		}
	}()

	limited := src
	if max > 0 {
		limited = io.LimitReader(src, max+1)
	}
	size, err = io.Copy(f, ctxReader{ctx, limited})
	if err != nil {
		return "", "", 0, fmt.Errorf("store upload %s: %w", id, err)
	}
	if max > 0 && size > max {
		return "", "", 0, &TooLargeError{Limit: max}
	}
	if err := f.Sync(); err != nil {
		return "", "", 0, fmt.Errorf("store upload %s: %w", id, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return "", "", 0, fmt.Errorf("store upload %s: %w", id, err)
	}

	if kind, err = SniffFile(tmp); err != nil {
		return "", "", 0, err
	}
	if kind == KindCSV {
		if _, err := scanCSV(ctx, tmp); err != nil {
			return "", "", 0, csvInputError(err)
		}
	}
	fileName = id + kind.Ext()
	if err := os.Rename(tmp, filepath.Join(dir, fileName)); err != nil {
		return "", "", 0, fmt.Errorf("store upload %s: %w", id, err)
	}
	renamed = true
	for _, k := range []Kind{KindCSV, KindParquet} {
		if k != kind { // the same table uploaded earlier in the other format
			if err := os.Remove(filepath.Join(dir, id+k.Ext())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", "", 0, fmt.Errorf("store upload %s: %w", id, err)
			}
		}
	}
	if err := syncDir(dir); err != nil {
		return "", "", 0, fmt.Errorf("store upload %s: %w", id, err)
	}
	return fileName, kind, size, nil
}

// csvInputError turns a structural CSV problem into an InputError; other
// errors (I/O, cancellation) pass through.
func csvInputError(err error) error {
	var ce *csvError
	if errors.As(err, &ce) {
		return inputError(ce.Error())
	}
	return err
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
