// Command agnes-server runs the Agnes server: `serve`, `migrate`, `admin create-user`
// and `jira backfill`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agnesdata/agnes/server/internal/app"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/config"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/store/duckdbstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agnes-server:", err)
		os.Exit(1)
	}
}

// flags are the command-line overrides; they win over the file and the environment.
type flags struct {
	config  string
	addr    string
	dataDir string
}

func root() *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:           "agnes-server",
		Short:         "Agnes: governed, fresh and fast access to company data",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       app.Version,
	}
	cmd.PersistentFlags().StringVar(&f.config, "config", os.Getenv("AGNES_CONFIG"), "YAML config file (env AGNES_CONFIG)")
	cmd.PersistentFlags().StringVar(&f.dataDir, "data-dir", "", "data directory (env DATA_DIR, default ./data)")
	cmd.AddCommand(serveCmd(&f), migrateCmd(&f), adminCmd(&f), healthCmd(), jiraCmd(&f))
	return cmd
}

func load(cmd *cobra.Command, f *flags) (config.Config, error) {
	cfg, err := config.Load(f.config, os.Getenv)
	if err != nil {
		return cfg, err
	}
	if cmd.Flags().Changed("data-dir") {
		cfg.DataDir = f.dataDir
	}
	if cmd.Flags().Changed("addr") {
		cfg.Addr = f.addr
	}
	return cfg, cfg.Validate()
}

func logger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func serveCmd(f *flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve every protocol on one port",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd, f)
			if err != nil {
				return err
			}
			log := logger(cfg)
			slog.SetDefault(log)
			ctx := cmd.Context()
			a, err := app.New(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer a.Close()
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return err
			}
			log.Info("agnes-server listening", "addr", ln.Addr().String(), "data_dir", cfg.DataDir, "version", app.Version)
			if a.NeedsBootstrap(ctx) {
				printBootstrapHelp(ln.Addr().String())
			}
			return a.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&f.addr, "addr", "", "listen address (env AGNES_ADDR, default 127.0.0.1:8000)")
	return cmd
}

func printBootstrapHelp(addr string) {
	fmt.Fprintf(os.Stderr, `
No user can sign in yet. Create the first admin with either:

  curl -s -X POST http://%[1]s/auth/bootstrap -H 'Content-Type: application/json' \
       -d '{"email":"admin@example.com","password":"change-me-now"}'

  bin/agnes-server admin create-user --email admin@example.com --password change-me-now --admin
      (with the server stopped: the server is the only writer of its state)

`, addr)
}

func migrateCmd(f *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending schema migrations to system.duckdb and exit",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd, f)
			if err != nil {
				return err
			}
			st, err := duckdbstore.Open(cmd.Context(), cfg.StatePath())
			if err != nil {
				return err
			}
			defer st.Close()
			v, _, err := st.SchemaVersion(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Printf("system.duckdb at schema version %d\n", v)
			return nil
		},
	}
}

func adminCmd(f *flags) *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Offline administration (run with the server stopped)"}
	var email, name, password string
	var admin bool
	create := &cobra.Command{
		Use:   "create-user",
		Short: "Create a user (optionally an admin) directly in system.duckdb",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd, f)
			if err != nil {
				return err
			}
			if email == "" {
				return errors.New("--email is required")
			}
			nu := store.NewUser{Email: email, Name: name, Admin: admin, By: "agnes-server admin"}
			if password != "" {
				if len(password) < auth.MinPasswordLength {
					return fmt.Errorf("password must be at least %d characters", auth.MinPasswordLength)
				}
				if nu.PasswordHash, err = auth.HashPassword(password); err != nil {
					return err
				}
			}
			st, err := duckdbstore.Open(cmd.Context(), cfg.StatePath())
			if err != nil {
				return fmt.Errorf("%w (is the server running? stop it first, or use the API)", err)
			}
			defer st.Close()
			u, err := st.CreateUser(cmd.Context(), nu)
			if errors.Is(err, store.ErrAlreadyExists) {
				return fmt.Errorf("a user with email %q already exists", email)
			}
			if err != nil {
				return err
			}
			fmt.Printf("created user %s (%s) admin=%v\n", u.Email, u.ID, u.IsAdmin)
			return nil
		},
	}
	create.Flags().StringVar(&email, "email", "", "email (required)")
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().StringVar(&password, "password", "", "initial password (at least 8 characters)")
	create.Flags().BoolVar(&admin, "admin", false, "add to the Admin group")
	cmd.AddCommand(create)
	return cmd
}

// healthCmd probes a running server (container and systemd health checks).
func healthCmd() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when the server at --url answers /api/health with status ok",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(url, "/")+"/api/health", nil)
			if err != nil {
				return err
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer res.Body.Close()
			var body struct{ Status string }
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Status != "ok" {
				return fmt.Errorf("unhealthy (HTTP %d, status %q)", res.StatusCode, body.Status)
			}
			fmt.Println("ok")
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8000", "server URL")
	return cmd
}
