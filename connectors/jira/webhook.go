package jira

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors"
)

// Errors of VerifySignature; the receiver answers 503 and 401.
var (
	ErrNoSecret     = errors.New("jira webhook secret is not configured")
	ErrBadSignature = errors.New("jira webhook signature is missing or does not match")
)

// SignatureHeader returns the signature a delivery carries:
// X-Hub-Signature-256 if present, else X-Hub-Signature (what Jira sends).
func SignatureHeader(h http.Header) string {
	if v := h.Get("X-Hub-Signature-256"); v != "" {
		return v
	}
	return h.Get("X-Hub-Signature")
}

// VerifySignature checks header ("sha256=<hex>" or bare hex) against the
// HMAC-SHA256 of the exact raw body under secret, in constant time. It
// fails closed: without a secret nothing verifies.
func VerifySignature(secret connectors.Secret, body []byte, header string) error {
	if secret.IsZero() {
		return ErrNoSecret
	}
	header = strings.TrimSpace(header)
	if header == "" {
		return fmt.Errorf("%w: no X-Hub-Signature header", ErrBadSignature)
	}
	if algo, sig, ok := strings.Cut(header, "="); ok {
		if !strings.EqualFold(algo, "sha256") {
			return fmt.Errorf("%w: algorithm %q is not sha256", ErrBadSignature, algo)
		}
		header = sig
	}
	got, err := hex.DecodeString(header)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: not a hex SHA-256 digest", ErrBadSignature)
	}
	m := hmac.New(sha256.New, []byte(secret.Reveal()))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}

// EventError is a webhook body the receiver rejects with 400; its message
// says what was wrong and is safe to answer.
type EventError struct{ Msg string }

func (e *EventError) Error() string { return "jira webhook: " + e.Msg }

// Event is what a webhook says, reduced to what processing needs: which
// issues to refetch. The body's issue fields are never used as data.
type Event struct {
	Name      string    // webhookEvent, e.g. jira:issue_updated, comment_created
	Timestamp time.Time // the event time; zero if absent
	IssueKey  string    // empty for attachment_* and issuelink_* events
	IssueID   string
	// AttachmentID is set for attachment_* events (their bodies carry no issue).
	AttachmentID string
	// LinkID and LinkIssueIDs (source, destination) are set for
	// issuelink_* events, which carry numeric issue ids, not keys.
	LinkID       string
	LinkIssueIDs []string
}

// Deleted reports whether the event says the issue was deleted.
func (e Event) Deleted() bool {
	return e.Name == "jira:issue_deleted" || e.Name == "issue_deleted"
}

var (
	keyRE     = regexp.MustCompile(`^[A-Z][A-Z0-9]{0,31}-[0-9]{1,12}$`)
	projectRE = regexp.MustCompile(`^[A-Z][A-Z0-9]{0,31}$`)
	idRE      = regexp.MustCompile(`^[0-9]{1,18}$`)
)

func validKey(k string) bool { return keyRE.MatchString(k) }

// ValidKey reports whether k is an issue key: ^[A-Z][A-Z0-9]{0,31}-[0-9]{1,12}$.
func ValidKey(k string) bool { return validKey(k) }

// ParseEvent validates a webhook body: JSON, a non-empty object with a
// webhookEvent, and a valid issue key (issue.key, else issue_key) —
// except attachment_* events, which need attachment.id, and issuelink_*
// events, which need issueLink's id and both issue ids.
func ParseEvent(body []byte) (Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return Event{}, &EventError{Msg: "empty body"}
	}
	var raw struct {
		WebhookEvent string          `json:"webhookEvent"`
		Timestamp    json.RawMessage `json:"timestamp"`
		IssueKey     json.RawMessage `json:"issue_key"`
		Issue        json.RawMessage `json:"issue"`
		Attachment   json.RawMessage `json:"attachment"`
		IssueLink    json.RawMessage `json:"issueLink"`
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return Event{}, &EventError{Msg: "body is not a JSON object"}
	}
	if len(probe) == 0 {
		return Event{}, &EventError{Msg: "empty event object"}
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return Event{}, &EventError{Msg: "malformed event: " + err.Error()}
	}
	ev := Event{Name: raw.WebhookEvent}
	if ev.Name == "" {
		return Event{}, &EventError{Msg: "no webhookEvent"}
	}
	var ms int64
	if len(raw.Timestamp) > 0 && json.Unmarshal(raw.Timestamp, &ms) == nil && ms > 0 {
		ev.Timestamp = time.UnixMilli(ms).UTC()
	}
	var issue struct {
		ID  json.RawMessage `json:"id"`
		Key json.RawMessage `json:"key"`
	}
	if len(raw.Issue) > 0 && !bytes.Equal(raw.Issue, []byte("null")) {
		if err := json.Unmarshal(raw.Issue, &issue); err != nil {
			return Event{}, &EventError{Msg: "issue is not an object"}
		}
	}
	key, _ := str(issue.Key)
	if key == "" {
		key, _ = str(raw.IssueKey)
	}
	if key != "" {
		if !validKey(key) {
			return Event{}, &EventError{Msg: fmt.Sprintf("issue key %q is not a valid key (like SUP-42)", clip(key))}
		}
		ev.IssueKey = key
	}
	if id, ok := str(issue.ID); ok && idRE.MatchString(id) {
		ev.IssueID = id
	}
	switch {
	case strings.HasPrefix(ev.Name, "attachment_"):
		var a struct {
			ID json.RawMessage `json:"id"`
		}
		_ = json.Unmarshal(raw.Attachment, &a)
		id, _ := str(a.ID)
		if !idRE.MatchString(id) {
			return Event{}, &EventError{Msg: ev.Name + " without a numeric attachment.id"}
		}
		ev.AttachmentID = id
	case strings.HasPrefix(ev.Name, "issuelink_"):
		var l struct {
			ID  json.RawMessage `json:"id"`
			Src json.RawMessage `json:"sourceIssueId"`
			Dst json.RawMessage `json:"destinationIssueId"`
		}
		_ = json.Unmarshal(raw.IssueLink, &l)
		id, _ := str(l.ID)
		src, _ := str(l.Src)
		dst, _ := str(l.Dst)
		if !idRE.MatchString(id) || !idRE.MatchString(src) || !idRE.MatchString(dst) {
			return Event{}, &EventError{Msg: ev.Name + " without numeric issueLink.id, sourceIssueId and destinationIssueId"}
		}
		ev.LinkID, ev.LinkIssueIDs = id, []string{src, dst}
	case ev.IssueKey == "":
		return Event{}, &EventError{Msg: ev.Name + " carries no issue key"}
	}
	return ev, nil
}

// str reads a JSON string or number as text; ok is false for absent or null.
func str(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return string(raw), true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
