package syncsvc

import (
	"errors"
	"net/http"
	"os"

	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Download serves a table's Parquet file (or one part of a partitioned table with
// ?part=): RBAC first, then http.ServeContent, which gives Range requests, and
// If-None-Match against an ETag that is the manifest's content hash. The route's
// policy requires a grant on the table.
func (s *Service) Download(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p := auth.FromContext(ctx)
	tableID := r.PathValue("table_id")
	df, err := s.resolveFile(ctx, tableID, r.URL.Query().Get("part"))
	if err != nil {
		return err
	}
	f, err := os.Open(df.path)
	if errors.Is(err, os.ErrNotExist) {
		return apierr.NotFound("table '%s' has no data yet", tableID)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if df.hash != "" {
		w.Header().Set("ETag", `"`+df.hash+`"`)
	}
	w.Header().Set("Content-Type", "application/vnd.apache.parquet")
	w.Header().Set("Content-Disposition", `attachment; filename="`+df.name+`"`)
	w.Header().Set("Cache-Control", "private, no-cache")
	info := reqctx.From(ctx)
	if r.Header.Get("Range") == "" && r.Header.Get("If-None-Match") == "" {
		s.store.Audit(ctx, store.AuditEntry{UserID: p.UserID, Action: "data.download", Resource: tableID,
			Params: map[string]any{"bytes": fi.Size(), "part": r.URL.Query().Get("part")}, ClientIP: info.ClientIP, RequestID: info.RequestID})
	}
	http.ServeContent(w, r, df.name, fi.ModTime(), f)
	return nil
}
