package adminsvc

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/upload"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/route"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/syncer"
)

// UploadResult is the JSON answer of an upload.
type UploadResult struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Status    string `json:"status"` // registered | replaced
	JobID     string `json:"job_id"`
	Rows      int64  `json:"rows"`
	SizeBytes int64  `json:"size_bytes"`
}

// Uploads turns uploaded files into registered, synced tables.
type Uploads struct {
	svc     *Service
	dir     string
	max     int64
	timeout time.Duration
}

// NewUploads returns the upload handler: files are kept in dir (the upload
// connector's folder), at most max bytes each.
func (s *Service) NewUploads(dir string, max int64, timeout time.Duration) *Uploads {
	return &Uploads{svc: s, dir: dir, max: max, timeout: timeout}
}

// ServeHTTP handles POST /api/upload: a multipart form with `file` and optional
// `name` (default: the file's stem), `description` and `replace=true` (to replace an
// uploaded table's data). The file streams to disk; the table is registered and
// synced before the answer, so a malformed CSV is a 400 naming its line and nothing
// is left behind. The route's policy admits admins only.
func (u *Uploads) Serve(w http.ResponseWriter, r *http.Request) error {
	// An upload may take longer to arrive than an ordinary body (the edge's
	// body deadline); it gets its own.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(u.timeout))
	res, err := u.handle(r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	return json.NewEncoder(w).Encode(res)
}

// Route is the upload route.
func (u *Uploads) Route() route.Route {
	return route.Route{Pattern: "POST /api/upload", Name: "data.upload", Policy: route.Admin, Handler: u.Serve}
}

// uploadTempPrefix names a stored upload until it is placed under its table's name.
const uploadTempPrefix = "upload_tmp_"

// form is what the multipart body said.
type form struct {
	name, description string
	replace           bool
	stored, stem      string // temp file name in the upload dir; the upload's file stem
	kind              upload.Kind
}

func (u *Uploads) handle(r *http.Request) (*UploadResult, error) {
	ctx := r.Context()
	f, err := u.read(r)
	if f != nil && f.stored != "" {
		defer os.Remove(filepath.Join(u.dir, f.stored)) // no-op once renamed
	}
	if err != nil {
		return nil, err
	}
	id, err := connectors.TableID(cmp.Or(f.name, f.stem))
	if err != nil {
		return nil, apierr.InvalidArgument("name: %v", err)
	}
	existing, err := u.svc.store.GetTable(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		existing = nil
	case err != nil:
		return nil, err
	case existing.SourceType != upload.Type:
		return nil, apierr.AlreadyExists("table '%s' already exists (source %s)", id, existing.SourceType)
	case !f.replace:
		return nil, apierr.AlreadyExists("table '%s' already exists; send replace=true to replace its data", id)
	}
	final := id + f.kind.Ext()
	restore, commit, err := u.place(f.stored, final, existing)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		// Until the upload is answered, a marker says the table is new: a
		// crash before then unregisters it at the next start (RecoverUploads).
		marker := filepath.Join(u.dir, final+newUploadSuffix)
		if err := os.WriteFile(marker, []byte(id), 0o600); err != nil {
			restore()
			return nil, err
		}
		undo, done := restore, commit
		restore, commit = func() { undo(); _ = os.Remove(marker) }, func() { done(); _ = os.Remove(marker) }
		if _, err := u.svc.Register(ctx, &store.RegisteredTable{Name: cmp.Or(f.name, id), SourceType: upload.Type,
			SourceTable: final, Description: f.description}); err != nil {
			restore()
			return nil, err
		}
	}
	job, err := u.sync(ctx, id)
	if err != nil {
		if existing == nil {
			_ = u.svc.syncer.Unregister(context.WithoutCancel(ctx), id, actor(ctx))
		}
		restore()
		return nil, err
	}
	commit()
	res := &UploadResult{ID: id, Name: cmp.Or(f.name, id), Status: "registered", JobID: job.ID}
	if existing != nil {
		res.Status = "replaced"
	}
	for _, t := range job.Tables {
		res.Rows, res.SizeBytes = t.Rows, t.SizeBytes
	}
	u.svc.audit(ctx, "upload", id, map[string]any{"status": res.Status, "rows": res.Rows})
	return res, nil
}

// read streams the multipart body: the file to a temp name in the upload dir, the
// small fields into memory.
func (u *Uploads) read(r *http.Request) (*form, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "multipart/form-data" {
		return nil, apierr.InvalidArgument("expected a multipart/form-data body with a `file` field")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, apierr.InvalidArgument("malformed multipart body: %v", err)
	}
	f := &form{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return f, apierr.InvalidArgument("malformed multipart body: %v", err)
		}
		switch part.FormName() {
		case "file":
			if f.stored != "" {
				return f, apierr.InvalidArgument("send one file per upload")
			}
			f.stem = strings.TrimSuffix(filepath.Base(part.FileName()), filepath.Ext(part.FileName()))
			tmp := uploadTempPrefix + randomHex()
			name, kind, _, err := upload.Store(r.Context(), u.dir, tmp, part, u.max)
			var big *upload.TooLargeError
			var in *connectors.InputError
			switch {
			case errors.As(err, &big):
				return f, &route.TooLargeError{Msg: fmt.Sprintf("file too large (max %d bytes)", big.Limit)}
			case errors.As(err, &in):
				return f, apierr.InvalidArgument("%s", in.Msg)
			case err != nil:
				return f, err
			}
			f.stored, f.kind = name, kind
		case "name", "description", "replace":
			v, err := io.ReadAll(io.LimitReader(part, 4097))
			if err != nil || len(v) > 4096 {
				return f, apierr.InvalidArgument("field %s is too long", part.FormName())
			}
			switch part.FormName() {
			case "name":
				f.name = strings.TrimSpace(string(v))
			case "description":
				f.description = strings.TrimSpace(string(v))
			case "replace":
				f.replace = strings.EqualFold(strings.TrimSpace(string(v)), "true")
			}
		default:
			return f, apierr.InvalidArgument("unknown form field %q (file, name, description, replace)", part.FormName())
		}
	}
	if f.stored == "" {
		return f, apierr.InvalidArgument("the form has no `file` field")
	}
	return f, nil
}

// place moves the stored upload to its final name, keeping the previous file of a
// replaced table (<file>.before-replace) until the new one has synced; restore puts
// things back, commit drops the previous file. One found at start belongs to a
// replace that never finished (see RecoverUploads).
func (u *Uploads) place(stored, final string, existing *store.RegisteredTable) (restore, commit func(), err error) {
	dst := filepath.Join(u.dir, final)
	backup := ""
	if existing != nil {
		old := filepath.Join(u.dir, existing.SourceTable)
		backup = old + previousSuffix
		if err := os.Rename(old, backup); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
	}
	if err := os.Rename(filepath.Join(u.dir, stored), dst); err != nil {
		return nil, nil, err
	}
	restore = func() {
		_ = os.Remove(dst)
		if backup != "" {
			_ = os.Rename(backup, filepath.Join(u.dir, existing.SourceTable))
		}
	}
	commit = func() {
		if backup != "" {
			_ = os.Remove(backup)
		}
	}
	return restore, commit, nil
}

// newUploadSuffix marks the file of a new table's upload until it is answered;
// the marker holds the table's id.
const newUploadSuffix = ".new-upload"

// previousSuffix marks the file a replacing upload keeps until it has synced.
// (Before it was committed, replaces kept "<file>.previous" for good: those are
// left alone, since they may be older than the file in place.)
const previousSuffix = ".before-replace"

// RecoverUploads undoes, at start, what uploads cut short by a crash left in the
// upload folder dir: bodies that never finished (.upload-*.tmp), files stored but
// never placed (upload_tmp_*), replacements that never synced (a
// <file>.before-replace is put back, and the new file of that table removed), and
// new tables never answered (<file>.new-upload: the file goes, and the table's id
// is returned for the caller to unregister), so that no later sync publishes an
// upload whose uploader never got an answer. It runs before any sync can.
func RecoverUploads(dir string) (abandoned []string, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recover uploads: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, newUploadSuffix):
			marker := filepath.Join(dir, name)
			id, err := os.ReadFile(marker)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := os.Remove(strings.TrimSuffix(marker, newUploadSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			abandoned = append(abandoned, string(id))
			errs = append(errs, os.Remove(marker))
		case strings.HasPrefix(name, ".upload-") && strings.HasSuffix(name, ".tmp"), strings.HasPrefix(name, uploadTempPrefix):
			errs = append(errs, os.Remove(filepath.Join(dir, name)))
		case strings.HasSuffix(name, previousSuffix):
			prev := strings.TrimSuffix(name, previousSuffix)
			stem := strings.TrimSuffix(prev, filepath.Ext(prev))
			for _, k := range []upload.Kind{upload.KindCSV, upload.KindParquet} {
				if err := os.Remove(filepath.Join(dir, stem+k.Ext())); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			errs = append(errs, os.Rename(filepath.Join(dir, name), filepath.Join(dir, prev)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return abandoned, fmt.Errorf("recover uploads: %w", err)
	}
	return abandoned, nil
}

// sync runs the table's sync to its end and turns a failed extraction into the
// error the uploader sees.
func (u *Uploads) sync(ctx context.Context, id string) (*syncer.Job, error) {
	started, err := u.svc.syncer.Trigger(ctx, []string{id}, auth.FromContext(ctx).Email)
	var busy *store.BusyError
	if errors.As(err, &busy) {
		return nil, apierr.AlreadyExists("a sync of uploads is running (job %s); try again when it ends", busy.JobID)
	}
	if err != nil {
		return nil, err
	}
	job, err := u.svc.syncer.Wait(ctx, started.ID)
	if err != nil {
		return nil, err
	}
	for _, t := range job.Tables {
		if t.State != store.JobSucceeded {
			return nil, apierr.InvalidArgument("%s", cmp.Or(t.Error, job.Error, "the file could not be loaded"))
		}
	}
	if job.State != store.JobSucceeded {
		return nil, apierr.InvalidArgument("%s", cmp.Or(job.Error, "the file could not be loaded"))
	}
	return job, nil
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
