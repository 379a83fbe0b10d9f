package bigquery

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"google.golang.org/api/option"

	"github.com/agnesdata/agnes/connectors"
)

// DefaultMaxBytesPerMaterialize is the dry-run cap of one materialization:
// 10 GiB, as in the Python system.
const DefaultMaxBytesPerMaterialize int64 = 10 << 30

// Settings configure one BigQuery source instance.
type Settings struct {
	// Project holds the data (SQL names project.dataset.table; discovery
	// lists its datasets). Env: BIGQUERY_PROJECT.
	Project string `mapstructure:"project"`
	// BillingProject runs (and pays for) the query jobs; default Project.
	BillingProject string `mapstructure:"billing_project"`
	// Location of the jobs (US, EU, europe-west1, ...); needed for datasets
	// outside the US and EU multi-regions. Env: BIGQUERY_LOCATION.
	Location string `mapstructure:"location"`
	// Endpoint overrides the API base URL (an emulator or a test fake).
	// With an override no credentials are looked up unless CredentialsFile
	// is set. Env: AGNES_BIGQUERY_ENDPOINT.
	Endpoint string `mapstructure:"endpoint"`
	// CredentialsFile is a service-account key file. Empty: Application
	// Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's file,
	// the metadata server).
	CredentialsFile string `mapstructure:"credentials_file"`
	// MaxBytesPerMaterialize refuses a materialization whose dry run
	// estimates more bytes; 0 disables the check. Default 10 GiB.
	MaxBytesPerMaterialize int64 `mapstructure:"max_bytes_per_materialize"`
}

// DefaultSettings are the settings before configuration.
func DefaultSettings() Settings {
	return Settings{MaxBytesPerMaterialize: DefaultMaxBytesPerMaterialize}
}

// EnvSettings returns the raw settings of the default instance from the
// environment (BIGQUERY_PROJECT, BIGQUERY_LOCATION, AGNES_BIGQUERY_ENDPOINT),
// for Open; nil when BIGQUERY_PROJECT is unset. Credentials are not read
// here: Application Default Credentials read GOOGLE_APPLICATION_CREDENTIALS
// themselves.
func EnvSettings(getenv func(string) string) map[string]any {
	project := strings.TrimSpace(getenv("BIGQUERY_PROJECT"))
	if project == "" {
		return nil
	}
	raw := map[string]any{"project": project}
	if v := strings.TrimSpace(getenv("BIGQUERY_LOCATION")); v != "" {
		raw["location"] = v
	}
	if v := strings.TrimSpace(getenv("AGNES_BIGQUERY_ENDPOINT")); v != "" {
		raw["endpoint"] = v
	}
	return raw
}

// projectRE is Google's project id rule, with the legacy domain prefix
// (example.com:my-project).
var projectRE = regexp.MustCompile(`^(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)

// check validates the settings and fills the defaults that depend on others.
func (s *Settings) check() error {
	var errs []error
	if s.Project == "" {
		errs = append(errs, errors.New("project is not set (BIGQUERY_PROJECT)"))
	} else if !projectRE.MatchString(s.Project) {
		errs = append(errs, fmt.Errorf("project %q is not a Google Cloud project id", s.Project))
	}
	if s.BillingProject == "" {
		s.BillingProject = s.Project
	} else if !projectRE.MatchString(s.BillingProject) {
		errs = append(errs, fmt.Errorf("billing_project %q is not a Google Cloud project id", s.BillingProject))
	}
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint %q is not an http(s) URL", s.Endpoint))
		} else if u.Path != "" && !strings.HasSuffix(u.Path, "/") {
			// The client resolves request paths relative to the endpoint:
			// without the slash it would drop the last segment.
			s.Endpoint += "/"
		}
	}
	if s.MaxBytesPerMaterialize < 0 {
		errs = append(errs, fmt.Errorf("max_bytes_per_materialize %d is negative (0 disables the cap)", s.MaxBytesPerMaterialize))
	}
	return errors.Join(errs...)
}

// clientOptions are the official client's options for these settings.
func (s Settings) clientOptions() []option.ClientOption {
	var opts []option.ClientOption
	if s.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(s.Endpoint))
	}
	switch {
	case s.CredentialsFile != "":
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, s.CredentialsFile))
	case s.Endpoint != "":
		opts = append(opts, option.WithoutAuthentication())
	}
	if s.BillingProject != s.Project {
		opts = append(opts, option.WithQuotaProject(s.BillingProject))
	}
	return opts
}

// decode reads raw settings over the defaults and checks them.
func decode(name string, raw map[string]any) (Settings, error) {
	s := DefaultSettings()
	if err := connectors.DecodeSettings(raw, &s); err != nil {
		return Settings{}, fmt.Errorf("bigquery source %s: %w", name, err)
	}
	if err := s.check(); err != nil {
		return Settings{}, fmt.Errorf("bigquery source %s: %w", name, err)
	}
	return s, nil
}
