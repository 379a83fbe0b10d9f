package syncsvc

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/reqctx"
)

// ManifestPattern is the REST manifest, served here rather than through the gateway.
const ManifestPattern = "GET /api/sync/manifest"

// Manifest writes GET /api/sync/manifest: the same answer as GetManifest through the
// REST mirror, assembled from per-table JSON encoded once per data change. With
// thousands of tables, re-encoding the whole map through the gateway on every call
// (protobuf, the in-memory hop, protojson with its key sorting) cost most of the
// request; here a request is a filter and a concatenation. Mount behind the
// authentication middleware.
func (s *Service) Manifest(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	reqctx.From(ctx).SetRPC("agnes.v1.SyncService/GetManifest", "ok")
	p, err := auth.Required(ctx)
	if err != nil {
		apierr.WriteConnect(w, apierr.Convert(ctx, err))
		return
	}
	c, ids, err := s.visible(ctx, p)
	if err != nil {
		apierr.WriteConnect(w, apierr.Convert(ctx, err))
		return
	}
	var buf bytes.Buffer
	buf.Grow(64 + len(ids)*200)
	buf.WriteString(`{"tables":{`)
	for i, id := range ids {
		if i > 0 {
			buf.WriteByte(',')
		}
		key, _ := json.Marshal(id)
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(c.json[id])
	}
	buf.WriteString(`},"server_time":"`)
	buf.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
	buf.WriteString(`"}`)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}
