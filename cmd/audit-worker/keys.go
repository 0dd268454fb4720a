package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
)

func newKeysCommand(configPath *string) *cobra.Command {
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Create, list, revoke and rotate the API keys kept in the store",
		Long: `API keys are awk_<id>_<secret>: the id names the key in lists and logs, the
secret (256 random bits) is shown once, at creation, and only its SHA-256 is
kept. Each key has a role (ingest, reader, auditor, operator, admin) and an
organisation scope (--org, repeated, or * for every organisation). A revoked or
expired key is refused by every worker within a few seconds. Every change is
recorded in the audit trail as an audit.key.* event.`,
	}
	var output string
	keys.PersistentFlags().StringVar(&output, "output", "table", "table or json")

	var name, role, expires string
	var orgs []string
	create := &cobra.Command{
		Use:   "create --name NAME --role ROLE [--org ORG ...] [--expires 90d]",
		Short: "Create a key and print it (the only time it is shown)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lifetime, err := access.ParseLifetime(expires)
			if err != nil {
				return fmt.Errorf("--expires: %w", err)
			}
			return withStore(cmd, *configPath, func(ctx context.Context, env *cliEnv) error {
				k, token, err := access.CreateKey(ctx, env.store, access.NewKey{Name: name, Role: audit.Role(role),
					Organizations: orgs, ExpiresIn: lifetime, CreatedBy: cliPrincipal().ID}, time.Now())
				if err != nil {
					return err
				}
				if err := env.record(ctx, keyChange("create", k)); err != nil {
					return err
				}
				return printCreated(cmd.OutOrStdout(), output, k, token)
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the key is for (required)")
	create.Flags().StringVar(&role, "role", "", "ingest, reader, auditor, operator or admin (required)")
	create.Flags().StringArrayVar(&orgs, "org", nil, "an organisation the key may act for; repeat it; * for all (default *)")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, like 90d or 36h (default: never expires)")
	create.MarkFlagRequired("name")
	create.MarkFlagRequired("role")
	create.PreRun = func(*cobra.Command, []string) {
		if len(orgs) == 0 {
			orgs = []string{audit.AllOrganizations}
		}
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, *configPath, func(ctx context.Context, env *cliEnv) error {
				all, err := env.store.ListAPIKeys(ctx)
				if err != nil {
					return err
				}
				return printKeys(cmd.OutOrStdout(), output, all)
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key: every worker refuses it within a few seconds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, *configPath, func(ctx context.Context, env *cliEnv) error {
				if !audit.ValidAPIKeyID(args[0]) {
					return fmt.Errorf("%q is not a key id (the 16 characters after awk_)", args[0])
				}
				k, err := env.store.RevokeAPIKey(ctx, args[0], time.Now())
				if err != nil {
					return err
				}
				if err := env.record(ctx, keyChange("revoke", k)); err != nil {
					return err
				}
				return printKeys(cmd.OutOrStdout(), output, []audit.APIKey{k})
			})
		},
	}

	var overlap string
	rotate := &cobra.Command{
		Use:   "rotate ID [--overlap 24h]",
		Short: "Give a key a new secret; the old one keeps working for the overlap",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := access.ParseLifetime(overlap)
			if err != nil {
				return fmt.Errorf("--overlap: %w", err)
			}
			return withStore(cmd, *configPath, func(ctx context.Context, env *cliEnv) error {
				k, token, err := access.RotateKey(ctx, env.store, args[0], d, time.Now())
				if err != nil {
					return err
				}
				if err := env.record(ctx, keyChange("rotate", k)); err != nil {
					return err
				}
				return printCreated(cmd.OutOrStdout(), output, k, token)
			})
		},
	}
	rotate.Flags().StringVar(&overlap, "overlap", "24h", "how long the old secret keeps working")

	keys.AddCommand(create, list, revoke, rotate)
	return keys
}

func keyChange(verb string, k audit.APIKey) access.Access {
	return access.Access{Action: access.KeyAction(verb), Success: true, TargetType: "api_key", TargetID: k.ID,
		Outcome: verb + "d", Details: map[string]any{"keyRole": k.Role, "keyOrganizations": k.Organizations}}
}

func printCreated(out io.Writer, format string, k audit.APIKey, token string) error {
	if format == "json" {
		return json.NewEncoder(out).Encode(access.CreatedView(k, token))
	}
	expires := "never"
	if k.ExpiresAt != nil {
		expires = k.ExpiresAt.Format(time.RFC3339)
	}
	_, err := fmt.Fprintf(out, "%s\n\nid %s, role %s, organizations %s, expires %s\nThe key is shown only now: keep it in a secret store.\n",
		token, k.ID, k.Role, strings.Join(k.Organizations, ","), expires)
	return err
}

func printKeys(out io.Writer, format string, keys []audit.APIKey) error {
	now := time.Now()
	views := make([]access.KeyView, len(keys))
	for i, k := range keys {
		views[i] = access.View(k, now)
	}
	if format == "json" {
		return json.NewEncoder(out).Encode(views)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tORGANIZATIONS\tSTATE\tEXPIRES\tLAST USED")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Name, v.Role, strings.Join(v.Organizations, ","),
			v.State, timeOrDash(v.ExpiresAt), timeOrDash(v.LastUsedAt))
	}
	return tw.Flush()
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
