package keboola

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// The Storage API's JSON, as much of it as the connector reads. Its quirks
// (reference §1): ids are numbers or strings, timestamps carry +0200-style
// offsets, and an empty PHP object arrives as [].

// flexString is a JSON string, number or null, as text.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want a string or a number, got %s", b)
		}
		*f = flexString(n)
	}
	return nil
}

// kbcTime is a Storage API timestamp ("2026-05-19T12:56:57+0200"); null
// and "" are the zero time.
type kbcTime struct{ time.Time }

func (t *kbcTime) UnmarshalJSON(b []byte) error {
	var s string
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		return nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05-0700", time.RFC3339, "2006-01-02 15:04:05"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v
			return nil
		}
	}
	return fmt.Errorf("time %q is in no known form", s)
}

// phpObject decodes b into v unless it is the empty PHP array [] (or
// null), which stands for an empty object.
func phpObject(b []byte, v any) error {
	switch string(bytes.TrimSpace(b)) {
	case "[]", "null":
		return nil
	}
	return json.Unmarshal(b, v)
}

type metadata struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	Provider string `json:"provider"`
}

// columnMetadata is metadata by column; the API sends [] for none.
type columnMetadata map[string][]metadata

func (c *columnMetadata) UnmarshalJSON(b []byte) error {
	m := map[string][]metadata{}
	if err := phpObject(b, &m); err != nil {
		return err
	}
	*c = m
	return nil
}

type table struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	DisplayName    string         `json:"displayName"`
	PrimaryKey     []string       `json:"primaryKey"`
	Columns        []string       `json:"columns"`
	RowsCount      int64          `json:"rowsCount"`
	DataSizeBytes  int64          `json:"dataSizeBytes"`
	Created        kbcTime        `json:"created"`
	IsTyped        bool           `json:"isTyped"`
	IsAlias        bool           `json:"isAlias"`
	Metadata       []metadata     `json:"metadata"`
	ColumnMetadata columnMetadata `json:"columnMetadata"`
	SourceTable    *struct {
		ID             string         `json:"id"`
		Metadata       []metadata     `json:"metadata"`
		ColumnMetadata columnMetadata `json:"columnMetadata"`
	} `json:"sourceTable"`
	Definition *struct {
		Columns []struct {
			Name       string `json:"name"`
			BaseType   string `json:"basetype"`
			Definition struct {
				Type   string     `json:"type"`
				Length flexString `json:"length"`
			} `json:"definition"`
		} `json:"columns"`
	} `json:"definition"`
	Bucket struct {
		ID string `json:"id"`
	} `json:"bucket"`
}

// description is the table's KBC.description (its own, else its alias
// source's), preferring the user's.
func (t *table) description() string {
	list := t.Metadata
	if t.SourceTable != nil {
		list = append(list, t.SourceTable.Metadata...)
	}
	return pick(list, "KBC.description")
}

// pick returns the value of key, preferring the provider "user".
func pick(list []metadata, key string) string {
	var found string
	for _, m := range list {
		if m.Key == key {
			if m.Provider == "user" {
				return m.Value
			}
			found = cmpOr(found, m.Value)
		}
	}
	return found
}

// exportRequest is the JSON body of export-async. Filters go as a JSON
// array: a form body loses them unless encoded with PHP brackets (§10).
type exportRequest struct {
	Columns      string        `json:"columns,omitempty"`
	ChangedSince int64         `json:"changedSince,omitempty"` // UTC unix seconds, inclusive
	ChangedUntil int64         `json:"changedUntil,omitempty"` // exclusive
	WhereFilters []whereFilter `json:"whereFilters,omitempty"`
	Gzip         bool          `json:"gzip"`
	Format       string        `json:"format"`
	FileType     string        `json:"fileType"`
}

type whereFilter struct {
	Column   string   `json:"column"`
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
	DataType string   `json:"dataType,omitempty"`
}

type job struct {
	ID          flexString `json:"id"`
	Status      string     `json:"status"`
	CreatedTime kbcTime    `json:"createdTime"`
	Results     jobResults `json:"results"`
	Error       *struct {
		Code        flexString `json:"code"`
		Message     string     `json:"message"`
		ExceptionID string     `json:"exceptionId"`
	} `json:"error"`
}

type jobResults struct {
	File struct {
		ID flexString `json:"id"`
	} `json:"file"`
}

func (r *jobResults) UnmarshalJSON(b []byte) error {
	type plain jobResults
	return phpObject(b, (*plain)(r))
}

// fileDetail is a file with its federated credentials. It holds secrets:
// never log it.
type fileDetail struct {
	ID          flexString `json:"id"`
	IsSliced    bool       `json:"isSliced"`
	FileType    string     `json:"fileType"`
	URL         string     `json:"url"`
	Provider    string     `json:"provider"`
	Region      string     `json:"region"`
	Credentials *struct {
		AccessKeyID     string `json:"AccessKeyId"`
		SecretAccessKey string `json:"SecretAccessKey"`
		SessionToken    string `json:"SessionToken"`
	} `json:"credentials"`
	S3Path *struct {
		Bucket string `json:"bucket"`
	} `json:"s3Path"`
	GCSCredentials *struct {
		AccessToken string `json:"access_token"`
	} `json:"gcsCredentials"`
	ABSCredentials *struct {
		SASConnectionString string `json:"SASConnectionString"`
	} `json:"absCredentials"`
}

type manifest struct {
	Entries []struct {
		URL string `json:"url"`
	} `json:"entries"`
}

func (c *client) verifyToken(ctx context.Context) error {
	var v struct {
		Owner struct {
			ID flexString `json:"id"`
		} `json:"owner"`
	}
	return c.get(ctx, "/tokens/verify", nil, &v)
}

func (c *client) tables(ctx context.Context) ([]table, error) {
	var out []table
	err := c.get(ctx, "/tables", url.Values{"include": {"columns,buckets,metadata"}}, &out)
	return out, err
}

func (c *client) table(ctx context.Context, id string) (*table, error) {
	var t table
	if err := c.get(ctx, "/tables/"+id, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

func (c *client) startExport(ctx context.Context, tableID string, req exportRequest) (*job, error) {
	var j job
	if err := c.post(ctx, "/tables/"+tableID+"/export-async", req, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func (c *client) job(ctx context.Context, id flexString) (*job, error) {
	var j job
	if err := c.get(ctx, "/jobs/"+url.PathEscape(string(id)), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func (c *client) file(ctx context.Context, id flexString) (*fileDetail, error) {
	var f fileDetail
	if err := c.get(ctx, "/files/"+url.PathEscape(string(id)), url.Values{"federationToken": {"1"}}, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// setColumnMetadata upserts metadata of one column under provider.
func (c *client) setColumnMetadata(ctx context.Context, tableID, column, provider string, kv map[string]string) error {
	type entry struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	body := struct {
		Provider string  `json:"provider"`
		Metadata []entry `json:"metadata"`
	}{Provider: provider}
	for k, v := range kv {
		body.Metadata = append(body.Metadata, entry{k, v})
	}
	var out []metadata
	return c.post(ctx, "/columns/"+tableID+"."+column+"/metadata", body, &out)
}

// splitTableID splits "in.c-crm.orders" into bucket and table name.
func splitTableID(id string) (bucket, name string, ok bool) {
	i := strings.LastIndexByte(id, '.')
	if i < 0 || strings.Count(id, ".") != 2 {
		return "", "", false
	}
	return id[:i], id[i+1:], id[:i] != "" && id[i+1:] != "" && !strings.HasPrefix(id, ".")
}
