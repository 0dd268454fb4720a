package audit

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Order is the order of a search: by event time, then by Seq.
type Order string

const (
	OrderDesc Order = "desc" // newest first, the default
	OrderAsc  Order = "asc"
)

// EventQuery selects stored events. Empty fields match everything. Stores turn
// it into parameterised SQL; nothing in it is ever pasted into a statement.
type EventQuery struct {
	// Organizations restricts the search to these organisations; nil means
	// every organisation and events without one (a caller whose scope is all).
	Organizations []string
	PrincipalID   string
	// Action is an exact action, or a prefix when it ends in ".*"
	// ("auth.*" matches auth.login and auth.login.failure, not authz.x).
	Action             string
	Status             Status
	TargetResourceType string
	TargetResourceID   string
	DataClassification Classification
	CorrelationID      string
	SessionID          string // details.sessionContext.sessionId
	IPAddress          string // details.sessionContext.ipAddress
	// ExcludeActionPrefixes hides actions that start with any of these
	// (callers without PermAccessLog do not see "audit.access." records).
	ExcludeActionPrefixes []string
	Since, Until          time.Time // event time in [Since, Until); zero: unbounded
	Order                 Order
	// After continues a search after the event at this position (exclusive),
	// in Order: keyset paging.
	After *Position
	Limit int // 1..MaxQueryLimit
}

// MaxQueryLimit is the largest page a store returns for one query.
const MaxQueryLimit = 10000

// Position is an event's place in search order: its event time and Seq.
type Position struct {
	Time time.Time
	Seq  int64
}

// PositionOf returns the position of a stored event.
func PositionOf(e *StoredEvent) Position { return Position{Time: e.Time, Seq: e.Seq} }

// ActionPrefix returns the prefix of an action filter written "family.*",
// including the final dot, and whether it is one.
func (q *EventQuery) ActionPrefix() (string, bool) {
	if p, ok := strings.CutSuffix(q.Action, "*"); ok && strings.HasSuffix(p, ".") {
		return p, true
	}
	return "", false
}

// Bounds returns Since and Until as the stores compare them: event times are
// kept to the microsecond, so a bound between two microseconds moves up to
// the next one ([since, until) keeps its meaning: an event at T is after
// T-0.5µs and not before T+0.5µs).
func (q *EventQuery) Bounds() (since, until time.Time) {
	return ceilMicrosecond(q.Since), ceilMicrosecond(q.Until)
}

func ceilMicrosecond(t time.Time) time.Time {
	if down := t.Truncate(time.Microsecond); down.Before(t) {
		return down.Add(time.Microsecond)
	}
	return t
}

// Check reports what makes the query unusable, as a CodeInvalid error.
func (q *EventQuery) Check() error {
	switch {
	case q.Limit < 1 || q.Limit > MaxQueryLimit:
		return Errorf(CodeInvalid, "limit %d is outside 1..%d", q.Limit, MaxQueryLimit)
	case q.Order != OrderAsc && q.Order != OrderDesc:
		return Errorf(CodeInvalid, "order %q is neither asc nor desc", q.Order)
	case !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until):
		return Errorf(CodeInvalid, "since %s is not before until %s", q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano))
	case q.Organizations != nil && len(q.Organizations) == 0:
		return Errorf(CodeInvalid, "an empty organisation list matches nothing")
	}
	for _, p := range q.ExcludeActionPrefixes {
		if !strings.HasSuffix(p, ".") {
			return Errorf(CodeInvalid, "excluded action prefix %q must end with \".\"", p)
		}
	}
	if strings.Contains(q.Action, "*") {
		if _, ok := q.ActionPrefix(); !ok || strings.Count(q.Action, "*") > 1 {
			return Errorf(CodeInvalid, "action %q: a wildcard is allowed only as a final \".*\"", q.Action)
		}
	}
	return nil
}

// Matches reports whether e satisfies every filter of q except the position
// and the limit: the conformance suite checks stores against it.
func (q *EventQuery) Matches(e *StoredEvent) bool {
	if q.Organizations != nil && !containsString(q.Organizations, e.OrganizationID) {
		return false
	}
	if prefix, ok := q.ActionPrefix(); ok {
		if !strings.HasPrefix(e.Action, prefix) {
			return false
		}
	} else if q.Action != "" && e.Action != q.Action {
		return false
	}
	for _, p := range q.ExcludeActionPrefixes {
		if strings.HasPrefix(e.Action, p) {
			return false
		}
	}
	var sessionID, ip string
	if e.SessionContext != nil {
		sessionID, ip = e.SessionContext.SessionID, e.SessionContext.IPAddress
	}
	return matchField(q.PrincipalID, e.PrincipalID) && matchField(string(q.Status), string(e.Status)) &&
		matchField(q.TargetResourceType, e.TargetResourceType) && matchField(q.TargetResourceID, e.TargetResourceID) &&
		matchField(string(q.DataClassification), string(e.DataClassification)) &&
		matchField(q.CorrelationID, e.CorrelationID) && matchField(q.SessionID, sessionID) &&
		matchField(q.IPAddress, ip) &&
		(q.Since.IsZero() || !e.Time.Before(q.Since)) && (q.Until.IsZero() || e.Time.Before(q.Until))
}

func matchField(filter, value string) bool { return filter == "" || filter == value }

// Before reports whether position a comes before b in order o.
func (o Order) Before(a, b Position) bool {
	if o == OrderAsc {
		return a.Time.Before(b.Time) || (a.Time.Equal(b.Time) && a.Seq < b.Seq)
	}
	return a.Time.After(b.Time) || (a.Time.Equal(b.Time) && a.Seq > b.Seq)
}

// EventReader reads stored events for people: searches and single events.
// Implementations: postgres, sqlite.
type EventReader interface {
	// SearchEvents returns up to q.Limit events matching q, in q.Order, after
	// q.After. The cost of a page does not grow with how deep it is.
	SearchEvents(ctx context.Context, q EventQuery) ([]StoredEvent, error)
	// GetEventBySeq returns the event with this sequence number (CodeNotFound
	// if none).
	GetEventBySeq(ctx context.Context, seq int64) (StoredEvent, error)
}

// ParseQueryTime reads a query bound written in RFC 3339. An offset can carry
// a time past the years RFC 3339 writes (and so past what a cursor, a
// manifest or a report records), so the time in UTC must fall within the
// years 0000 to 9999.
func ParseQueryTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 time such as 2026-01-02T15:04:05Z (is %q)", v)
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("must fall within the years 0000 to 9999 in UTC (is %q)", v)
	}
	return t, nil
}
