package audit

import (
	"context"
	"encoding/json"
	"time"
)

// AlertType is the family of an alert.
type AlertType string

const (
	AlertSecurity    AlertType = "SECURITY"
	AlertSystem      AlertType = "SYSTEM"
	AlertPerformance AlertType = "PERFORMANCE"
	AlertCompliance  AlertType = "COMPLIANCE"
)

// Severity orders alerts; the zero value is invalid.
type Severity string

const (
	SeverityLow      Severity = "LOW"
	SeverityMedium   Severity = "MEDIUM"
	SeverityHigh     Severity = "HIGH"
	SeverityCritical Severity = "CRITICAL"
)

// Rank is 1 (LOW) to 4 (CRITICAL), 0 for an unknown severity; "at least HIGH" is s.Rank() >= SeverityHigh.Rank().
func (s Severity) Rank() int {
	switch s {
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return 0
}

// AlertStatus is where an alert is in its lifecycle: active → acknowledged →
// resolved, or dismissed (a false positive) from active or acknowledged.
type AlertStatus string

const (
	AlertActive       AlertStatus = "active"
	AlertAcknowledged AlertStatus = "acknowledged"
	AlertResolved     AlertStatus = "resolved"
	AlertDismissed    AlertStatus = "dismissed"
)

// Open reports whether the alert still needs attention (active or acknowledged):
// a repeat of its condition updates it instead of opening a new one.
func (s AlertStatus) Open() bool { return s == AlertActive || s == AlertAcknowledged }

// AlertCondition is one observation of a condition that deserves an alert: a
// detector's window over its threshold, or a system threshold crossed.
type AlertCondition struct {
	OrganizationID string // "" for system alerts
	Type           AlertType
	Severity       Severity
	// DedupKey names the condition, e.g. "FAILED_AUTH:principal:u-42". While an
	// alert with the same key is open and was last seen within DedupWindow,
	// a repeat updates it (occurrences+1, last seen, metadata) instead of
	// creating a new alert.
	DedupKey    string
	DedupWindow time.Duration
	Title       string
	Description string
	Source      string          // e.g. "pattern-detector", "system-monitor"
	Metadata    json.RawMessage // the evidence: event keys, counts, window; a JSON object
	Tags        []string
	// CorrelationID ties the alert to the events that raised it (their correlationId, if any).
	CorrelationID string
	ObservedAt    time.Time // when the condition was seen (event time for detectors)
}

// Alert is a stored alert.
type Alert struct {
	ID             string          `json:"id"`
	OrganizationID string          `json:"organizationId,omitempty"`
	Type           AlertType       `json:"type"`
	Severity       Severity        `json:"severity"`
	Title          string          `json:"title"`
	Description    string          `json:"description"`
	Source         string          `json:"source"`
	Status         AlertStatus     `json:"status"`
	DedupKey       string          `json:"dedupKey"`
	FirstSeen      time.Time       `json:"firstSeen"`
	LastSeen       time.Time       `json:"lastSeen"`
	Occurrences    int64           `json:"occurrences"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	CorrelationID  string          `json:"correlationId,omitempty"`
	Tags           []string        `json:"tags"`
	// The lifecycle: who changed the status, when and why.
	AcknowledgedBy string     `json:"acknowledgedBy,omitempty"`
	AcknowledgedAt *time.Time `json:"acknowledgedAt,omitempty"`
	ResolvedBy     string     `json:"resolvedBy,omitempty"` // also who dismissed it
	ResolvedAt     *time.Time `json:"resolvedAt,omitempty"`
	StatusNote     string     `json:"statusNote,omitempty"` // the reason given with the last transition
	UpdatedAt      time.Time  `json:"updatedAt"`
}

// AlertFilter selects alerts; zero fields match everything. Results are newest
// first (by first seen, then id) and paged with After, the Cursor of the last
// alert of the previous page.
type AlertFilter struct {
	Status         []AlertStatus
	Severity       []Severity
	Type           []AlertType
	OrganizationID string
	Since, Until   time.Time // on FirstSeen; Until is exclusive
	Limit          int       // default 100, at most 1000
	After          string    // keyset cursor
}

// AlertStatistics counts alerts by status, severity and type.
type AlertStatistics struct {
	Total      int64                 `json:"total"`
	ByStatus   map[AlertStatus]int64 `json:"byStatus"`
	BySeverity map[Severity]int64    `json:"bySeverity"`
	ByType     map[AlertType]int64   `json:"byType"`
}

// AlertRaise is what RaiseAlert did.
type AlertRaise struct {
	Alert   Alert
	Created bool // false: an open alert with the same key was updated
}

// AlertStore keeps alerts. Both stores implement it; RaiseAlert must be safe
// across processes (two workers raising the same condition at once get one alert).
type AlertStore interface {
	RaiseAlert(ctx context.Context, c AlertCondition) (AlertRaise, error)
	GetAlert(ctx context.Context, id string) (Alert, error) // CodeNotFound when absent
	ListAlerts(ctx context.Context, f AlertFilter) (alerts []Alert, next string, err error)
	// TransitionAlert moves an alert to acknowledged, resolved or dismissed,
	// recording who and why. Moving a closed alert (resolved, dismissed) or
	// acknowledging twice is CodeConflict.
	TransitionAlert(ctx context.Context, id string, to AlertStatus, by, note string) (Alert, error)
	AlertStatistics(ctx context.Context, f AlertFilter) (AlertStatistics, error)
}
