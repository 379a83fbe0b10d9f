package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Settings is what `agnes login` stores in the user's config dir.
type Settings struct {
	Server string `json:"server"`
	Token  string `json:"token"`
	Email  string `json:"email,omitempty"`
}

// settingsPath is $XDG_CONFIG_HOME/agnes/config.json (or the OS equivalent);
// AGNES_CONFIG_DIR overrides the directory (tests, several profiles).
func settingsPath() (string, error) {
	dir := os.Getenv("AGNES_CONFIG_DIR")
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("no config dir: %w", err)
		}
		dir = filepath.Join(base, "agnes")
	}
	return filepath.Join(dir, "config.json"), nil
}

func loadSettings() (Settings, error) {
	var s Settings
	path, err := settingsPath()
	if err != nil {
		return s, err
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// saveSettings writes the file atomically with mode 0600: it holds a token.
func saveSettings(s Settings) (string, error) {
	path, err := settingsPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
