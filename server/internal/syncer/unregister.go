package syncer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/orchestrator"
	"github.com/agnesdata/agnes/server/internal/jobs"
)

// runUnregister removes a table: out of its extract (so the next generation has
// no view), then its files, then its registry row with grants, state and
// profile. The order keeps a crash at any point harmless: a registry row
// without data is re-extracted by the next sync; data without a view is
// unreachable.
func (s *Syncer) runUnregister(ctx context.Context, task *jobs.Task) error {
	var params syncParams
	if err := task.Params(&params); err != nil || len(params.Tables) != 1 {
		return fmt.Errorf("unregister: bad params (%d tables): %w", len(params.Tables), err)
	}
	id := params.Tables[0]
	t, err := s.store.GetTable(ctx, id)
	if err != nil {
		return err
	}
	dir := orchestrator.ExtractDir(s.dataDir, t.SourceName())
	contents, err := extract.Read(ctx, dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read extract: %w", err)
	default:
		kept := slices.DeleteFunc(slices.Clone(contents.Tables), func(x extract.Table) bool {
			return strings.EqualFold(x.TableName, id)
		})
		if len(kept) != len(contents.Tables) {
			contents.Tables = kept
			w, err := extract.NewWriter(dir)
			if err != nil {
				return err
			}
			err = w.Commit(ctx, contents)
			_ = w.Close()
			if err != nil {
				return fmt.Errorf("rewrite extract: %w", err)
			}
			if _, err := s.analytics.Rebuild(ctx); err != nil {
				return err
			}
		}
	}
	file, folder := filepath.Join(dir, extract.DataDir, id+".parquet"), filepath.Join(dir, extract.DataDir, id)
	for _, p := range []string{file, folder} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove data: %w", err)
		}
	}
	return s.store.DeleteTable(ctx, id)
}
