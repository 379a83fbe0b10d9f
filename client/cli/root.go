// Package cli is the `agnes` command line (also installed as `da`): sign in, see who
// you are, administer users, groups and grants, query and pull data. Human output by
// default, --json for scripts and AI agents.
package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/agnesdata/agnes/client/sdk"
)

// DefaultServer is used when nothing else names a server.
const DefaultServer = "http://127.0.0.1:8000"

// app carries global flags and resolved settings to commands.
type app struct {
	server   string
	token    string
	jsonOut  bool
	out, err io.Writer
	in       io.Reader
	lines    *bufio.Reader // stdin, buffered once
}

// errSilent marks an error already printed.
var errSilent = errors.New("")

// Main runs the CLI with args and returns the process exit code.
func Main(ctx context.Context, version string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{out: stdout, err: stderr, in: stdin}
	root := a.root()
	root.Version = version
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(stderr, "agnes:", sdk.Describe(err))
		}
		return 1
	}
	return 0
}

func (a *app) root() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "agnes",
		Short:         "Agnes: governed, fresh and fast access to company data",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVar(&a.server, "server", "", "server URL (env AGNES_SERVER; default from `agnes login`, else "+DefaultServer+")")
	cmd.PersistentFlags().BoolVar(&a.jsonOut, "json", false, "machine-readable JSON output")
	cmd.AddCommand(a.loginCmd(), a.logoutCmd(), a.whoamiCmd(), a.queryCmd(), a.pullCmd(), a.catalogCmd(), a.describeCmd(), a.adminCmd())
	return cmd
}

func (a *app) printer() printer { return printer{out: a.out, json: a.jsonOut} }

// resolve picks server and token: flag, then environment (AGNES_SERVER, AGNES_TOKEN),
// then the settings `agnes login` saved.
func (a *app) resolve() (server, token string, err error) {
	saved, err := loadSettings()
	if err != nil {
		return "", "", err
	}
	server = cmp.Or(a.server, os.Getenv("AGNES_SERVER"), saved.Server, DefaultServer)
	token = cmp.Or(os.Getenv("AGNES_TOKEN"), saved.Token)
	if a.token != "" {
		token = a.token
	}
	return server, token, nil
}

// client returns an SDK client; it fails early when no token is known.
func (a *app) client() (*sdk.Client, error) {
	server, token, err := a.resolve()
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("not signed in: run `agnes login` or set AGNES_TOKEN")
	}
	return sdk.New(server, token), nil
}
