package report

import (
	"context"
	"slices"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Run statuses.
const (
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
)

// Run is one scheduled report for one period: what was made, where it went,
// and how it went.
type Run struct {
	ID            int64      `json:"id"`
	Schedule      string     `json:"schedule"`
	Type          Type       `json:"reportType"`
	Organizations []string   `json:"organizations"`
	PeriodStart   time.Time  `json:"periodStart"`
	PeriodEnd     time.Time  `json:"periodEnd"`
	Format        Format     `json:"format"`
	Destination   string     `json:"destination"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	StartedAt     time.Time  `json:"startedAt"`
	FinishedAt    *time.Time `json:"finishedAt,omitempty"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	ReportID      string     `json:"reportId,omitempty"`
	Location      string     `json:"location,omitempty"`
	SizeBytes     *int64     `json:"sizeBytes,omitempty"`
	SHA256        string     `json:"sha256,omitempty"`
	Error         string     `json:"error,omitempty"`
}

// VisibleTo reports whether p may see the run: every organisation it
// covered must be in p's scope.
func (r *Run) VisibleTo(p audit.Principal) bool {
	if p.AllOrgs() {
		return true
	}
	return len(r.Organizations) > 0 && !slices.ContainsFunc(r.Organizations, func(o string) bool { return !p.InScope(o) })
}

// RunClaim is a run a replica wants to make.
type RunClaim struct {
	Schedule      string
	Type          Type
	Organizations []string // [audit.AllOrganizations] for every organisation
	PeriodStart   time.Time
	PeriodEnd     time.Time
	Format        Format
	Destination   string // where it goes, for people (no secret)
}

// RunResult is how a run ended.
type RunResult struct {
	Status        string // RunSucceeded or RunFailed
	ReportID      string
	Location      string
	SizeBytes     int64
	SHA256        string
	Error         string
	NextAttemptAt *time.Time // when a failed run may be tried again; nil: never
}

// RunQuery selects runs to list: newest first, after the run with id After
// (0: from the newest).
type RunQuery struct {
	Schedule string
	After    int64
	Limit    int
}

// RunStore keeps the runs of scheduled reports; its rows are the leases
// that let exactly one replica make each run. Both stores implement it.
type RunStore interface {
	// ClaimRun records the run as running under owner until now+lease and
	// reports true, when no replica holds it: it is new, its holder's lease
	// expired, or it failed, is due (NextAttemptAt ≤ now) and has had fewer
	// than maxAttempts attempts. Otherwise it reports false.
	ClaimRun(ctx context.Context, c RunClaim, owner string, now time.Time, lease time.Duration, maxAttempts int) (Run, bool, error)
	// FinishRun records how the run owner holds ended.
	FinishRun(ctx context.Context, id int64, owner string, res RunResult, now time.Time) error
	// LastPeriodEnd is the latest period end of the schedule's runs.
	LastPeriodEnd(ctx context.Context, schedule string) (time.Time, bool, error)
	// DueRuns lists the runs to take up again: failed and due with fewer
	// than maxAttempts attempts, or running with an expired lease.
	DueRuns(ctx context.Context, now time.Time, maxAttempts int) ([]Run, error)
	// ListRuns lists runs, newest first.
	ListRuns(ctx context.Context, q RunQuery) ([]Run, error)
}
