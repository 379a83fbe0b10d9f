package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/server/internal/config"
)

func noEnv(string) string { return "" }

// TestExampleFileIsTheDefault keeps deploy/agnes.example.yaml honest.
func TestExampleFileIsTheDefault(t *testing.T) {
	c, err := config.Load(filepath.Join("..", "..", "..", "deploy", "agnes.example.yaml"), noEnv)
	require.NoError(t, err)
	require.Equal(t, config.Default(), c)
	require.NoError(t, c.Validate())
}

func TestLayering(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agnes.yaml")
	require.NoError(t, os.WriteFile(path, []byte("addr: 0.0.0.0:9000\ndata_dir: ${BASE}/data\njwt_secret: ${SECRET}\nquery:\n  timeout: 30s\n"), 0o600))
	env := map[string]string{"BASE": "/srv", "SECRET": "file-secret-file-secret-file-secret-1", "AGNES_ADDR": "127.0.0.1:7000"}
	c, err := config.Load(path, func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:7000", c.Addr, "env wins over the file")
	require.Equal(t, "/srv/data", c.DataDir, "${ENV} resolved in the file")
	require.Equal(t, 30*time.Second, c.Query.Timeout)
	require.Equal(t, "[redacted]", c.JWTSecret.String())
}

func TestValidationReportsEverything(t *testing.T) {
	c := config.Default()
	c.Addr = "nonsense"
	c.JWTSecret = connectors.NewSecret("short")
	c.Log.Format = "xml"
	err := c.Validate()
	require.Error(t, err)
	for _, want := range []string{"addr", "jwt_secret", "log.format"} {
		require.Contains(t, err.Error(), want)
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("adrr: x\n"), 0o600))
	_, err = config.Load(path, noEnv)
	require.ErrorContains(t, err, "adrr", "unknown keys are refused, not ignored")
	_, err = config.Load("", func(k string) string { return map[string]string{"AGNES_RATE_LIMIT": "maybe"}[k] })
	require.ErrorContains(t, err, "AGNES_RATE_LIMIT")
}

func TestSourcesAreValidated(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/agnes.yaml"
	require.NoError(t, os.WriteFile(path, []byte(`
sources:
  kbc_sales:
    type: keboola
    stack_url: https://connection.keboola.com
    token: ${KBC_SALES_TOKEN}
  bad-name:
    stack_url: x
`), 0o600))
	c, err := config.Load(path, func(k string) string { return map[string]string{"KBC_SALES_TOKEN": "tok"}[k] })
	require.NoError(t, err)
	require.Equal(t, "tok", c.Sources["kbc_sales"]["token"])
	err = c.Validate()
	require.ErrorContains(t, err, `"bad-name" is not a valid source name`)
	require.ErrorContains(t, err, "sources.bad-name: type is required")
}

func TestSignInSettings(t *testing.T) {
	env := map[string]string{
		"GOOGLE_CLIENT_ID": "cid", "GOOGLE_CLIENT_SECRET": "csecret", "AGNES_OIDC_ISSUER": "https://sso.example.com/realms/x",
		"AGNES_OIDC_SCOPES": "openid email profile groups", "AGNES_ALLOWED_DOMAINS": "example.com, example.org",
		"AGNES_GROUP_SYNC": "claim", "AGNES_GROUP_ADMIN_EMAIL": "admins@example.com",
		"SMTP_HOST": "smtp.example.com", "SMTP_PORT": "2525", "SMTP_USER": "agnes", "SMTP_PASSWORD": "smtp-pass",
		"SMTP_FROM": "Agnes <agnes@example.com>", "SMTP_TLS": "tls",
		"SCHEDULER_API_TOKEN": "scheduler-token-scheduler-token-0123",
	}
	c, err := config.Load("", func(k string) string { return env[k] })
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.True(t, c.OIDC.Enabled())
	require.Equal(t, []string{"example.com", "example.org"}, c.OIDC.AllowedDomains)
	require.Equal(t, []string{"openid", "email", "profile", "groups"}, c.OIDC.ScopeList())
	require.Equal(t, 2525, c.SMTP.Port)
	require.Equal(t, "[redacted]", c.SMTP.Password.String())
	require.Equal(t, "[redacted]", c.OIDC.ClientSecret.String())
	require.Equal(t, "[redacted]", c.SchedulerToken.String())

	d := config.Default()
	require.False(t, d.OIDC.Enabled())
	require.Equal(t, config.GoogleIssuer, d.OIDC.IssuerURL())
	require.Equal(t, "starttls", d.SMTP.TLSMode())

	bad := map[string]string{
		"GOOGLE_CLIENT_ID": "only-the-id", "AGNES_GROUP_SYNC": "ldap", "SMTP_HOST": "smtp.example.com",
		"SMTP_FROM": "nobody", "SMTP_TLS": "ssl", "SCHEDULER_API_TOKEN": "short", "AGNES_ALLOWED_DOMAINS": "a@b.com",
		"AGNES_JOB_RETENTION": "-1h",
	}
	c, err = config.Load("", func(k string) string { return bad[k] })
	require.NoError(t, err)
	err = c.Validate()
	for _, want := range []string{"GOOGLE_CLIENT_SECRET", "AGNES_GROUP_SYNC", "SMTP_FROM", "SMTP_TLS", "SCHEDULER_API_TOKEN", "AGNES_ALLOWED_DOMAINS", "AGNES_JOB_RETENTION"} {
		require.ErrorContains(t, err, want)
	}

	// Off loopback, links and redirects need the public URL.
	c = config.Default()
	c.Addr = "0.0.0.0:8000"
	c.SMTP = config.SMTP{Host: "smtp.example.com", From: "agnes@example.com"}
	require.ErrorContains(t, c.Validate(), "AGNES_PUBLIC_URL")
	c.PublicURL = "https://agnes.example.com"
	require.NoError(t, c.Validate())
}
