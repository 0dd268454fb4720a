package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/httpapi"
	"github.com/smartlogs/audit-worker/report"
)

// schedulerInterval is how often the scheduler looks for due reports.
const schedulerInterval = time.Minute

// reportGenerator is the report generator the configuration describes.
func reportGenerator(cfg config.Config, store report.Store) *report.Generator {
	opts := cfg.ReportOptions()
	opts.Store = store
	opts.HMACKey = func() []byte { return []byte(cfg.Security.EncryptionKey) }
	opts.Checkpoints = reportCheckpoints(cfg, store)
	return report.New(opts)
}

// reportSchedules are the configuration's scheduled reports: its own
// entries, and the original's reportingSchedule (HIPAA and GDPR of every
// organisation, as PDF under storage.dataDir/reports).
func reportSchedules(cfg config.Config) ([]report.Schedule, error) {
	pd := cfg.Monitoring.PatternDetection
	zones := report.TimeZones{Default: pd.TimeZone, ByOrg: pd.OrganizationTimeZones}
	var out []report.Schedule
	if rs := cfg.Compliance.ReportingSchedule; rs.Enabled {
		dest := dirDestination(filepath.Join(cfg.Storage.DataDir, "reports"))
		for _, typ := range []report.Type{report.HIPAA, report.GDPR} {
			out = append(out, report.Schedule{Name: "reportingSchedule-" + typ.Short(), Type: typ, Frequency: rs.Frequency,
				TimeZone: zones.Zone(""), Format: report.PDF, Destination: dest})
		}
	}
	for _, r := range cfg.Compliance.Reports {
		typ, err := report.ParseType(r.Report)
		if err != nil {
			return nil, err
		}
		dest, err := newDestination(r.Name, r.Destination, r.Secret)
		if err != nil {
			return nil, err
		}
		sc := report.Schedule{Name: r.Name, Type: typ, Frequency: r.Frequency, Cron: r.Cron, TimeZone: r.TimeZone,
			Format: report.Format(r.Format), Destination: dest}
		if len(r.Organizations) != 1 || r.Organizations[0] != audit.AllOrganizations {
			sc.Organizations = r.Organizations
		}
		if sc.TimeZone == "" {
			first := ""
			if sc.Organizations != nil {
				first = sc.Organizations[0]
			}
			sc.TimeZone = zones.Zone(first)
		}
		if sc.Format == "" {
			sc.Format = report.PDF
		}
		out = append(out, sc)
	}
	return out, nil
}

// startReports hands the report generator and the runs to the API and,
// when reports are scheduled, starts the scheduler.
func (w *worker) startReports(cfg config.Config, opts *httpapi.Options) error {
	store, ok := w.store.(interface {
		report.Store
		report.RunStore
	})
	if !ok {
		return fmt.Errorf("the store cannot compute reports")
	}
	gen := reportGenerator(cfg, store)
	opts.Reports = httpapi.ReportOptions{Generator: gen, Runs: store}
	schedules, err := reportSchedules(cfg)
	if err != nil || len(schedules) == 0 {
		return err
	}
	sched, err := report.NewScheduler(report.SchedulerOptions{Generator: gen, Runs: store, Schedules: schedules,
		Logger: w.log, Made: w.recordScheduledReport})
	if err != nil {
		return err
	}
	w.spawn("report scheduler", func() error { return sched.Run(w.running, schedulerInterval) })
	return nil
}

// recordScheduledReport records a scheduled report as an access to the
// audit trail, like one asked for over HTTP.
func (w *worker) recordScheduledReport(r *report.Report, run report.Run, err error) {
	orgs := run.Organizations
	if len(orgs) == 1 && orgs[0] == audit.AllOrganizations {
		orgs = nil
	}
	a := access.Access{Action: access.ActionReport, PrincipalID: "scheduler:" + run.Schedule, Organizations: orgs,
		Success: err == nil, TargetType: "report", Details: map[string]any{"reportType": string(run.Type),
			"format": string(run.Format), "periodStart": run.PeriodStart, "periodEnd": run.PeriodEnd}}
	if r != nil {
		a.TargetID, a.Outcome = r.Metadata.ReportID, fmt.Sprintf("%s report of %d events", run.Type, r.Summary.TotalEvents)
	}
	if err != nil {
		a.Outcome = err.Error()
	}
	w.records.Record(a)
}

func newReportCommand(configPath *string) *cobra.Command {
	var orgs []string
	var from, to, format, out string
	var threshold int
	cmd := &cobra.Command{
		Use:   "report hipaa|gdpr|general|integrity --org ORG --from TIME --to TIME [--format json|csv|pdf] [--out FILE]",
		Short: "Make a compliance report from the configured store",
		Long: `Makes a HIPAA, GDPR, general or integrity report of the events of the
organisations (--org, repeated) in the period [--from, --to) (RFC 3339 times
with an offset), as JSON (default), CSV or PDF, to --out or standard output.
Every number is computed in the database; docs/reports.md defines each. The
report is recorded in the audit trail as an audit.access.report event.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			typ, err := report.ParseType(args[0])
			if err != nil {
				return err
			}
			f, err := report.ParseFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			c := report.Criteria{OrganizationIDs: orgs, HighVolumeAccessThreshold: threshold}
			if c.From, err = audit.ParseQueryTime(from); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if c.To, err = audit.ParseQueryTime(to); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			return withStore(cmd, *configPath, func(ctx context.Context, env *cliEnv) error {
				return runReport(ctx, env, typ, c, f, out, cmd.OutOrStdout())
			})
		},
	}
	cmd.Flags().StringArrayVar(&orgs, "org", nil, "an organisation to report on; repeat it (required)")
	cmd.Flags().StringVar(&from, "from", "", "start of the period, included (RFC 3339, required)")
	cmd.Flags().StringVar(&to, "to", "", "end of the period, excluded (RFC 3339, required)")
	cmd.Flags().StringVar(&format, "format", "json", "json, csv or pdf")
	cmd.Flags().StringVar(&out, "out", "", "file to write (default: standard output)")
	cmd.Flags().IntVar(&threshold, "high-volume-threshold", 0, "HIPAA: PHI accesses per principal above which it is a finding (default 100)")
	cmd.MarkFlagRequired("org")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	return cmd
}

// runReport makes the report, writes it and records the access.
func runReport(ctx context.Context, env *cliEnv, typ report.Type, c report.Criteria, f report.Format, out string, stdout io.Writer) error {
	store, ok := env.store.(report.Store)
	if !ok {
		return fmt.Errorf("the configured store cannot compute reports")
	}
	g := reportGenerator(env.cfg, store)
	if err := c.Validate(g.MaxPeriod()); err != nil {
		return err
	}
	r, err := g.Generate(ctx, report.Request{Type: typ, Criteria: c, Organizations: c.OrganizationIDs, GeneratedBy: cliPrincipal().ID})
	if err == nil {
		err = writeReport(ctx, g, r, f, out, stdout)
	}
	a := access.Access{Action: access.ActionReport, Organizations: c.OrganizationIDs, Success: err == nil, TargetType: "report",
		Details: map[string]any{"reportType": string(typ), "format": string(f)}}
	if r != nil {
		a.TargetID, a.Outcome = r.Metadata.ReportID, fmt.Sprintf("%s report of %d events", typ, r.Summary.TotalEvents)
	}
	if err != nil {
		a.Outcome = err.Error()
	}
	if rerr := env.record(ctx, a); err == nil {
		err = rerr
	}
	return err
}

func writeReport(ctx context.Context, g *report.Generator, r *report.Report, f report.Format, out string, stdout io.Writer) error {
	if out == "" {
		bw := bufio.NewWriter(stdout)
		if err := g.Render(ctx, bw, r, f); err != nil {
			return err
		}
		return bw.Flush()
	}
	file, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(file)
	if err := g.Render(ctx, bw, r, f); err != nil {
		file.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}
