package jiraserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/route"
	"github.com/agnesdata/agnes/server/internal/store"
)

// MaxWebhookBytes bounds a webhook body; Jira's are a few kilobytes.
const MaxWebhookBytes = 1 << 20

// deliveryRE is what a delivery id may look like (Jira sends a UUID).
var deliveryRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// Routes are the webhook receiver (public: the HMAC signature is the
// authentication) under the seed's path and the Python system's, the inbox's
// health (admins). JiraService's REST bindings are served by the REST mirror.
func (s *Server) Routes() []route.Route {
	return []route.Route{
		{Pattern: "POST /api/jira/webhook", Name: "jira.webhook", Policy: route.Public, Handler: s.receive},
		{Pattern: "POST /webhooks/jira", Name: "jira.webhook", Policy: route.Public, Handler: s.receive},
		{Pattern: "GET /api/jira/webhook/health", Name: "jira.webhook.health", Policy: route.Admin, Handler: s.health},
		{Pattern: "GET /webhooks/jira/health", Name: "jira.webhook.health", Policy: route.Admin, Handler: s.health},
	}
}

// Receipt is the webhook's answer.
type Receipt struct {
	Status    string `json:"status"` // "ok"
	Event     string `json:"event"`
	Issue     string `json:"issue"` // empty for attachment_* and issuelink_* events
	Delivery  string `json:"delivery"`
	Duplicate bool   `json:"duplicate"` // the delivery was stored before: nothing more to do
}

// receive stores a signed delivery in the inbox and answers 200; the apply
// job does the rest. 503 without a secret (it fails closed), 401 on a bad or
// missing signature (nothing is stored), 400 on a body that is no event with
// a valid issue key, 413 over MaxWebhookBytes. A store failure answers 500,
// which Jira retries: what is acknowledged is stored.
func (s *Server) receive(w http.ResponseWriter, r *http.Request) error {
	x := s.def
	if x == nil {
		return apierr.Unavailable("no Jira source is configured")
	}
	secret := x.src.WebhookSecret()
	if secret.IsZero() {
		return apierr.Unavailable("the Jira webhook secret is not configured (JIRA_WEBHOOK_SECRET): deliveries are refused")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &route.TooLargeError{Msg: "the webhook body is larger than 1 MiB"}
	}
	if err != nil {
		return apierr.InvalidArgument("the webhook body could not be read")
	}
	if err := jira.VerifySignature(secret, body, jira.SignatureHeader(r.Header)); err != nil {
		return apierr.Unauthenticated("the webhook signature is missing or does not match")
	}
	ev, err := jira.ParseEvent(body)
	var bad *jira.EventError
	if errors.As(err, &bad) {
		return apierr.InvalidArgument("%s", bad.Msg)
	}
	if err != nil {
		return err
	}
	id := deliveryID(r.Header.Get("X-Atlassian-Webhook-Identifier"), body)
	err = s.store.AddWebhookEvent(r.Context(), &store.WebhookEvent{Source: x.name, DeliveryID: id, Event: ev.Name,
		IssueKey: ev.IssueKey, Body: body, ReceivedAt: time.Now().UTC()})
	duplicate := errors.Is(err, store.ErrAlreadyExists)
	if err != nil && !duplicate {
		return err
	}
	if !duplicate {
		x.notify()
	}
	return writeJSON(w, Receipt{Status: "ok", Event: ev.Name, Issue: ev.IssueKey, Delivery: id, Duplicate: duplicate})
}

// deliveryID is the dedup key of a delivery: Jira's identifier (stable across
// its retries), or a hash of it when it is not a plain token (never refused:
// Jira does not retry a 400), or of the body when there is none.
func deliveryID(header string, body []byte) string {
	id := strings.TrimSpace(header)
	switch {
	case id == "":
		sum := sha256.Sum256(body)
		return "body-sha256:" + hex.EncodeToString(sum[:])
	case !deliveryRE.MatchString(id):
		sum := sha256.Sum256([]byte(id))
		return "id-sha256:" + hex.EncodeToString(sum[:])
	}
	return id
}

// Health is the webhook inbox's health.
type Health struct {
	// Status: "ok"; "backlog" when events wait after a failed attempt (Jira
	// down or rate limiting); "not_configured" without a source or secret.
	Status           string     `json:"status"`
	Configured       bool       `json:"configured"`
	WebhookSecretSet bool       `json:"webhook_secret_set"`
	Source           string     `json:"source"`
	LastEventAt      *time.Time `json:"last_event_at"`
	LastProcessedAt  *time.Time `json:"last_processed_at"`
	Backlog          int        `json:"backlog"`  // events not processed yet
	Retrying         int        `json:"retrying"` // of which put off after a failure
	OldestPendingAt  *time.Time `json:"oldest_pending_at"`
	// Publishes counts this process's writes of the source's tables; Rebuilds
	// those that needed a new generation (the first, new tables).
	Publishes  int64  `json:"publishes"`
	Rebuilds   int64  `json:"rebuilds"`
	Generation uint64 `json:"generation"` // the analytics generation serving queries
}

// health reports the default source's inbox.
func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	h := Health{Status: "not_configured", Generation: s.an.Engine.Generation()}
	if x := s.def; x != nil {
		st, err := s.store.WebhookEventStats(r.Context(), x.name)
		if err != nil {
			return err
		}
		h.Configured, h.WebhookSecretSet, h.Source = true, !x.src.WebhookSecret().IsZero(), x.name
		h.LastEventAt, h.LastProcessedAt, h.OldestPendingAt = st.LastReceived, st.LastProcessed, st.OldestPending
		h.Backlog, h.Retrying = st.Pending, st.Retrying
		h.Publishes, h.Rebuilds = x.publishes.Load(), x.rebuilds.Load()
		switch {
		case !h.WebhookSecretSet:
		case st.Retrying > 0:
			h.Status = "backlog"
		default:
			h.Status = "ok"
		}
	}
	return writeJSON(w, h)
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}
