package kbcfake_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agnesdata/agnes/connectors/keboola/kbcfake"
)

func newFake(t *testing.T) *kbcfake.Server {
	t.Helper()
	f := kbcfake.New()
	t.Cleanup(f.Close)
	f.AddTable(kbcfake.Table{
		ID: "in.c-crm.orders", Columns: []string{"order_id", "status", "amount"}, PrimaryKey: []string{"order_id"},
		Rows: []kbcfake.Row{
			{Values: []string{"1", "open", "50"}, Changed: time.Unix(1778803200, 0)},
			{Values: []string{"2", "pending", "150"}, Changed: time.Unix(1778803200, 0)},
			{Values: []string{"3", "open", "99.5"}, Changed: time.Unix(1778803199, 0)},
			{Values: []string{"4", "shipped", "500"}, Changed: time.Unix(1778803300, 0)},
			{Values: []string{"5", "open", "1e3"}, Changed: time.Unix(1778803300, 0)},
		},
	})
	return f
}

// call sends a request with the token (unless token is "") and decodes
// the JSON answer into out.
func call(t *testing.T, method, u, token, contentType, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-StorageApi-Token", token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if raw, ok := out.(*[]byte); ok {
			*raw = b
		} else if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, u, err, b)
		}
	}
	return resp.StatusCode
}

// export runs an export to the end and returns its rows as CSV text.
func export(t *testing.T, f *kbcfake.Server, contentType, body string) (string, int64) {
	t.Helper()
	var job struct {
		ID      int64  `json:"id"`
		Status  string `json:"status"`
		Results *struct {
			File struct {
				ID int64 `json:"id"`
			} `json:"file"`
		} `json:"results"`
	}
	if code := call(t, "POST", f.URL()+"/v2/storage/tables/in.c-crm.orders/export-async", f.Token(), contentType, body, &job); code != http.StatusAccepted || job.Status != "waiting" {
		t.Fatalf("export-async: %d %+v", code, job)
	}
	var statuses []string
	for job.Status != "success" {
		call(t, "GET", f.URL()+"/v2/storage/jobs/"+itoa(job.ID), f.Token(), "", "", &job)
		statuses = append(statuses, job.Status)
	}
	if strings.Join(statuses, ",") != "waiting,processing,success" {
		t.Errorf("job went %v", statuses)
	}
	var file struct {
		URL            string `json:"url"`
		IsSliced       bool   `json:"isSliced"`
		GCSCredentials struct {
			AccessToken string `json:"access_token"`
		} `json:"gcsCredentials"`
	}
	call(t, "GET", f.URL()+"/v2/storage/files/"+itoa(job.Results.File.ID)+"?federationToken=1", f.Token(), "", "", &file)
	var manifest struct {
		Entries []struct {
			URL string `json:"url"`
		} `json:"entries"`
	}
	if code := call(t, "GET", file.URL, "", "", "", &manifest); code != http.StatusOK || !file.IsSliced {
		t.Fatalf("manifest: %d", code)
	}
	var csv strings.Builder
	for _, e := range manifest.Entries {
		object := strings.TrimPrefix(e.URL, "gs://kbc-files-fake/")
		req, _ := http.NewRequest("GET", f.GCSEndpoint()+"/storage/v1/b/kbc-files-fake/o/"+url.PathEscape(object)+"?alt=media", nil)
		req.Header.Set("Authorization", "Bearer "+file.GCSCredentials.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("slice %s: %v %v", object, err, resp.Status)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(zr)
		resp.Body.Close()
		csv.Write(b)
	}
	return csv.String(), job.Results.File.ID
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestJSONAndFormBodies: the JSON body and the PHP bracket form body of
// the reference decode to the same export: filters AND-ed, eq as IN,
// numeric ge with dataType, changedSince inclusive.
func TestJSONAndFormBodies(t *testing.T) {
	f := newFake(t)
	jsonBody := `{"columns": "order_id,status,amount", "changedSince": "1778803200", "gzip": true,
		"whereFilters": [{"column": "status", "operator": "eq", "values": ["open", "pending"]},
			{"column": "amount", "operator": "ge", "values": ["100"], "dataType": "DOUBLE"}]}`
	form := "columns=order_id%2Cstatus%2Camount&changedSince=1778803200&gzip=1" +
		"&whereFilters%5B0%5D%5Bcolumn%5D=status&whereFilters%5B0%5D%5Boperator%5D=eq" +
		"&whereFilters%5B0%5D%5Bvalues%5D%5B0%5D=open&whereFilters%5B0%5D%5Bvalues%5D%5B1%5D=pending" +
		"&whereFilters%5B1%5D%5Bcolumn%5D=amount&whereFilters%5B1%5D%5Boperator%5D=ge" +
		"&whereFilters%5B1%5D%5Bvalues%5D%5B0%5D=100&whereFilters%5B1%5D%5BdataType%5D=DOUBLE"
	a, fileA := export(t, f, "application/json", jsonBody)
	b, fileB := export(t, f, "application/x-www-form-urlencoded", form)
	if want := "\"2\",\"pending\",\"150\"\n\"5\",\"open\",\"1e3\"\n"; a != want || b != want {
		t.Errorf("JSON export %q, form export %q, want %q", a, b, want)
	}
	exp := f.Exports()
	if !reflect.DeepEqual(exp[0].Params, exp[1].Params) || fileA != fileB {
		t.Errorf("params differ:\n%+v\n%+v", exp[0].Params, exp[1].Params)
	}
	// The deprecated single filter.
	c, _ := export(t, f, "application/x-www-form-urlencoded", "whereColumn=status&whereOperator=ne&whereValues%5B%5D=open&whereValues%5B%5D=pending&gzip=1")
	if c != "\"4\",\"shipped\",\"500\"\n" {
		t.Errorf("whereColumn export %q", c)
	}
}

// TestErrors: bad exports, tokens and signed-URL misuse get the API's answers.
func TestErrors(t *testing.T) {
	f := newFake(t)
	var body struct {
		Error, Code, ExceptionID, Status string
	}
	for name, tc := range map[string]struct {
		token, path, body string
		status            int
		code              string
	}{
		"bad token":        {"nope", "/v2/storage/tokens/verify", "", 401, "storage.tokenInvalid"},
		"no table":         {f.Token(), "/v2/storage/tables/in.c-crm.nope", "", 404, "storage.tables.notFound"},
		"other bucket":     {f.NewToken("out.c-x"), "/v2/storage/tables/in.c-crm.orders", "", 403, "accessDenied"},
		"multi-value ge":   {f.Token(), "/v2/storage/tables/in.c-crm.orders/export-async", `{"whereFilters":[{"column":"amount","operator":"ge","values":["1","2"]}]}`, 400, "storage.tables.validation"},
		"unknown column":   {f.Token(), "/v2/storage/tables/in.c-crm.orders/export-async", `{"columns":"order_id,nope"}`, 400, "storage.tables.validation"},
		"unknown operator": {f.Token(), "/v2/storage/tables/in.c-crm.orders/export-async", `{"whereFilters":[{"column":"amount","operator":"like","values":["1"]}]}`, 400, "storage.tables.validation"},
	} {
		method := "GET"
		if tc.body != "" {
			method = "POST"
		}
		body.Code, body.ExceptionID = "", ""
		if code := call(t, method, f.URL()+tc.path, tc.token, "application/json", tc.body, &body); code != tc.status ||
			body.Code != tc.code || !strings.HasPrefix(body.ExceptionID, "exception-") || body.Status != "error" || body.Error == "" {
			t.Errorf("%s: %d %+v", name, code, body)
		}
	}

	// Quirks: +0200 timestamps, columnMetadata [] when empty.
	var raw []byte
	call(t, "GET", f.URL()+"/v2/storage/tables/in.c-crm.orders", f.Token(), "", "", &raw)
	if !regexp.MustCompile(`"created":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0200"`).Match(raw) || !bytes.Contains(raw, []byte(`"columnMetadata":[]`)) {
		t.Errorf("table detail %s", raw)
	}

	// Signed and cloud URLs refuse the Storage token; slashes in GCS
	// object names must be escaped.
	_, fileID := export(t, f, "application/json", `{"gzip": true}`)
	var file struct {
		URL            string
		GCSCredentials struct {
			AccessToken string `json:"access_token"`
		} `json:"gcsCredentials"`
	}
	call(t, "GET", f.URL()+"/v2/storage/files/"+itoa(fileID)+"?federationToken=1", f.Token(), "", "", &file)
	if code := call(t, "GET", file.URL, f.Token(), "", "", nil); code != http.StatusBadRequest {
		t.Errorf("signed URL with the Storage token: %d", code)
	}
	if code := call(t, "GET", strings.Replace(file.URL, "sig=", "sig=x", 1), "", "", "", nil); code != http.StatusForbidden {
		t.Errorf("signed URL with a wrong signature: %d", code)
	}
	var manifest struct{ Entries []struct{ URL string } }
	call(t, "GET", file.URL, "", "", "", &manifest)
	object := strings.TrimPrefix(manifest.Entries[0].URL, "gs://kbc-files-fake/")
	for name, tc := range map[string]struct {
		path, auth string
		status     int
	}{
		"escaped":        {url.PathEscape(object), "Bearer " + file.GCSCredentials.AccessToken, 200},
		"raw slashes":    {object, "Bearer " + file.GCSCredentials.AccessToken, 404},
		"no credentials": {url.PathEscape(object), "", 401},
	} {
		req, _ := http.NewRequest("GET", f.GCSEndpoint()+"/storage/v1/b/kbc-files-fake/o/"+tc.path+"?alt=media", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GCS %s: %d, want %d", name, resp.StatusCode, tc.status)
		}
	}
}
