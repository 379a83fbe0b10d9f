package sigv4

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAWSExample signs the GET Object example of the S3 documentation
// ("Signature Calculations for the Authorization Header", GET /test.txt
// with Range: bytes=0-9) and expects AWS's published signature.
func TestAWSExample(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "https://examplebucket.s3.amazonaws.com/test.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", "bytes=0-9")
	creds := Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
	Sign(req, creds, "us-east-1", "s3", time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC))
	want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request," +
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date," +
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization =\n%s\nwant\n%s", got, want)
	}
}

func TestVerify(t *testing.T) {
	creds := Credentials{AccessKeyID: "ASIAFAKE", SecretAccessKey: "secret", SessionToken: "session"}
	secrets := func(id string) (string, bool) { return "secret", id == "ASIAFAKE" }
	newReq := func() *http.Request {
		req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:9000/kbc-files/exp 15/in.c-crm/orders.csv.gz_0_0_0.csv.gz", nil)
		if err != nil {
			t.Fatal(err)
		}
		Sign(req, creds, "eu-central-1", "s3", time.Now())
		return req
	}
	if err := Verify(newReq(), secrets); err != nil {
		t.Fatalf("Verify of a signed request: %v", err)
	}
	if got := newReq().URL.EscapedPath(); got != "/kbc-files/exp%2015/in.c-crm/orders.csv.gz_0_0_0.csv.gz" {
		t.Errorf("path sent as %s", got)
	}
	for name, spoil := range map[string]func(*http.Request){
		"other path":  func(r *http.Request) { r.URL.Path += "x" },
		"other token": func(r *http.Request) { r.Header.Set("X-Amz-Security-Token", "forged") },
		"unknown key": func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "ASIAFAKE", "ASIAOTHER", 1))
		},
		"no signature": func(r *http.Request) { r.Header.Del("Authorization") },
		"other date":   func(r *http.Request) { r.Header.Set("X-Amz-Date", "20200101T000000Z") },
		"other host":   func(r *http.Request) { r.Host = "evil:1" },
	} {
		req := newReq()
		spoil(req)
		if err := Verify(req, secrets); err == nil {
			t.Errorf("%s: Verify accepted it", name)
		}
	}
}
