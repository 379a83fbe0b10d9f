package connectors_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors"
)

func TestSecretNeverShowsItself(t *testing.T) {
	s := connectors.NewSecret("tok-123")
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %q %s %x", s, s, s, s, s, s)} {
		require.NotContains(t, out, "tok-123")
	}
	raw, err := json.Marshal(struct{ T connectors.Secret }{s})
	require.NoError(t, err)
	require.NotContains(t, string(raw), "tok-123")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", s)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "token", s)
	require.NotContains(t, buf.String(), "tok-123")
	require.Equal(t, "tok-123", s.Reveal())
}

func TestDecodeSettings(t *testing.T) {
	var cfg struct {
		URL     string            `mapstructure:"url"`
		Token   connectors.Secret `mapstructure:"token"`
		Timeout time.Duration     `mapstructure:"timeout"`
	}
	require.NoError(t, connectors.DecodeSettings(map[string]any{"url": "https://x", "token": "t", "timeout": "3s"}, &cfg))
	require.Equal(t, "t", cfg.Token.Reveal())
	require.Equal(t, 3*time.Second, cfg.Timeout)
	err := connectors.DecodeSettings(map[string]any{"urll": "x"}, &cfg)
	require.ErrorContains(t, err, "urll")
}
