package jirafake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
)

// Delivery is one webhook POST as Jira would send it: the exact body
// bytes, the event name, the delivery id (X-Atlassian-Webhook-Identifier,
// stable across retries) and the flow (Primary, or Secondary for the
// cascade of an issue delete).
type Delivery struct {
	ID    string
	Event string
	Flow  string
	Body  []byte
}

// Deliveries returns the webhook deliveries queued by mutations since the
// last call, in the order Jira produced them, and clears the queue.
// Dropping one (not sending it) models a lost webhook.
func (f *Fake) Deliveries() []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.outbox
	f.outbox = nil
	return out
}

// queue adds a delivery with the common fields. Callers hold mu.
func (f *Fake) queue(event, flow string, body map[string]any) {
	body["timestamp"] = f.now.UnixMilli()
	body["webhookEvent"] = event
	body["matchedWebhookIds"] = []int{1}
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	f.seq++
	id := fmt.Sprintf("%08x-7c1e-4b8e-9a3f-%012d", f.seq, f.seq)
	f.outbox = append(f.outbox, Delivery{ID: id, Event: event, Flow: flow, Body: raw})
}

// queueIssueEvent queues a jira:issue_* event. Cloud issue bodies carry no
// comment objects and no changelog histories.
func (f *Fake) queueIssueEvent(event, typ string, is *issue, by User, changelog map[string]any) {
	fields := map[string]any{}
	for k, v := range is.fields {
		fields[k] = v
	}
	body := map[string]any{
		"issue_event_type_name": typ,
		"user":                  userJSON(by),
		"issue": map[string]any{"id": is.id, "key": is.key,
			"self": f.srv.URL + "/rest/api/2/issue/" + is.id, "fields": fields},
	}
	if changelog != nil {
		body["changelog"] = changelog
	}
	f.queue(event, "Primary", body)
}

func (f *Fake) queueCommentEvent(event string, is *issue, c *comment) {
	f.queueCommentEventFlow(event, "Primary", is, c)
}

func (f *Fake) queueCommentEventFlow(event, flow string, is *issue, c *comment) {
	trimmed := map[string]any{}
	for _, k := range []string{"summary", "status", "priority", "issuetype", "project", "assignee"} {
		trimmed[k] = is.fields[k]
	}
	f.queue(event, flow, map[string]any{
		"comment": f.commentJSON(is, c),
		"issue":   map[string]any{"id": is.id, "key": is.key, "self": f.srv.URL + "/rest/api/2/issue/" + is.id, "fields": trimmed},
	})
}

// Signing is how the Sender signs a delivery.
type Signing int

// Signing modes.
const (
	SignPrefixed  Signing = iota // X-Hub-Signature: sha256=<hex>, as Jira does
	SignBareHex                  // X-Hub-Signature: <hex>
	SignHeader256                // X-Hub-Signature-256: sha256=<hex>
	SignWrong                    // a signature made with another secret
	SignNone                     // no signature header
)

// Sender posts deliveries to a receiver the way Jira's webhook service
// does: the exact bytes, Content-Type application/json, the HMAC-SHA256
// signature of the body, X-Atlassian-Webhook-Identifier and -Flow, and
// X-Atlassian-Webhook-Retry on retries. It retries on 408, 409, 425, 429,
// 5xx and connection failures (up to Retries times), not on other 4xx.
type Sender struct {
	URL     string
	Secret  string
	Signing Signing
	Retries int          // retries after the first attempt (Jira does up to 5)
	Client  *http.Client // default http.DefaultClient
	// Wait runs before each retry; nil retries at once (tests never sleep).
	Wait func(attempt int)
}

// Result is the outcome of one delivery.
type Result struct {
	Status   int // the last answer's status, 0 if the connection failed
	Attempts int
	Body     []byte // the last answer's body
}

// Send delivers d, retrying as Jira does.
func (s *Sender) Send(ctx context.Context, d Delivery) (Result, error) {
	var res Result
	var lastErr error
	for attempt := 0; attempt <= s.Retries; attempt++ {
		if attempt > 0 && s.Wait != nil {
			s.Wait(attempt)
		}
		res.Attempts = attempt + 1
		status, body, err := s.post(ctx, d, attempt)
		res.Status, res.Body, lastErr = status, body, err
		if err == nil && !retryable(status) {
			return res, nil
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	if lastErr != nil {
		return res, lastErr
	}
	return res, nil
}

// SendAll sends deliveries in order and fails on the first delivery that
// was not answered 2xx.
func (s *Sender) SendAll(ctx context.Context, ds []Delivery) error {
	for _, d := range ds {
		res, err := s.Send(ctx, d)
		if err != nil {
			return fmt.Errorf("delivery %s (%s): %w", d.ID, d.Event, err)
		}
		if res.Status/100 != 2 {
			return fmt.Errorf("delivery %s (%s): answered %d: %s", d.ID, d.Event, res.Status, res.Body)
		}
	}
	return nil
}

func retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return status >= 500
}

func (s *Sender) post(ctx context.Context, d Delivery, attempt int) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Atlassian Webhook HTTP Client")
	req.Header.Set("X-Atlassian-Webhook-Identifier", d.ID)
	req.Header.Set("X-Atlassian-Webhook-Flow", d.Flow)
	if attempt > 0 {
		req.Header.Set("X-Atlassian-Webhook-Retry", strconv.Itoa(attempt))
	}
	sig := Sign(s.Secret, d.Body)
	switch s.Signing {
	case SignPrefixed:
		req.Header.Set("X-Hub-Signature", "sha256="+sig)
	case SignBareHex:
		req.Header.Set("X-Hub-Signature", sig)
	case SignHeader256:
		req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
	case SignWrong:
		req.Header.Set("X-Hub-Signature", "sha256="+Sign(s.Secret+"-wrong", d.Body))
	case SignNone:
	}
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, body, nil
}

// Sign is the lowercase hex HMAC-SHA256 of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Reversed returns the deliveries in reverse order.
func Reversed(ds []Delivery) []Delivery {
	out := slices.Clone(ds)
	slices.Reverse(out)
	return out
}

// Duplicated returns each delivery twice in a row (same identifier), as
// Jira does when it retries a delivery whose answer it did not see.
func Duplicated(ds []Delivery) []Delivery {
	var out []Delivery
	for _, d := range ds {
		out = append(out, d, d)
	}
	return out
}

// Only keeps the deliveries of the given events.
func Only(ds []Delivery, events ...string) []Delivery {
	return slices.DeleteFunc(slices.Clone(ds), func(d Delivery) bool { return !slices.Contains(events, d.Event) })
}
