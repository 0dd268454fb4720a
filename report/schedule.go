package report

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	audit "github.com/smartlogs/audit-worker"
)

// Destination receives a scheduled report's bytes.
type Destination interface {
	// Deliver sends the document and returns where it went (a path, an
	// s3:// URL, a webhook's name).
	Deliver(ctx context.Context, d Delivery) (string, error)
	// String names the destination without a secret.
	String() string
}

// Delivery is one report document to deliver.
type Delivery struct {
	Name        string // file name: <schedule>-<type>-<period start>-<period end>.<format>
	ContentType string
	Body        []byte
	SHA256      string
	Run         Run
}

// Schedule is one report made every period.
type Schedule struct {
	Name          string
	Type          Type
	Organizations []string // nil: every organisation
	// Frequency (daily, weekly from Monday, monthly) or Cron (five fields)
	// sets the periods: each run covers the previous full period.
	Frequency   string
	Cron        string
	TimeZone    string // IANA; the periods' days start at its midnight
	Format      Format
	Destination Destination
	cron        cron.Schedule
	loc         *time.Location
}

// Frequencies are the accepted values of Schedule.Frequency.
var Frequencies = []string{"daily", "weekly", "monthly"}

// ParseCron checks a five-field cron expression.
func ParseCron(expr string) error {
	_, err := parseCron(expr)
	return err
}

// parseCron parses a five-field cron expression (or a descriptor such as
// @daily). A TZ= or CRON_TZ= prefix is refused: the schedule's time zone is
// its own setting, and the cron parser indexes past the end of a prefix
// that no space follows.
func parseCron(expr string) (cron.Schedule, error) {
	if t := strings.TrimSpace(expr); strings.HasPrefix(t, "TZ=") || strings.HasPrefix(t, "CRON_TZ=") {
		return nil, errors.New("a time zone prefix (TZ=, CRON_TZ=) is not taken: set the schedule's time zone instead")
	}
	return cron.ParseStandard(expr)
}

// prepare loads the zone and parses the cron expression.
func (s *Schedule) prepare() error {
	var err error
	if s.loc, err = loadZone(s.TimeZone); err != nil {
		return err
	}
	if s.Cron != "" {
		if s.cron, err = parseCron(s.Cron); err != nil {
			return audit.Errorf(audit.CodeInvalid, "schedule %s: cron %q: %v", s.Name, s.Cron, err)
		}
	}
	return nil
}

// cronLookBack is how far back the last cron firing is looked for: a cron
// schedule must fire at least every 35 days.
const cronLookBack = 35 * 24 * time.Hour

// Periods returns the full periods that ended in (after, now], oldest first.
func (s *Schedule) Periods(after, now time.Time) [][2]time.Time {
	var ends []time.Time
	for end := s.lastEnd(now); end.After(after) && len(ends) < 1000; end = s.prevEnd(end) {
		ends = append(ends, end)
	}
	out := make([][2]time.Time, 0, len(ends))
	for i := len(ends) - 1; i >= 0; i-- {
		out = append(out, [2]time.Time{s.prevEnd(ends[i]), ends[i]})
	}
	return out
}

// lastEnd is the latest period boundary at or before now.
func (s *Schedule) lastEnd(now time.Time) time.Time {
	local := now.In(s.loc)
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, s.loc)
	switch {
	case s.cron != nil:
		var last time.Time
		for t := s.cron.Next(now.Add(-cronLookBack)); !t.After(now); t = s.cron.Next(t) {
			last = t
		}
		return last
	case s.Frequency == "weekly":
		return midnight.AddDate(0, 0, -((int(local.Weekday()) + 6) % 7))
	case s.Frequency == "monthly":
		return time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, s.loc)
	}
	return midnight
}

// prevEnd is the period boundary before end.
func (s *Schedule) prevEnd(end time.Time) time.Time {
	local := end.In(s.loc)
	switch {
	case s.cron != nil:
		prev := time.Time{}
		for t := s.cron.Next(end.Add(-cronLookBack)); t.Before(end); t = s.cron.Next(t) {
			prev = t
		}
		return prev
	case s.Frequency == "weekly":
		return local.AddDate(0, 0, -7)
	case s.Frequency == "monthly":
		return local.AddDate(0, -1, 0)
	}
	return local.AddDate(0, 0, -1)
}

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	Generator *Generator
	Runs      RunStore
	Schedules []Schedule
	// Lease is how long a replica holds a run before another may take it
	// over (default 10 minutes); MaxAttempts bounds the attempts of a run
	// (default 5); RetryDelay is the wait before the first retry, doubled
	// after each (default 1 minute); MaxCatchUp bounds the missed periods
	// run when the worker comes back (default 3, the latest ones).
	Lease       time.Duration
	MaxAttempts int
	RetryDelay  time.Duration
	MaxCatchUp  int
	// Made is told of every report made, so that it can be recorded as an
	// access to the audit trail.
	Made   func(r *Report, run Run, err error)
	Now    func() time.Time
	Logger *slog.Logger
}

// Scheduler makes the scheduled reports. Every replica runs one; the runs
// table's leases make each period's report once.
type Scheduler struct {
	opts  SchedulerOptions
	owner string
	byKey map[string]*Schedule
}

// NewScheduler checks the schedules and returns a scheduler.
func NewScheduler(opts SchedulerOptions) (*Scheduler, error) {
	if opts.Lease <= 0 {
		opts.Lease = 10 * time.Minute
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Minute
	}
	if opts.MaxCatchUp <= 0 {
		opts.MaxCatchUp = 3
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{opts: opts, byKey: map[string]*Schedule{}}
	for i := range s.opts.Schedules {
		sc := &s.opts.Schedules[i]
		if err := sc.prepare(); err != nil {
			return nil, err
		}
		s.byKey[sc.Name] = sc
	}
	host, _ := os.Hostname()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	s.owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
	return s, nil
}

// Run ticks every interval until ctx ends.
func (s *Scheduler) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("scheduled reports: tick failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Tick makes every report that is due: the periods that ended since each
// schedule's last run (at most MaxCatchUp of them, the latest), and the
// failed runs whose retry is due. It returns the first error of the store.
func (s *Scheduler) Tick(ctx context.Context) error {
	now := s.opts.Now()
	for i := range s.opts.Schedules {
		sc := &s.opts.Schedules[i]
		last, ok, err := s.opts.Runs.LastPeriodEnd(ctx, sc.Name)
		if err != nil {
			return err
		}
		var periods [][2]time.Time
		if ok {
			periods = sc.Periods(last, now)
		} else {
			periods = sc.Periods(sc.lastEnd(now).Add(-time.Nanosecond), now) // the latest period only
		}
		if len(periods) > s.opts.MaxCatchUp {
			s.opts.Logger.Warn("scheduled reports: periods missed beyond the catch-up limit are skipped",
				"schedule", sc.Name, "missed", len(periods), "made", s.opts.MaxCatchUp)
			periods = periods[len(periods)-s.opts.MaxCatchUp:]
		}
		for _, p := range periods {
			if err := s.runPeriod(ctx, sc, p[0], p[1]); err != nil {
				return err
			}
		}
	}
	due, err := s.opts.Runs.DueRuns(ctx, now, s.opts.MaxAttempts)
	if err != nil {
		return err
	}
	for _, r := range due {
		if sc := s.byKey[r.Schedule]; sc != nil {
			if err := s.runPeriod(ctx, sc, r.PeriodStart, r.PeriodEnd); err != nil {
				return err
			}
		}
	}
	return nil
}

// runPeriod claims the run of one period and, when this replica holds it,
// makes, renders and delivers the report. A failure of the report or of
// the delivery is recorded on the run (and retried later); only a failure
// of the runs table itself is returned.
func (s *Scheduler) runPeriod(ctx context.Context, sc *Schedule, start, end time.Time) error {
	orgs := sc.Organizations
	if orgs == nil {
		orgs = []string{audit.AllOrganizations}
	}
	claim := RunClaim{Schedule: sc.Name, Type: sc.Type, Organizations: orgs, PeriodStart: start.UTC(), PeriodEnd: end.UTC(),
		Format: sc.Format, Destination: sc.Destination.String()}
	run, ok, err := s.opts.Runs.ClaimRun(ctx, claim, s.owner, s.opts.Now(), s.opts.Lease, s.opts.MaxAttempts)
	if err != nil || !ok {
		return err
	}
	res := s.make(ctx, sc, run)
	if res.Status == RunFailed {
		s.opts.Logger.Warn("scheduled report failed", "schedule", sc.Name, "periodStart", run.PeriodStart,
			"attempt", run.Attempts, "err", res.Error)
		if run.Attempts < s.opts.MaxAttempts {
			next := s.opts.Now().Add(s.opts.RetryDelay << (run.Attempts - 1))
			res.NextAttemptAt = &next
		}
	} else {
		s.opts.Logger.Info("scheduled report delivered", "schedule", sc.Name, "periodStart", run.PeriodStart,
			"location", res.Location, "bytes", res.SizeBytes)
	}
	return s.opts.Runs.FinishRun(context.WithoutCancel(ctx), run.ID, s.owner, res, s.opts.Now())
}

func (s *Scheduler) make(ctx context.Context, sc *Schedule, run Run) RunResult {
	g := s.opts.Generator
	c := Criteria{OrganizationIDs: sc.Organizations, From: run.PeriodStart, To: run.PeriodEnd}
	r, err := g.Generate(ctx, Request{Type: sc.Type, Criteria: c, Organizations: sc.Organizations,
		GeneratedBy: "scheduler:" + sc.Name})
	if s.opts.Made != nil {
		s.opts.Made(r, run, err)
	}
	if err != nil {
		return RunResult{Status: RunFailed, Error: "generate: " + err.Error()}
	}
	var buf bytes.Buffer
	if err := g.Render(ctx, &buf, r, sc.Format); err != nil {
		return RunResult{Status: RunFailed, ReportID: r.Metadata.ReportID, Error: "render: " + err.Error()}
	}
	sum := sha256.Sum256(buf.Bytes())
	d := Delivery{Name: fmt.Sprintf("%s-%s-%s-%s.%s", sc.Name, sc.Type.Short(), run.PeriodStart.In(sc.loc).Format("20060102T1504"),
		run.PeriodEnd.In(sc.loc).Format("20060102T1504"), sc.Format), ContentType: sc.Format.ContentType(),
		Body: buf.Bytes(), SHA256: hex.EncodeToString(sum[:]), Run: run}
	loc, err := sc.Destination.Deliver(ctx, d)
	res := RunResult{Status: RunSucceeded, ReportID: r.Metadata.ReportID, Location: loc, SizeBytes: int64(buf.Len()), SHA256: d.SHA256}
	if err != nil {
		res.Status, res.Error = RunFailed, "deliver to "+sc.Destination.String()+": "+err.Error()
	}
	return res
}
