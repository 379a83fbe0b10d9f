package jira

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
)

// DefaultAttachmentMaxBytes is the largest attachment downloaded (50 MB).
const DefaultAttachmentMaxBytes = 50 << 20

// DefaultGatewayURL is where scoped API tokens reach a site by cloud id.
const DefaultGatewayURL = "https://api.atlassian.com"

// Settings configure one Jira source. Domain or BaseURL names the site;
// with CloudID, REST calls go through the gateway
// (<GatewayURL>/ex/jira/<CloudID>/rest/api/3), as scoped tokens require.
type Settings struct {
	Domain        string            `mapstructure:"domain"`   // acme.atlassian.net
	BaseURL       string            `mapstructure:"base_url"` // a full URL (tests point it at a fake)
	Email         string            `mapstructure:"email"`
	APIToken      connectors.Secret `mapstructure:"api_token"`
	CloudID       string            `mapstructure:"cloud_id"`
	GatewayURL    string            `mapstructure:"gateway_url"`
	WebhookSecret connectors.Secret `mapstructure:"webhook_secret"`
	// Project and Since bound the backfill and the consistency check:
	// project = "<Project>" AND created >= "<Since>".
	Project string `mapstructure:"project"`
	Since   string `mapstructure:"since"` // YYYY-MM-DD
	// SLAFields are the custom fields refreshed by the SLA poll and stored
	// verbatim as JSON in issues, "customfield_10328[:column]" (the
	// column defaults to the field id).
	SLAFields []string `mapstructure:"sla_fields"`
	// CustomFields overrides the field ids behind the issues table's
	// tenant-specific columns (column → customfield id); see
	// DefaultCustomFields.
	CustomFields        map[string]string `mapstructure:"custom_fields"`
	DownloadAttachments bool              `mapstructure:"download_attachments"`
	AttachmentMaxBytes  int64             `mapstructure:"attachment_max_bytes"`
	// Concurrency is how many issues are fetched at once (default 4).
	Concurrency int `mapstructure:"concurrency"`
}

// DefaultCustomFields are the custom field ids of the tenant the Python
// system was written for, by issues column.
var DefaultCustomFields = map[string]string{
	"request":                  "customfield_10010", // request_type, request_status
	"severity":                 "customfield_10004",
	"spam":                     "customfield_10365",
	"slack_link":               "customfield_10350",
	"technical_issue_category": "customfield_10676",
	"email_address":            "customfield_10475",
	"l3_team":                  "customfield_11831",
	"triage":                   "customfield_10323",
	"configuration_item":       "customfield_10511",
	"organizations":            "customfield_10002", // organizations, organization_ids
	"participants":             "customfield_10156",
	"context":                  "customfield_10330",
	"custom_url":               "customfield_10325",
	"satisfaction":             "customfield_10157",
}

// Env names, as the Python system called them where it had them.
const (
	EnvDomain              = "JIRA_DOMAIN"
	EnvBaseURL             = "JIRA_BASE_URL"
	EnvEmail               = "JIRA_EMAIL"
	EnvAPIToken            = "JIRA_API_TOKEN"
	EnvCloudID             = "JIRA_CLOUD_ID"
	EnvWebhookSecret       = "JIRA_WEBHOOK_SECRET"
	EnvProject             = "JIRA_PROJECT"
	EnvSLAFields           = "JIRA_REFRESH_FIELDS" // id[:column],...
	EnvDownloadAttachments = "JIRA_DOWNLOAD_ATTACHMENTS"
	EnvAttachmentMaxBytes  = "JIRA_ATTACHMENT_MAX_BYTES"
)

// SettingsFromEnv reads Settings from environment variables (getenv is
// os.Getenv in production). Values are checked by New.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{
		Domain:        strings.TrimSpace(getenv(EnvDomain)),
		BaseURL:       strings.TrimSpace(getenv(EnvBaseURL)),
		Email:         strings.TrimSpace(getenv(EnvEmail)),
		APIToken:      connectors.NewSecret(getenv(EnvAPIToken)),
		CloudID:       strings.TrimSpace(getenv(EnvCloudID)),
		WebhookSecret: connectors.NewSecret(getenv(EnvWebhookSecret)),
		Project:       strings.TrimSpace(getenv(EnvProject)),
	}
	for _, f := range strings.Split(getenv(EnvSLAFields), ",") {
		if f = strings.TrimSpace(f); f != "" {
			s.SLAFields = append(s.SLAFields, f)
		}
	}
	if v := strings.TrimSpace(getenv(EnvDownloadAttachments)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Settings{}, fmt.Errorf("%s=%q: not a boolean", EnvDownloadAttachments, v)
		}
		s.DownloadAttachments = b
	}
	if v := strings.TrimSpace(getenv(EnvAttachmentMaxBytes)); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Settings{}, fmt.Errorf("%s=%q: not a number of bytes", EnvAttachmentMaxBytes, v)
		}
		s.AttachmentMaxBytes = n
	}
	return s, nil
}

// slaField is one configured SLA field and the issues column holding it.
type slaField struct{ id, column string }

var (
	fieldIDRE = regexp.MustCompile(`^customfield_[0-9]{1,12}$`)
	cloudIDRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	domainRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+(:[0-9]{1,5})?$`)
	sinceRE   = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// config is Settings checked and resolved.
type config struct {
	Settings
	api     *url.URL // REST v3 root: .../rest/api/3
	site    *url.URL // the site: browse links, attachment hosts
	sla     []slaField
	custom  map[string]string
	maxSize int64
}

// resolve checks s and derives the URLs; errors name the setting.
func (s Settings) resolve() (config, error) {
	c := config{Settings: s}
	if s.Email == "" {
		return c, fmt.Errorf("jira settings: email is required")
	}
	if s.APIToken.IsZero() {
		return c, fmt.Errorf("jira settings: api_token is required")
	}
	var err error
	switch {
	case s.BaseURL != "":
		if c.site, err = parseBase(s.BaseURL); err != nil {
			return c, fmt.Errorf("jira settings: base_url: %w", err)
		}
	case s.Domain != "":
		if !domainRE.MatchString(s.Domain) {
			return c, fmt.Errorf("jira settings: domain %q is not a host name like acme.atlassian.net", s.Domain)
		}
		c.site = &url.URL{Scheme: "https", Host: strings.ToLower(s.Domain)}
	default:
		return c, fmt.Errorf("jira settings: domain or base_url is required")
	}
	if s.BaseURL != "" && s.Domain != "" && !domainRE.MatchString(s.Domain) {
		return c, fmt.Errorf("jira settings: domain %q is not a host name like acme.atlassian.net", s.Domain)
	}
	api := *c.site
	if s.CloudID != "" {
		if !cloudIDRE.MatchString(s.CloudID) {
			return c, fmt.Errorf("jira settings: cloud_id %q is not a cloud id", s.CloudID)
		}
		gw := s.GatewayURL
		if gw == "" {
			gw = DefaultGatewayURL
		}
		g, err := parseBase(gw)
		if err != nil {
			return c, fmt.Errorf("jira settings: gateway_url: %w", err)
		}
		api = *g
		api.Path = strings.TrimSuffix(api.Path, "/") + "/ex/jira/" + s.CloudID
	}
	api.Path = strings.TrimSuffix(api.Path, "/") + "/rest/api/3"
	c.api = &api
	if s.Project != "" && !projectRE.MatchString(s.Project) {
		return c, fmt.Errorf("jira settings: project %q is not a project key like SUP", s.Project)
	}
	if s.Since != "" && !sinceRE.MatchString(s.Since) {
		return c, fmt.Errorf("jira settings: since %q is not a date YYYY-MM-DD", s.Since)
	}
	c.custom = map[string]string{}
	for col, id := range DefaultCustomFields {
		c.custom[col] = id
	}
	for col, id := range s.CustomFields {
		if _, ok := DefaultCustomFields[col]; !ok {
			return c, fmt.Errorf("jira settings: custom_fields: %q is not a configurable column (one of %s)", col, strings.Join(sortedKeys(DefaultCustomFields), ", "))
		}
		if !fieldIDRE.MatchString(id) {
			return c, fmt.Errorf("jira settings: custom_fields.%s: %q is not a field id like customfield_10010", col, id)
		}
		c.custom[col] = id
	}
	seen := map[string]bool{}
	for _, spec := range s.SLAFields {
		id, col, _ := strings.Cut(strings.TrimSpace(spec), ":")
		if !fieldIDRE.MatchString(id) {
			return c, fmt.Errorf("jira settings: sla_fields: %q is not a field id like customfield_10328", id)
		}
		if col == "" {
			col = id
		}
		if !extract.ValidName(col) || strings.HasPrefix(col, "_") {
			return c, fmt.Errorf("jira settings: sla_fields: column %q is not a valid column name", col)
		}
		if slices.Contains(issueBaseColumns(), col) {
			col = "cf_" + col // never shadow a built-in column
		}
		if seen[col] {
			return c, fmt.Errorf("jira settings: sla_fields: column %q appears twice", col)
		}
		seen[col] = true
		c.sla = append(c.sla, slaField{id: id, column: col})
	}
	c.maxSize = s.AttachmentMaxBytes
	if c.maxSize == 0 {
		c.maxSize = DefaultAttachmentMaxBytes
	}
	if c.maxSize < 0 {
		return c, fmt.Errorf("jira settings: attachment_max_bytes %d is negative", c.maxSize)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.Concurrency < 1 || c.Concurrency > 32 {
		return c, fmt.Errorf("jira settings: concurrency %d is not between 1 and 32", c.Concurrency)
	}
	return c, nil
}

// parseBase accepts an absolute http(s) URL without query or fragment;
// plain http only on a loopback host, so a token never crosses a network
// in clear text.
func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", raw)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("%q must not carry a query, fragment or user", raw)
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return nil, fmt.Errorf("%q: plain http is only allowed to a loopback host", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// EnvSettings returns the raw settings (for Open) of the default instance the
// Python system's way, from environment variables; nil when no Jira site is
// named (JIRA_DOMAIN or JIRA_BASE_URL).
func EnvSettings(getenv func(string) string) map[string]any {
	raw := map[string]any{}
	for key, env := range map[string]string{"domain": EnvDomain, "base_url": EnvBaseURL, "email": EnvEmail,
		"api_token": EnvAPIToken, "cloud_id": EnvCloudID, "webhook_secret": EnvWebhookSecret, "project": EnvProject,
		"sla_fields": EnvSLAFields, "download_attachments": EnvDownloadAttachments,
		"attachment_max_bytes": EnvAttachmentMaxBytes} {
		if v := strings.TrimSpace(getenv(env)); v != "" {
			raw[key] = v
		}
	}
	if raw["domain"] == nil && raw["base_url"] == nil {
		return nil
	}
	return raw
}
