package connectors

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/go-viper/mapstructure/v2"
)

// Secret is a credential from the configuration (a token, a password). It never
// shows itself: printing, logging (slog) and JSON give "[redacted]"; Reveal
// gives the value to the one place that sends it upstream.
type Secret struct{ value string }

// NewSecret wraps a credential.
func NewSecret(v string) Secret { return Secret{value: v} }

// Reveal returns the credential itself.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether no credential is set.
func (s Secret) IsZero() bool { return s.value == "" }

// String implements fmt.Stringer: "[redacted]", or "" when unset.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the field.
func (s Secret) GoString() string { return `connectors.Secret("` + s.String() + `")` }

// Format covers every fmt verb (%v, %+v, %q, %x, ...).
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps secrets out of JSON answers and dumps.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText keeps secrets out of every text encoding (YAML, TOML, form values).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a credential from configuration text.
func (s *Secret) UnmarshalText(b []byte) error {
	s.value = string(b)
	return nil
}

// DecodeSettings fills a connector's settings struct (fields tagged `mapstructure:"name"`)
// from a source's configuration: strings become Secrets and durations ("30s"),
// and a key the struct does not know is an error naming it, so a typo in a
// config file never silently drops a setting.
func DecodeSettings(raw map[string]any, out any) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           out,
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			secretHook,
		),
	})
	if err != nil {
		return err
	}
	return dec.Decode(raw)
}

var secretType = reflect.TypeFor[Secret]()

func secretHook(from, to reflect.Type, data any) (any, error) {
	if to != secretType {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		return NewSecret(v), nil
	case Secret:
		return v, nil
	}
	return nil, fmt.Errorf("a secret must be a string, not %s", from)
}
