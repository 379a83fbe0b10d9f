package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

func (a *app) adminCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Administer users, groups, grants, tables and syncs (admins only)"}
	cmd.AddCommand(a.usersCmd(), a.groupsCmd(), a.grantsCmd(), a.tablesCmd(), a.syncCmd())
	return cmd
}

// run resolves a client and runs f with it.
func (a *app) run(f func(cmd *cobra.Command, args []string, c *sdk.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		return f(cmd, args, c)
	}
}

func (a *app) done(format string, args ...any) error {
	if a.jsonOut {
		return a.printer().value(map[string]any{"status": "ok", "message": fmt.Sprintf(format, args...)})
	}
	fmt.Fprintf(a.out, format+"\n", args...)
	return nil
}

func userRow(u *agnesv1.User) []string {
	var groups []string
	for _, g := range u.GetGroups() {
		groups = append(groups, g.GetName())
	}
	return []string{u.GetEmail(), u.GetName(), yesNo(u.GetIsAdmin()), yesNo(u.GetActive()), strings.Join(groups, ","), u.GetId()}
}

var userHeaders = []string{"EMAIL", "NAME", "ADMIN", "ACTIVE", "GROUPS", "ID"}

// userID accepts an email or an id.
func userID(cmd *cobra.Command, c *sdk.Client, ref string) (string, error) {
	if !strings.Contains(ref, "@") {
		return ref, nil
	}
	users, err := c.Admin.ListUsers(cmd.Context(), &agnesv1.ListUsersRequest{Limit: 10000})
	if err != nil {
		return "", err
	}
	for _, u := range users.GetUsers() {
		if strings.EqualFold(u.GetEmail(), ref) {
			return u.GetId(), nil
		}
	}
	return "", fmt.Errorf("no user with email %q", ref)
}

// groupID accepts a name or an id.
func groupID(cmd *cobra.Command, c *sdk.Client, ref string) (string, error) {
	groups, err := c.Admin.ListGroups(cmd.Context(), &agnesv1.ListGroupsRequest{})
	if err != nil {
		return "", err
	}
	for _, g := range groups.GetGroups() {
		if g.GetName() == ref || g.GetId() == ref {
			return g.GetId(), nil
		}
	}
	return "", fmt.Errorf("no group named %q", ref)
}

func (a *app) usersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage users"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List users",
		RunE: a.run(func(cmd *cobra.Command, _ []string, c *sdk.Client) error {
			res, err := c.Admin.ListUsers(cmd.Context(), &agnesv1.ListUsersRequest{Limit: 10000})
			if err != nil {
				return err
			}
			return list(a.printer(), res.GetUsers(), userHeaders, userRow)
		}),
	})
	var name, password string
	var groups []string
	var admin bool
	create := &cobra.Command{
		Use: "create EMAIL", Short: "Create a user", Args: cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			if admin {
				groups = append(groups, "Admin")
			}
			res, err := c.Admin.CreateUser(cmd.Context(), &agnesv1.CreateUserRequest{Email: args[0], Name: name, Password: password, Groups: groups})
			if err != nil {
				return err
			}
			return a.printer().message(res.GetUser(), func() { a.printer().table(userHeaders, [][]string{userRow(res.GetUser())}) })
		}),
	}
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().StringVar(&password, "password", "", "initial password (at least 8 characters)")
	create.Flags().StringSliceVar(&groups, "group", nil, "group to join (repeatable)")
	create.Flags().BoolVar(&admin, "admin", false, "make the user an admin")
	cmd.AddCommand(create)

	simple := func(use, short string, f func(cmd *cobra.Command, c *sdk.Client, id string) error, doneMsg string) *cobra.Command {
		return &cobra.Command{
			Use: use + " USER", Short: short, Args: cobra.ExactArgs(1),
			RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
				id, err := userID(cmd, c, args[0])
				if err != nil {
					return err
				}
				if err := f(cmd, c, id); err != nil {
					return err
				}
				return a.done(doneMsg, args[0])
			}),
		}
	}
	cmd.AddCommand(
		simple("deactivate", "Deactivate a user (blocks sign-in and tokens)", func(cmd *cobra.Command, c *sdk.Client, id string) error {
			_, err := c.Admin.DeactivateUser(cmd.Context(), &agnesv1.DeactivateUserRequest{UserId: id})
			return err
		}, "Deactivated %s"),
		simple("activate", "Re-activate a user", func(cmd *cobra.Command, c *sdk.Client, id string) error {
			_, err := c.Admin.ActivateUser(cmd.Context(), &agnesv1.ActivateUserRequest{UserId: id})
			return err
		}, "Activated %s"),
		simple("delete", "Delete a user", func(cmd *cobra.Command, c *sdk.Client, id string) error {
			_, err := c.Admin.DeleteUser(cmd.Context(), &agnesv1.DeleteUserRequest{UserId: id})
			return err
		}, "Deleted %s"),
	)
	setPw := simple("set-password", "Set a user's password (read from stdin)", func(cmd *cobra.Command, c *sdk.Client, id string) error {
		pw, err := a.password(true)
		if err != nil {
			return err
		}
		_, err = c.Admin.SetUserPassword(cmd.Context(), &agnesv1.SetUserPasswordRequest{UserId: id, Password: pw})
		return err
	}, "Password set for %s")
	cmd.AddCommand(setPw)
	return cmd
}

func (a *app) groupsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "groups", Short: "Manage groups and members"}
	headers := []string{"NAME", "MEMBERS", "GRANTS", "SYSTEM", "DESCRIPTION", "ID"}
	row := func(g *agnesv1.Group) []string {
		return []string{g.GetName(), fmt.Sprint(g.GetMemberCount()), fmt.Sprint(g.GetGrantCount()), yesNo(g.GetIsSystem()), g.GetDescription(), g.GetId()}
	}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List groups",
		RunE: a.run(func(cmd *cobra.Command, _ []string, c *sdk.Client) error {
			res, err := c.Admin.ListGroups(cmd.Context(), &agnesv1.ListGroupsRequest{})
			if err != nil {
				return err
			}
			return list(a.printer(), res.GetGroups(), headers, row)
		}),
	})
	var desc string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a group", Args: cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			res, err := c.Admin.CreateGroup(cmd.Context(), &agnesv1.CreateGroupRequest{Name: args[0], Description: desc})
			if err != nil {
				return err
			}
			return a.printer().message(res.GetGroup(), func() { a.printer().table(headers, [][]string{row(res.GetGroup())}) })
		}),
	}
	create.Flags().StringVar(&desc, "description", "", "description")
	cmd.AddCommand(create)
	cmd.AddCommand(&cobra.Command{
		Use: "delete GROUP", Short: "Delete a group with its memberships and grants", Args: cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			id, err := groupID(cmd, c, args[0])
			if err != nil {
				return err
			}
			if _, err := c.Admin.DeleteGroup(cmd.Context(), &agnesv1.DeleteGroupRequest{GroupId: id}); err != nil {
				return err
			}
			return a.done("Deleted group %s", args[0])
		}),
	})
	cmd.AddCommand(&cobra.Command{
		Use: "members GROUP", Short: "List a group's members", Args: cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			id, err := groupID(cmd, c, args[0])
			if err != nil {
				return err
			}
			res, err := c.Admin.ListGroupMembers(cmd.Context(), &agnesv1.ListGroupMembersRequest{GroupId: id})
			if err != nil {
				return err
			}
			return list(a.printer(), res.GetMembers(), []string{"EMAIL", "NAME", "ACTIVE", "SOURCE", "ADDED"},
				func(m *agnesv1.GroupMember) []string {
					return []string{m.GetEmail(), m.GetName(), yesNo(m.GetActive()), m.GetSource(), when(m.GetAddedAt())}
				})
		}),
	})
	cmd.AddCommand(&cobra.Command{
		Use: "add-member GROUP USER", Short: "Add a user (email or id) to a group", Args: cobra.ExactArgs(2),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			gid, err := groupID(cmd, c, args[0])
			if err != nil {
				return err
			}
			req := &agnesv1.AddGroupMemberRequest{GroupId: gid, UserId: args[1]}
			if strings.Contains(args[1], "@") {
				req = &agnesv1.AddGroupMemberRequest{GroupId: gid, Email: args[1]}
			}
			if _, err := c.Admin.AddGroupMember(cmd.Context(), req); err != nil {
				return err
			}
			return a.done("Added %s to %s", args[1], args[0])
		}),
	})
	cmd.AddCommand(&cobra.Command{
		Use: "remove-member GROUP USER", Short: "Remove a user from a group", Args: cobra.ExactArgs(2),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			gid, err := groupID(cmd, c, args[0])
			if err != nil {
				return err
			}
			uid, err := userID(cmd, c, args[1])
			if err != nil {
				return err
			}
			if _, err := c.Admin.RemoveGroupMember(cmd.Context(), &agnesv1.RemoveGroupMemberRequest{GroupId: gid, UserId: uid}); err != nil {
				return err
			}
			return a.done("Removed %s from %s", args[1], args[0])
		}),
	})
	return cmd
}

func (a *app) grantsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "grants", Short: "Grant groups access to resources"}
	var resourceType, group string
	listCmd := &cobra.Command{
		Use: "list", Short: "List grants",
		RunE: a.run(func(cmd *cobra.Command, _ []string, c *sdk.Client) error {
			req := &agnesv1.ListGrantsRequest{ResourceType: resourceType}
			if group != "" {
				id, err := groupID(cmd, c, group)
				if err != nil {
					return err
				}
				req.GroupId = id
			}
			res, err := c.Admin.ListGrants(cmd.Context(), req)
			if err != nil {
				return err
			}
			return list(a.printer(), res.GetGrants(), []string{"GROUP", "TYPE", "RESOURCE", "GRANTED", "BY", "ID"},
				func(g *agnesv1.Grant) []string {
					return []string{g.GetGroupName(), g.GetResourceType(), g.GetResourceId(), when(g.GetAssignedAt()), g.GetAssignedBy(), g.GetId()}
				})
		}),
	}
	listCmd.Flags().StringVar(&resourceType, "type", "", "only this resource type")
	listCmd.Flags().StringVar(&group, "group", "", "only this group")
	cmd.AddCommand(listCmd)

	var createType string
	create := &cobra.Command{
		Use: "create GROUP RESOURCE_ID", Short: "Grant a group access to a resource (default type: table)", Args: cobra.ExactArgs(2),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			res, err := c.Admin.CreateGrant(cmd.Context(), &agnesv1.CreateGrantRequest{GroupName: args[0], ResourceType: createType, ResourceId: args[1]})
			if err != nil {
				return err
			}
			return a.printer().message(res.GetGrant(), func() {
				fmt.Fprintf(a.out, "Granted %s %q to %s (grant %s)\n", createType, args[1], args[0], res.GetGrant().GetId())
			})
		}),
	}
	create.Flags().StringVar(&createType, "type", "table", "resource type")
	cmd.AddCommand(create)
	cmd.AddCommand(&cobra.Command{
		Use: "delete GRANT_ID", Short: "Revoke a grant", Args: cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			if _, err := c.Admin.DeleteGrant(cmd.Context(), &agnesv1.DeleteGrantRequest{GrantId: args[0]}); err != nil {
				return err
			}
			return a.done("Revoked grant %s", args[0])
		}),
	})
	return cmd
}
