package syncsvc

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/route"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Manifest writes GET /api/sync/manifest: the same answer as GetManifest through the
// REST mirror, assembled from per-table JSON encoded once per data change. With
// thousands of tables, re-encoding the whole map through the gateway on every call
// (protobuf, the in-memory hop, protojson with its key sorting) cost most of the
// request; here a request is a filter and a concatenation.
func (s *Service) Manifest(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c, ids, err := s.visible(ctx, auth.FromContext(ctx))
	if err != nil {
		return err
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
	return nil
}

// Routes are the service's plain HTTP routes: the manifest (the same answer as
// GetManifest, under its policy) and Parquet downloads (a grant on the table).
func (s *Service) Routes() []route.Route {
	return []route.Route{
		{Pattern: "GET /api/sync/manifest", Name: "agnes.v1.SyncService/GetManifest",
			Policy: access.PolicyOf(agnesv1connect.SyncServiceGetManifestProcedure), Handler: s.Manifest},
		{Pattern: "GET /api/data/{table_id}/download", Name: "data.download",
			Policy: route.Resource(store.ResourceTable, "table_id"), Handler: s.Download},
	}
}
