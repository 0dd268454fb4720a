package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	audit "github.com/smartlogs/audit-worker"
)

func newAlertsCommand(configPath *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "List alerts and acknowledge, resolve or dismiss them",
		Long: `Reads and changes the alerts in the store the configuration names (the embedded
SQLite database by default, PostgreSQL when enhancedClient.connectionString is
set) — the same alerts GET /v1/alerts serves. Every change records who made it
(--by, default $USER) and why (--note).`,
	}
	var output string
	cmd.PersistentFlags().StringVarP(&output, "output", "o", "table", "output format: table or json")

	// withStore opens the configured store for one command and closes it after.
	withStore := func(c *cobra.Command, fn func(ctx context.Context, out io.Writer, store audit.AlertStore) error) error {
		if output != "table" && output != "json" {
			return fmt.Errorf("--output must be table or json (is %q)", output)
		}
		lc, err := loadConfig(c.Context(), *configPath)
		if err != nil {
			return err
		}
		// Only problems reach the terminal: a CLI's output is its answer.
		log := slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		store, _, err := openStore(c.Context(), lc.cfg, log)
		if err != nil {
			return err
		}
		defer store.Close()
		alerts, ok := store.(audit.AlertStore)
		if !ok {
			return fmt.Errorf("the configured store (%T) does not keep alerts", store)
		}
		return fn(c.Context(), c.OutOrStdout(), alerts)
	}
	cmd.AddCommand(newAlertsListCommand(withStore, &output))
	for _, t := range []struct {
		use, short string
		to         audit.AlertStatus
	}{
		{"ack ID", "Acknowledge an active alert (someone is looking at it)", audit.AlertAcknowledged},
		{"resolve ID", "Resolve an active or acknowledged alert (the cause is fixed)", audit.AlertResolved},
		{"dismiss ID", "Dismiss an active or acknowledged alert (a false positive)", audit.AlertDismissed},
	} {
		cmd.AddCommand(newAlertTransitionCommand(t.use, t.short, t.to, withStore, &output))
	}
	return cmd
}

type storeRunner func(c *cobra.Command, fn func(ctx context.Context, out io.Writer, store audit.AlertStore) error) error

func newAlertsListCommand(withStore storeRunner, output *string) *cobra.Command {
	var status, severity, types []string
	var org, since, cursor string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List alerts, newest first",
		Example: `  audit-worker alerts list --status active,acknowledged --severity HIGH,CRITICAL
  audit-worker alerts list --since 24h --output json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			f := audit.AlertFilter{OrganizationID: org, Limit: limit, After: cursor}
			for _, s := range status {
				f.Status = append(f.Status, audit.AlertStatus(strings.ToLower(s)))
			}
			for _, s := range severity {
				f.Severity = append(f.Severity, audit.Severity(strings.ToUpper(s)))
			}
			for _, s := range types {
				f.Type = append(f.Type, audit.AlertType(strings.ToUpper(s)))
			}
			var err error
			if f.Since, err = parseSince(since, time.Now()); err != nil {
				return err
			}
			if limit < 1 || limit > audit.AlertListMax {
				return fmt.Errorf("--limit must be from 1 to %d (is %d)", audit.AlertListMax, limit)
			}
			return withStore(c, func(ctx context.Context, out io.Writer, store audit.AlertStore) error {
				alerts, next, err := store.ListAlerts(ctx, f)
				if err != nil {
					return err
				}
				if *output == "json" {
					if alerts == nil {
						alerts = []audit.Alert{}
					}
					return writeJSONTo(out, map[string]any{"alerts": alerts, "nextCursor": next})
				}
				return writeAlertTable(out, alerts, next)
			})
		},
	}
	fl := list.Flags()
	fl.StringSliceVar(&status, "status", nil, "only these statuses (active, acknowledged, resolved, dismissed), comma-separated")
	fl.StringSliceVar(&severity, "severity", nil, "only these severities (LOW, MEDIUM, HIGH, CRITICAL), comma-separated")
	fl.StringSliceVar(&types, "type", nil, "only these types (SECURITY, SYSTEM, PERFORMANCE, COMPLIANCE), comma-separated")
	fl.StringVar(&org, "org", "", "only this organization's alerts")
	fl.StringVar(&since, "since", "", "only alerts first seen since this RFC 3339 time, or this long ago (e.g. 24h)")
	fl.IntVar(&limit, "limit", audit.AlertListDefault, fmt.Sprintf("at most this many alerts (1-%d)", audit.AlertListMax))
	fl.StringVar(&cursor, "cursor", "", "continue after a previous page (the cursor it printed)")
	return list
}

func newAlertTransitionCommand(use, short string, to audit.AlertStatus, withStore storeRunner, output *string) *cobra.Command {
	var by, note string
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if strings.TrimSpace(by) == "" {
				return fmt.Errorf("--by is required (who makes the change; $USER is not set)")
			}
			return withStore(c, func(ctx context.Context, out io.Writer, store audit.AlertStore) error {
				a, err := store.TransitionAlert(ctx, args[0], to, by, note)
				if err != nil {
					return err
				}
				if *output == "json" {
					return writeJSONTo(out, a)
				}
				_, err = fmt.Fprintf(out, "%s is now %s (by %s)\n", a.ID, a.Status, by)
				return err
			})
		},
	}
	c.Flags().StringVar(&by, "by", os.Getenv("USER"), "who makes the change (default $USER)")
	c.Flags().StringVar(&note, "note", "", "why (kept with the alert)")
	return c
}

// parseSince accepts an RFC 3339 time or a duration back from now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := audit.ParseQueryTime(v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since must be an RFC 3339 time or a duration such as 24h (is %q)", v)
}

func writeAlertTable(out io.Writer, alerts []audit.Alert, next string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFIRST SEEN\tLAST SEEN\tSEVERITY\tTYPE\tSTATUS\tCOUNT\tORG\tTITLE")
	for _, a := range alerts {
		org := a.OrganizationID
		if org == "" {
			org = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.ID,
			a.FirstSeen.Format(time.RFC3339), a.LastSeen.Format(time.RFC3339), a.Severity, a.Type, a.Status,
			a.Occurrences, org, truncate(a.Title, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		_, err := fmt.Fprintf(out, "more: --cursor %s\n", next)
		return err
	}
	return nil
}

func writeJSONTo(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
