package audit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smartlogs/audit-worker/internal/jsontext"
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
	// Occurrences is how many observations the condition stands for (a raiser
	// may fold repeats into one write); 0 means 1.
	Occurrences int64
}

// count is the number of observations c stands for.
func (c AlertCondition) count() int64 { return max(c.Occurrences, 1) }

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
	// Organizations restricts the alerts to these organisations (nil: any,
	// empty: none); callers set it to the principal's scope.
	Organizations []string
	Since, Until  time.Time // on FirstSeen; Until is exclusive
	Limit         int       // default 100, at most 1000
	After         string    // keyset cursor
}

// AlertStatistics counts alerts by status, severity and type.
type AlertStatistics struct {
	Total      int64                 `json:"total"`
	ByStatus   map[AlertStatus]int64 `json:"byStatus"`
	BySeverity map[Severity]int64    `json:"bySeverity"`
	ByType     map[AlertType]int64   `json:"byType"`
}

// NewAlertStatistics returns empty statistics that list every known status,
// severity and type with a zero count.
func NewAlertStatistics() AlertStatistics {
	st := AlertStatistics{ByStatus: map[AlertStatus]int64{}, BySeverity: map[Severity]int64{}, ByType: map[AlertType]int64{}}
	for _, v := range AlertStatuses {
		st.ByStatus[v] = 0
	}
	for _, v := range Severities {
		st.BySeverity[v] = 0
	}
	for _, v := range AlertTypes {
		st.ByType[v] = 0
	}
	return st
}

// Add counts n alerts with this status, severity and type.
func (st *AlertStatistics) Add(status AlertStatus, severity Severity, typ AlertType, n int64) {
	st.Total += n
	st.ByStatus[status] += n
	st.BySeverity[severity] += n
	st.ByType[typ] += n
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

// AlertBatchStore is an AlertStore that records many conditions in one
// transaction (both stores implement it). RaiseAlerts applies them in order, exactly as
// RaiseAlert one after the other would, and returns one AlertRaise each; on an
// error nothing was recorded. The pattern detectors use it when a batch of
// events raises several conditions at once.
type AlertBatchStore interface {
	AlertStore
	RaiseAlerts(ctx context.Context, cs []AlertCondition) ([]AlertRaise, error)
}

// Valid reports whether t is one of the known alert types.
func (t AlertType) Valid() bool {
	switch t {
	case AlertSecurity, AlertSystem, AlertPerformance, AlertCompliance:
		return true
	}
	return false
}

// Valid reports whether s is one of the known statuses.
func (s AlertStatus) Valid() bool { return s.Open() || s == AlertResolved || s == AlertDismissed }

// AlertTypes, Severities and AlertStatuses list the known values, in their
// natural order (statistics report every one of them, zeros included).
var (
	AlertTypes    = []AlertType{AlertSecurity, AlertSystem, AlertPerformance, AlertCompliance}
	Severities    = []Severity{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}
	AlertStatuses = []AlertStatus{AlertActive, AlertAcknowledged, AlertResolved, AlertDismissed}
)

// Alert limits and the paging defaults every store applies.
const (
	AlertListDefault = 100
	AlertListMax     = 1000
	// SupersededNote is the note of an open alert closed automatically because
	// its condition recurred after its dedup window: the recurrence is a new
	// incident with its own alert, and two open alerts for one key would be
	// ambiguous for operators and for the partial unique index.
	SupersededNote = "superseded: condition recurred after its window"
	// SystemActor is the "by" of transitions the worker makes itself.
	SystemActor = "audit-worker"
)

// RaiseOne is RaiseAlert for a store that raises in batches: RaiseAlerts
// with the one condition.
func RaiseOne(ctx context.Context, s AlertBatchStore, c AlertCondition) (AlertRaise, error) {
	out, err := s.RaiseAlerts(ctx, []AlertCondition{c})
	if err != nil {
		return AlertRaise{}, err
	}
	return out[0], nil
}

// NormalizeAll is Normalize for each condition of a batch, with one now; the
// first invalid one fails them all.
func NormalizeAll(cs []AlertCondition, now time.Time) ([]AlertCondition, error) {
	out := make([]AlertCondition, len(cs))
	for i, c := range cs {
		n, err := c.Normalize(now)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// Normalize validates c and returns it ready to store: ObservedAt defaults to
// now, instants are UTC microseconds (the precision both stores keep, so that
// cursors compare equal), Tags is never nil. DedupWindow 0 means "no time
// limit": a repeat updates the open alert however long ago it was last seen.
func (c AlertCondition) Normalize(now time.Time) (AlertCondition, error) {
	switch {
	case !c.Type.Valid():
		return c, Errorf(CodeInvalid, "alert condition: unknown type %q", c.Type)
	case c.Severity.Rank() == 0:
		return c, Errorf(CodeInvalid, "alert condition: unknown severity %q", c.Severity)
	case strings.TrimSpace(c.DedupKey) == "":
		return c, Errorf(CodeInvalid, "alert condition: dedup key is required")
	case strings.TrimSpace(c.Title) == "":
		return c, Errorf(CodeInvalid, "alert condition: title is required")
	case c.DedupWindow < 0:
		return c, Errorf(CodeInvalid, "alert condition: negative dedup window %s", c.DedupWindow)
	}
	// Valid JSON that opens with a brace is an object; jsontext.Check decodes
	// nothing, which matters at night, when a batch raises an alert per principal.
	if len(c.Metadata) > 0 && (jsontext.Check(c.Metadata) != nil || c.Metadata[jsontext.SkipSpace(c.Metadata, 0)] != '{') {
		return c, Errorf(CodeInvalid, "alert condition: metadata must be a JSON object")
	}
	if c.ObservedAt.IsZero() {
		c.ObservedAt = now
	}
	c.ObservedAt = c.ObservedAt.UTC().Truncate(time.Microsecond)
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return c, nil
}

// Covers reports whether a repeat of c updates a (instead of opening a new
// alert): a is open and was last seen within c's dedup window before c.
func (a *Alert) Covers(c AlertCondition) bool {
	if !a.Status.Open() {
		return false
	}
	return c.DedupWindow == 0 || !a.LastSeen.Before(c.ObservedAt.Add(-c.DedupWindow))
}

// Absorb applies a repeat of the condition to a: its occurrences are added, last seen
// moves forward only (observations may arrive out of order), the highest
// severity wins, and the latest evidence replaces description and metadata.
func (a *Alert) Absorb(c AlertCondition, now time.Time) {
	a.Occurrences += c.count()
	if c.ObservedAt.After(a.LastSeen) {
		a.LastSeen = c.ObservedAt
	}
	if c.Severity.Rank() > a.Severity.Rank() {
		a.Severity = c.Severity
	}
	a.Description = c.Description
	a.Metadata = c.Metadata
	if c.CorrelationID != "" {
		a.CorrelationID = c.CorrelationID
	}
	for _, t := range c.Tags {
		if !slices.Contains(a.Tags, t) {
			a.Tags = append(a.Tags, t)
		}
	}
	a.UpdatedAt = now
}

// NewAlertFrom builds the alert a first observation of c opens.
func NewAlertFrom(id string, c AlertCondition, now time.Time) Alert {
	return Alert{
		ID: id, OrganizationID: c.OrganizationID, Type: c.Type, Severity: c.Severity,
		Title: c.Title, Description: c.Description, Source: c.Source, Status: AlertActive,
		DedupKey: c.DedupKey, FirstSeen: c.ObservedAt, LastSeen: c.ObservedAt, Occurrences: c.count(),
		Metadata: c.Metadata, CorrelationID: c.CorrelationID, Tags: slices.Clone(c.Tags), UpdatedAt: now,
	}
}

// AlertBatch decides in memory what a batch of conditions does to the open
// alerts of their keys, exactly as RaiseAlert one condition after the other
// would. A store reads the open alerts of the batch's keys (AlertDedupKeys)
// while it holds the keys, applies each condition with Raise, and writes the
// Changes in the same transaction.
type AlertBatch struct {
	open    map[string][]*Alert // per dedup key, its open alerts
	touched []*Alert            // in order of first change
	isNew   map[*Alert]bool     // every touched alert: true when not stored yet
}

// NewAlertBatch starts a batch over the open alerts the store holds for its keys.
func NewAlertBatch(open []Alert) *AlertBatch {
	b := &AlertBatch{open: make(map[string][]*Alert), isNew: make(map[*Alert]bool)}
	for i := range open {
		a := &open[i]
		b.open[a.DedupKey] = append(b.open[a.DedupKey], a)
	}
	return b
}

// Raise applies a normalised condition: a repeat within the window updates
// the one open alert of its key; otherwise the open ones are resolved as
// superseded and a new alert opens. Later conditions of the batch see what
// the earlier ones did.
func (b *AlertBatch) Raise(c AlertCondition, now time.Time) (AlertRaise, error) {
	open := b.open[c.DedupKey]
	if len(open) == 1 && open[0].Covers(c) {
		a := open[0]
		a.Absorb(c, now)
		b.touch(a, false)
		return AlertRaise{Alert: a.snapshot()}, nil
	}
	for _, old := range open {
		if err := old.Transition(AlertResolved, SystemActor, SupersededNote, now); err != nil {
			return AlertRaise{}, err
		}
		b.touch(old, false)
	}
	a := NewAlertFrom(NewAlertID(now), c, now)
	b.open[c.DedupKey] = []*Alert{&a}
	b.touch(&a, true)
	return AlertRaise{Alert: a.snapshot(), Created: true}, nil
}

func (b *AlertBatch) touch(a *Alert, isNew bool) {
	if _, seen := b.isNew[a]; seen {
		return
	}
	b.isNew[a] = isNew
	b.touched = append(b.touched, a)
}

// Changes returns the alerts to write, in order of first change: updated were
// stored before the batch, created are new (in their final state, which may
// already be resolved). Writing updated before created keeps at most one open
// alert per key at every step, as the stores' unique index on open keys requires.
func (b *AlertBatch) Changes() (updated, created []*Alert) {
	for _, a := range b.touched {
		if b.isNew[a] {
			created = append(created, a)
		} else {
			updated = append(updated, a)
		}
	}
	return updated, created
}

// snapshot copies a as a raise reports it: later conditions of the same key
// may still change a (Absorb appends to its tags).
func (a *Alert) snapshot() Alert {
	c := *a
	c.Tags = slices.Clone(a.Tags)
	return c
}

// AlertDedupKeys returns the distinct dedup keys of cs in sorted order, the
// order in which a store locks them, so that two raisers sharing keys cannot
// each hold one the other waits for.
func AlertDedupKeys(cs []AlertCondition) []string {
	keys := make([]string, len(cs))
	for i, c := range cs {
		keys[i] = c.DedupKey
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// Transition applies a lifecycle move to a, recording who and why, or says why
// it is not allowed: acknowledge only from active; resolve and dismiss from
// active or acknowledged. by is required (CodeInvalid); an illegal move is
// CodeConflict.
func (a *Alert) Transition(to AlertStatus, by, note string, now time.Time) error {
	if strings.TrimSpace(by) == "" {
		return Errorf(CodeInvalid, "alert %s: who changes the status (by) is required", a.ID)
	}
	var ok bool
	switch to {
	case AlertAcknowledged:
		ok = a.Status == AlertActive
	case AlertResolved, AlertDismissed:
		ok = a.Status.Open()
	default:
		return Errorf(CodeInvalid, "alert %s: cannot move to status %q", a.ID, to)
	}
	if !ok {
		return Errorf(CodeConflict, "alert %s is %s: cannot move it to %s", a.ID, a.Status, to)
	}
	at := now.UTC().Truncate(time.Microsecond)
	if to == AlertAcknowledged {
		a.AcknowledgedBy, a.AcknowledgedAt = by, &at
	} else {
		a.ResolvedBy, a.ResolvedAt = by, &at
	}
	a.Status, a.StatusNote, a.UpdatedAt = to, note, at
	return nil
}

// NewAlertID returns a unique id that sorts by creation time as text:
// "alt_", 12 hex digits of Unix milliseconds, 16 random hex digits.
func NewAlertID(now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return fmt.Sprintf("alt_%012x%s", now.UnixMilli(), hex.EncodeToString(b[:]))
}

// Normalize validates f and applies the paging defaults: Limit 0 becomes 100
// and anything above 1000 becomes 1000. Unknown values are CodeInvalid.
func (f AlertFilter) Normalize() (AlertFilter, error) {
	for _, s := range f.Status {
		if !s.Valid() {
			return f, Errorf(CodeInvalid, "alert filter: unknown status %q", s)
		}
	}
	for _, s := range f.Severity {
		if s.Rank() == 0 {
			return f, Errorf(CodeInvalid, "alert filter: unknown severity %q", s)
		}
	}
	for _, t := range f.Type {
		if !t.Valid() {
			return f, Errorf(CodeInvalid, "alert filter: unknown type %q", t)
		}
	}
	if f.Limit < 0 {
		return f, Errorf(CodeInvalid, "alert filter: negative limit %d", f.Limit)
	}
	if f.Limit == 0 {
		f.Limit = AlertListDefault
	}
	f.Limit = min(f.Limit, AlertListMax)
	if f.After != "" {
		if _, _, err := DecodeAlertCursor(f.After); err != nil {
			return f, err
		}
	}
	return f, nil
}

// AlertCursor is the opaque keyset cursor of a: its first-seen instant and id.
func AlertCursor(a Alert) string {
	raw := strconv.FormatInt(a.FirstSeen.UnixMicro(), 10) + "|" + a.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// The years of a cursor's time: those a query bound takes (ParseQueryTime),
// all of which both stores hold.
const (
	minAlertCursorYear = 0
	maxAlertCursorYear = 9999
)

// DecodeAlertCursor reads a cursor made by AlertCursor; anything else is
// CodeInvalid. Only the exact text AlertCursor writes is taken, so that one
// position has one cursor, and the id must be text a store can compare (UTF-8
// without NUL): PostgreSQL refuses anything else with an error of its own.
func DecodeAlertCursor(cursor string) (firstSeen time.Time, id string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil {
		micros, rest, ok := strings.Cut(string(raw), "|")
		n, perr := strconv.ParseInt(micros, 10, 64)
		at := time.UnixMicro(n).UTC()
		if ok && perr == nil && rest != "" && utf8.ValidString(rest) && strings.IndexByte(rest, 0) < 0 &&
			at.Year() >= minAlertCursorYear && at.Year() <= maxAlertCursorYear &&
			AlertCursor(Alert{ID: rest, FirstSeen: at}) == cursor {
			return at, rest, nil
		}
	}
	return time.Time{}, "", Errorf(CodeInvalid, "alert filter: malformed cursor")
}

// AlertPage cuts the alerts a store read for a page of limit alerts (it reads
// one more, to know whether another page follows) into the page and the
// cursor of the next one, "" on the last page.
func AlertPage(alerts []Alert, limit int) ([]Alert, string) {
	if len(alerts) <= limit {
		return alerts, ""
	}
	alerts = alerts[:limit]
	return alerts, AlertCursor(alerts[len(alerts)-1])
}

// DeliveryStatus is the outcome of one notification attempt.
type DeliveryStatus string

const (
	DeliveryDelivered DeliveryStatus = "delivered" // the destination answered 2xx
	DeliveryRetrying  DeliveryStatus = "retrying"  // failed, another attempt follows
	DeliveryFailed    DeliveryStatus = "failed"    // permanent failure or attempts exhausted
	DeliveryDropped   DeliveryStatus = "dropped"   // never sent: queue full or shutting down
)

// AlertDelivery records one attempt to notify a destination of an alert.
type AlertDelivery struct {
	AlertID     string         `json:"alertId"`
	DeliveryID  string         `json:"deliveryId"` // the same for every attempt of one delivery
	Destination string         `json:"destination"`
	Attempt     int            `json:"attempt"` // 1 for the first; 0 when dropped before sending
	Status      DeliveryStatus `json:"status"`
	HTTPStatus  int            `json:"httpStatus,omitempty"` // 0 when no answer
	Error       string         `json:"error,omitempty"`
	At          time.Time      `json:"at"`
}

// DeliveryRecorder keeps delivery outcomes; both stores implement it, and the
// notifier uses it when given one.
type DeliveryRecorder interface {
	RecordDelivery(ctx context.Context, d AlertDelivery) error
}
