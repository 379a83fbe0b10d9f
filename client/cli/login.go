package cli

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

func (a *app) loginCmd() *cobra.Command {
	var email, token string
	var passwordStdin, browser, emailLink bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in and store the server URL and a personal access token",
		Long: `Sign in with email and password; the CLI then creates a personal access token
(90 days) and stores it with the server URL in your config dir.
With --browser, sign in in your browser (Google or the server's sign-in page): the
CLI receives the result on a loopback redirect, as ` + "`gh auth login`" + ` does.
With --email-link, the server mails you a sign-in link; paste it back.
With --token, an existing token (e.g. created in the web UI) is verified and stored.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, _, err := a.resolve()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if token == "" {
				var session string
				switch {
				case browser && emailLink:
					return errors.New("--browser and --email-link exclude each other")
				case browser:
					session, err = a.browserLogin(ctx, server)
				case emailLink:
					session, err = a.emailLinkLogin(ctx, server, email)
				default:
					session, err = a.passwordLogin(ctx, server, email, passwordStdin)
				}
				if err != nil {
					return err
				}
				host, _ := os.Hostname()
				pat, err := sdk.New(server, session).Auth.CreateToken(ctx,
					&agnesv1.CreateTokenRequest{Name: "agnes CLI on " + host})
				if err != nil {
					return err
				}
				token = pat.GetToken()
			}
			me, err := sdk.New(server, token).Auth.GetMe(ctx, &agnesv1.GetMeRequest{})
			if err != nil {
				return err
			}
			path, err := saveSettings(Settings{Server: server, Token: token, Email: me.GetEmail()})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printer().value(map[string]any{"server": server, "email": me.GetEmail(), "config": path})
			}
			fmt.Fprintf(a.out, "Signed in to %s as %s (token stored in %s)\n", server, me.GetEmail(), path)
			return nil
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "email (prompted when missing)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	cmd.Flags().StringVar(&token, "token", "", "store this existing token instead of signing in")
	cmd.Flags().BoolVar(&browser, "browser", false, "sign in in the browser (Google or the sign-in page)")
	cmd.Flags().BoolVar(&emailLink, "email-link", false, "sign in with a link the server mails you")
	return cmd
}

// passwordLogin exchanges email and password for a session token.
func (a *app) passwordLogin(ctx context.Context, server, email string, fromStdin bool) (string, error) {
	var err error
	if email == "" {
		if email, err = a.prompt("Email: "); err != nil {
			return "", err
		}
	}
	password, err := a.password(fromStdin)
	if err != nil {
		return "", err
	}
	sess, err := sdk.New(server, "").Auth.CreateSessionToken(ctx, &agnesv1.CreateSessionTokenRequest{Email: email, Password: password})
	if err != nil {
		return "", err
	}
	return sess.GetAccessToken(), nil
}

// stdin reads lines of standard input through one buffer, so that consecutive
// prompts do not lose what an earlier read buffered.
func (a *app) stdin() *bufio.Reader {
	if a.lines == nil {
		a.lines = bufio.NewReader(a.in)
	}
	return a.lines
}

func (a *app) prompt(label string) (string, error) {
	fmt.Fprint(a.err, label)
	line, err := a.stdin().ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("no input")
	}
	return strings.TrimSpace(line), nil
}

func (a *app) password(fromStdin bool) (string, error) {
	if f, ok := a.in.(*os.File); ok && !fromStdin && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.err, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.err)
		return string(b), err
	}
	line, err := a.stdin().ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("no password on stdin")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke the stored token and forget it",
		RunE: func(cmd *cobra.Command, _ []string) error {
			saved, err := loadSettings()
			if err != nil {
				return err
			}
			if id, ok := patID(saved.Token); ok {
				// Best effort: the server may be gone; forgetting the token locally still happens.
				c := sdk.New(cmp.Or(a.server, saved.Server, DefaultServer), saved.Token)
				_, _ = c.Auth.RevokeToken(cmd.Context(), &agnesv1.RevokeTokenRequest{TokenId: id})
			}
			saved.Token = ""
			if _, err := saveSettings(saved); err != nil {
				return err
			}
			fmt.Fprintln(a.out, "Signed out.")
			return nil
		},
	}
}

func (a *app) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the stored or given token belongs to",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			me, err := c.Auth.GetMe(cmd.Context(), &agnesv1.GetMeRequest{})
			if err != nil {
				return err
			}
			return a.printer().message(me, func() {
				var groups []string
				for _, g := range me.GetGroups() {
					groups = append(groups, g.GetName())
				}
				fmt.Fprintf(a.out, "%s (%s)\nserver: %s\nadmin:  %s\ngroups: %s\ntoken:  %s\n", me.GetEmail(), me.GetName(),
					c.BaseURL, yesNo(me.GetIsAdmin()), strings.Join(groups, ", "), me.GetTokenType())
			})
		},
	}
}

// patID reads the id (jti) of a personal access token without verifying it: the
// server verifies; the CLI only needs to name the token to revoke.
func patID(token string) (string, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var claims struct {
		Typ string `json:"typ"`
		JTI string `json:"jti"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Typ != "pat" || claims.JTI == "" {
		return "", false
	}
	return claims.JTI, true
}
