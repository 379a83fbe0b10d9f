package syncsvc

import (
	"errors"
	"net/http"
	"os"

	"connectrpc.com/connect"

	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/store"
)

// DownloadPattern is where table files are served over plain HTTP.
const DownloadPattern = "GET /api/data/{table_id}/download"

// Download serves a table's Parquet file (or one part of a partitioned table with
// ?part=): RBAC first, then http.ServeContent, which gives Range requests, and
// If-None-Match against an ETag that is the manifest's content hash. Mount it
// behind the authentication middleware.
func (s *Service) Download(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	fail := func(err error) {
		var ce *connect.Error
		if !errors.As(err, &ce) {
			ce = apierr.Convert(ctx, err)
		}
		apierr.WriteConnect(w, ce)
	}
	p, err := auth.Required(ctx)
	if err != nil {
		fail(err)
		return
	}
	tableID := r.PathValue("table_id")
	if err := access.CheckResource(p, store.ResourceTable, tableID); err != nil {
		fail(err)
		return
	}
	df, err := s.resolveFile(ctx, tableID, r.URL.Query().Get("part"))
	if err != nil {
		fail(err)
		return
	}
	f, err := os.Open(df.path)
	if errors.Is(err, os.ErrNotExist) {
		fail(apierr.NotFound("table '%s' has no data yet", tableID))
		return
	}
	if err != nil {
		fail(err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		fail(err)
		return
	}
	if df.hash != "" {
		w.Header().Set("ETag", `"`+df.hash+`"`)
	}
	w.Header().Set("Content-Type", "application/vnd.apache.parquet")
	w.Header().Set("Content-Disposition", `attachment; filename="`+df.name+`"`)
	w.Header().Set("Cache-Control", "private, no-cache")
	info := reqctx.From(ctx)
	info.SetRPC("data.download", "ok")
	if r.Header.Get("Range") == "" && r.Header.Get("If-None-Match") == "" {
		s.store.Audit(ctx, store.AuditEntry{UserID: p.UserID, Action: "data.download", Resource: tableID,
			Params: map[string]any{"bytes": fi.Size(), "part": r.URL.Query().Get("part")}, ClientIP: info.ClientIP, RequestID: info.RequestID})
	}
	http.ServeContent(w, r, df.name, fi.ModTime(), f)
}
