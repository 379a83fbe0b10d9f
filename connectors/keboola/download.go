package keboola

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/agnesdata/agnes/connectors/keboola/internal/sigv4"
)

// errCloudDenied: the file storage refused the credentials of a file
// detail (they expire); a fresh file detail brings new ones.
var errCloudDenied = errors.New("file storage refused the credentials")

// download fetches an export's data into dir and returns the local files
// in manifest order: the slices of a sliced file, or the one file. The
// Storage token is never sent: signed URLs carry their own signature,
// slices are fetched with the file's federated credentials.
func (c *Connector) download(ctx context.Context, fileID flexString, dir string) ([]string, error) {
	f, err := c.api.file(ctx, fileID)
	if err != nil {
		return nil, err
	}
	files, err := c.fetchFile(ctx, f, dir)
	if errors.Is(err, errCloudDenied) { // expired credentials: ask again, once
		if f, err = c.api.file(ctx, fileID); err != nil {
			return nil, err
		}
		files, err = c.fetchFile(ctx, f, dir)
	}
	return files, err
}

func (c *Connector) fetchFile(ctx context.Context, f *fileDetail, dir string) ([]string, error) {
	plain := func(u string) func() (*http.Request, error) {
		return func() (*http.Request, error) { return http.NewRequest(http.MethodGet, u, nil) }
	}
	if !f.IsSliced {
		path, err := c.fetch(ctx, plain(f.URL), filepath.Join(dir, "file-0"), f.FileType)
		if err != nil {
			return nil, err
		}
		return []string{path}, nil
	}
	manifestPath := filepath.Join(dir, "manifest.json")
	if _, err := c.fetch(ctx, plain(f.URL), manifestPath, "json"); err != nil {
		return nil, err
	}
	var m manifest
	b, err := os.ReadFile(manifestPath)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: the export manifest of file %s: %w", c.name, f.ID, err)
	}
	requests := make([]func() (*http.Request, error), len(m.Entries))
	for i, e := range m.Entries {
		if requests[i], err = c.sliceRequest(f, e.URL); err != nil {
			return nil, fmt.Errorf("source %s: file %s: %w", c.name, f.ID, err)
		}
	}
	files := make([]string, len(m.Entries))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.s.ParallelDownloads)
	for i, newReq := range requests {
		g.Go(func() error {
			path, err := c.fetch(gctx, newReq, filepath.Join(dir, fmt.Sprintf("slice-%06d", i)), f.FileType)
			files[i] = path
			return err
		})
	}
	return files, g.Wait()
}

// fetch downloads what newReq asks for into base (plus an extension from
// the content: .csv.gz, .csv or .parquet), retrying transient failures,
// and returns the file's path.
func (c *Connector) fetch(ctx context.Context, newReq func() (*http.Request, error), base, fileType string) (string, error) {
	out, err := os.Create(base)
	if err != nil {
		return "", err
	}
	defer out.Close()
	err = c.api.retry(ctx, c.s.DownloadTimeout, func(ctx context.Context) (int, time.Duration, error) {
		req, err := newReq()
		if err != nil {
			return 0, 0, err
		}
		req = req.WithContext(ctx)
		resp, err := c.api.http.Do(req)
		if err != nil {
			return 0, 0, fmt.Errorf("source %s: download: %w", c.name, redact(err))
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			err := fmt.Errorf("source %s: download from %s: %s: %s", c.name, withoutQuery(req.URL), resp.Status, strings.TrimSpace(string(body)))
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				err = fmt.Errorf("%w: %w", errCloudDenied, err)
			}
			return resp.StatusCode, retryAfter(resp.Header), err
		}
		if _, err := out.Seek(0, io.SeekStart); err != nil {
			return 0, 0, err
		}
		if err := out.Truncate(0); err != nil {
			return 0, 0, err
		}
		if _, err := io.Copy(out, resp.Body); err != nil {
			return 0, 0, fmt.Errorf("source %s: download: %w", c.name, redact(err))
		}
		return resp.StatusCode, 0, nil
	})
	if err != nil {
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	path := base + extension(base, fileType)
	return path, os.Rename(base, path)
}

// extension names a downloaded file by its content, so DuckDB reads it
// right: gzip is recognised by its magic bytes, not by a name.
func extension(path, fileType string) string {
	switch fileType {
	case "json":
		return ""
	case "parquet":
		return ".parquet"
	}
	f, err := os.Open(path)
	if err != nil {
		return ".csv"
	}
	defer f.Close()
	var magic [2]byte
	if n, _ := io.ReadFull(f, magic[:]); n == 2 && magic == [2]byte{0x1f, 0x8b} {
		return ".csv.gz"
	}
	return ".csv"
}

// sliceRequest builds the request of a manifest entry on the file's
// provider (reference §6): GCS JSON API with the bearer token, S3 signed
// with the federated keys, Azure Blob with the SAS; an https entry is a
// pre-signed URL.
func (c *Connector) sliceRequest(f *fileDetail, entry string) (func() (*http.Request, error), error) {
	u, err := url.Parse(entry)
	if err != nil {
		return nil, fmt.Errorf("manifest entry %q: %w", entry, err)
	}
	object := strings.TrimPrefix(u.Path, "/")
	switch {
	case u.Scheme == "gs" && f.GCSCredentials != nil:
		target := c.gcsEndpoint + "/storage/v1/b/" + url.PathEscape(u.Host) + "/o/" + url.PathEscape(object) + "?alt=media"
		token := f.GCSCredentials.AccessToken
		return func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodGet, target, nil)
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			return req, err
		}, nil
	case u.Scheme == "s3" && f.Credentials != nil:
		region := cmpOr(f.Region, "us-east-1")
		target := &url.URL{Scheme: "https", Host: u.Host + ".s3." + region + ".amazonaws.com", Path: "/" + object}
		if c.s3Endpoint != "" { // path style, as S3-compatible endpoints expect
			e, err := url.Parse(c.s3Endpoint)
			if err != nil {
				return nil, fmt.Errorf("S3 endpoint %q: %w", c.s3Endpoint, err)
			}
			target = &url.URL{Scheme: e.Scheme, Host: e.Host, Path: strings.TrimRight(e.Path, "/") + "/" + u.Host + "/" + object}
		}
		creds := sigv4.Credentials{AccessKeyID: f.Credentials.AccessKeyID, SecretAccessKey: f.Credentials.SecretAccessKey,
			SessionToken: f.Credentials.SessionToken}
		return func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodGet, target.String(), nil)
			if err == nil {
				sigv4.Sign(req, creds, region, "s3", time.Now())
			}
			return req, err
		}, nil
	case (u.Scheme == "azure" || u.Scheme == "https") && f.ABSCredentials != nil:
		endpoint, sas, err := parseSAS(f.ABSCredentials.SASConnectionString)
		if err != nil {
			return nil, err
		}
		container, blob, ok := strings.Cut(object, "/")
		if !ok {
			return nil, fmt.Errorf("manifest entry %q names no container and blob", entry)
		}
		segs := strings.Split(blob, "/")
		for i, s := range segs {
			segs[i] = url.PathEscape(s)
		}
		target := endpoint + "/" + url.PathEscape(container) + "/" + strings.Join(segs, "/") + "?" + sas
		return func() (*http.Request, error) { return http.NewRequest(http.MethodGet, target, nil) }, nil
	case u.Scheme == "https":
		return func() (*http.Request, error) { return http.NewRequest(http.MethodGet, entry, nil) }, nil
	}
	return nil, fmt.Errorf("manifest entry %s: no credentials for it in the file detail (provider %q)", u.Redacted(), f.Provider)
}

// parseSAS reads BlobEndpoint and SharedAccessSignature from an Azure
// connection string.
func parseSAS(conn string) (endpoint, sas string, err error) {
	for part := range strings.SplitSeq(conn, ";") {
		k, v, _ := strings.Cut(part, "=")
		switch strings.TrimSpace(k) {
		case "BlobEndpoint":
			endpoint = strings.TrimRight(v, "/")
		case "SharedAccessSignature":
			sas = strings.TrimPrefix(v, "?")
		}
	}
	if endpoint == "" || sas == "" {
		return "", "", errors.New("the Azure SAS connection string has no BlobEndpoint or SharedAccessSignature")
	}
	return endpoint, sas, nil
}

// withoutQuery is u without its query (signatures, SAS tokens).
func withoutQuery(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	return v.String()
}

// redact drops the query (signatures, SAS tokens) from the URL of a
// transport error.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			return &url.Error{Op: ue.Op, URL: withoutQuery(u), Err: ue.Err}
		}
	}
	return err
}
