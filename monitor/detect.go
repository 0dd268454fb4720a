package monitor

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Pattern names a detector; it starts every DedupKey the detector raises.
type Pattern string

const (
	PatternFailedAuth         Pattern = "FAILED_AUTH"
	PatternUnauthorizedAccess Pattern = "UNAUTHORIZED_ACCESS"
	PatternDataVelocity       Pattern = "DATA_VELOCITY"
	PatternBulkOperation      Pattern = "BULK_OPERATION"
	PatternOffHours           Pattern = "OFF_HOURS"
)

// Severity is the severity of the pattern's alerts.
func (p Pattern) Severity() audit.Severity {
	switch p {
	case PatternFailedAuth:
		return audit.SeverityHigh
	case PatternUnauthorizedAccess:
		return audit.SeverityCritical
	case PatternDataVelocity, PatternBulkOperation:
		return audit.SeverityMedium
	}
	return audit.SeverityLow
}

// bulkRecordCount: an event whose details carry a numeric recordCount above
// this is a bulk operation (the original's rule).
const bulkRecordCount = 10

// op is one event's contribution to one detector key: a window op adds the
// event to a sliding window and counts it; a once op (window 0) sets a marker.
type op struct {
	// What the backend needs.
	key       string // state key, without the backend's prefix
	member    string // the event's idempotency key
	at        int64  // event time, Unix ms
	window    int64  // ms; 0 for a once op
	threshold int
	expireAt  int64 // Unix ms (monitor clock) after which the key is useless
	// keep is how long (ms) the shared log must keep the op from when it is
	// logged: as long as it can still be counted (see RedisState).
	keep int64

	// What raising needs.
	pattern  Pattern
	dim      string // "principal", "ip", "organization"
	value    string
	ev       *audit.Event
	local    time.Time // OFF_HOURS: the event time in the organization's zone
	dedupKey string
}

// rule returns the windowed detector's rule.
func (s *settings) rule(p Pattern) Rule {
	switch p {
	case PatternFailedAuth:
		return s.FailedAuth
	case PatternUnauthorizedAccess:
		return s.UnauthorizedAccess
	case PatternDataVelocity:
		return s.DataVelocity
	}
	return s.BulkOperation
}

// matcher turns events into ops, counting the late ones it drops.
type matcher struct {
	s    *settings
	now  time.Time
	ops  []op
	late map[Pattern]int
}

func (m *matcher) match(key string, ev *audit.Event) {
	success := ev.Status == audit.StatusSuccess
	failure := ev.Status == audit.StatusFailure
	if failure && strings.HasPrefix(ev.Action, "auth.") {
		if ev.PrincipalID != "" {
			m.window(PatternFailedAuth, "principal", ev.PrincipalID, key, ev)
		}
		if ev.SessionContext != nil && ev.SessionContext.IPAddress != "" {
			m.window(PatternFailedAuth, "ip", ev.SessionContext.IPAddress, key, ev)
		}
	}
	if failure && ev.PrincipalID != "" && deniesAccess(ev.OutcomeDescription) {
		m.window(PatternUnauthorizedAccess, "principal", ev.PrincipalID, key, ev)
	}
	if success && ev.PrincipalID != "" && readsData(ev.Action) {
		m.window(PatternDataVelocity, "principal", ev.PrincipalID, key, ev)
	}
	if ev.OrganizationID != "" && isBulk(ev) {
		m.window(PatternBulkOperation, "organization", ev.OrganizationID, key, ev)
	}
	if success && ev.PrincipalID != "" && (strings.HasPrefix(ev.Action, "data.") || strings.HasPrefix(ev.Action, "fhir.")) {
		m.offHours(key, ev)
	}
}

func (m *matcher) window(p Pattern, dim, value, key string, ev *audit.Event) {
	r := m.s.rule(p)
	at := ev.Time.UnixMilli()
	if ev.Time.Before(m.now.Add(-r.Window - m.s.LateTolerance)) {
		m.countLate(p)
		return
	}
	w := r.Window.Milliseconds()
	dk := string(p) + ":" + dim + ":" + value
	m.ops = append(m.ops, op{
		key: dk, member: key, at: at, window: w, threshold: r.Threshold,
		// A member can be in a counted window while it is at most 2·window +
		// tolerance older than the clock (see State).
		expireAt: at + 2*w + m.s.LateTolerance.Milliseconds(),
		keep:     2*w + m.s.LateTolerance.Milliseconds(),
		pattern:  p, dim: dim, value: value, ev: ev, dedupKey: dk,
	})
}

// offHours adds a once op for an event in the organization's off hours: one
// marker per principal and night, expiring once the night is over and the
// late tolerance has passed. The night is the organization's, so the marker
// is keyed by its time zone: a principal working at night for several
// organizations of one zone is one occurrence, and one of another zone, whose
// night differs, another.
func (m *matcher) offHours(key string, ev *audit.Event) {
	start, end := m.s.OffHoursStart, m.s.OffHoursEnd
	if start == end {
		return
	}
	local := ev.Time.In(m.s.zone(ev.OrganizationID))
	y, mo, d := local.Date()
	h := local.Hour()
	var night time.Time // midnight of the night's first day
	switch {
	case start < end && h >= start && h < end:
		night = time.Date(y, mo, d, 0, 0, 0, 0, local.Location())
	case start > end && h >= start:
		night = time.Date(y, mo, d, 0, 0, 0, 0, local.Location())
	case start > end && h < end:
		night = time.Date(y, mo, d-1, 0, 0, 0, 0, local.Location())
	default:
		return
	}
	endDay := night.Day()
	if start > end {
		endDay++
	}
	nightEnd := time.Date(night.Year(), night.Month(), endDay, end, 0, 0, 0, local.Location())
	expire := nightEnd.Add(m.s.LateTolerance)
	if m.now.After(expire) {
		m.countLate(PatternOffHours)
		return
	}
	zone := local.Location().String()
	m.ops = append(m.ops, op{
		// Length-prefixed so that names containing ':' cannot collide.
		key:    "OFF_HOURS:night:" + night.Format(time.DateOnly) + ":" + strconv.Itoa(len(zone)) + ":" + zone + ":" + ev.PrincipalID,
		member: key, at: ev.Time.UnixMilli(), threshold: 1, expireAt: expire.UnixMilli(),
		// From the night's start until its marker expires.
		keep:    expire.Sub(time.Date(night.Year(), night.Month(), night.Day(), start, 0, 0, 0, local.Location())).Milliseconds(),
		pattern: PatternOffHours, dim: "principal", value: ev.PrincipalID, ev: ev, local: local,
		dedupKey: string(PatternOffHours) + ":principal:" + ev.PrincipalID,
	})
}

func (m *matcher) countLate(p Pattern) {
	if m.late == nil {
		m.late = make(map[Pattern]int)
	}
	m.late[p]++
}

// deniesAccess reports whether an outcome says access was refused.
func deniesAccess(outcome string) bool {
	o := strings.ToLower(outcome) // no copy when already lower-case ASCII
	return strings.Contains(o, "unauthorized") || strings.Contains(o, "forbidden") || strings.Contains(o, "access denied")
}

func readsData(action string) bool {
	return action == "data.read" || strings.HasPrefix(action, "data.read.") || strings.HasPrefix(action, "fhir.")
}

func isBulk(ev *audit.Event) bool {
	a := ev.Action
	if a == "data.export" || a == "data.import" || strings.HasPrefix(a, "data.export.") || strings.HasPrefix(a, "data.import.") {
		return true
	}
	if strings.Contains(strings.ToLower(a), "bulk") {
		return true
	}
	return recordCount(ev.Details) > bulkRecordCount
}

// recordCountHint is searched for before decoding: details are full of '"',
// while an upper-case C is rare, so this scans much faster than the whole
// quoted name would.
var recordCountHint = []byte(`Count"`)

var recordCountName = []byte("recordCount")

// recordCount reads details.recordCount when it is a number (0 otherwise),
// as decoding details into a struct with that field would: the key matched
// case-insensitively, the last match winning. The cheap byte search skips
// the many events without it; the others are walked at the top level only,
// which costs a fraction of a decode (a read carries a recordCount, and a
// read is one event in seven).
func recordCount(details json.RawMessage) float64 {
	if !bytes.Contains(details, recordCountHint) {
		return 0
	}
	raw, ok := topLevelMember(details, recordCountName)
	if !ok { // escapes in a key: decode
		var d struct {
			RecordCount json.RawMessage `json:"recordCount"`
		}
		if json.Unmarshal(details, &d) != nil {
			return 0
		}
		raw = d.RecordCount
	}
	n, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0 // absent, a string, or not a number
	}
	return n
}

// topLevelMember returns the raw value of the last member of the object data
// whose key equals name case-insensitively (nil when there is none, or data
// is not an object). data is valid JSON; ok is false when a key holds an
// escape, which only a decode reads as it should.
func topLevelMember(data, name []byte) (raw []byte, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, true
	}
	i = skipSpace(data, i+1)
	for i < len(data) && data[i] == '"' {
		end := i + 1 + bytes.IndexAny(data[i+1:], `"\`)
		if end <= i || data[end] == '\\' {
			return nil, false
		}
		key := data[i+1 : end]
		i = skipSpace(data, end+1)
		if i >= len(data) || data[i] != ':' {
			return nil, true
		}
		i = skipSpace(data, i+1)
		v := i
		i = skipValue(data, i)
		if bytes.EqualFold(key, name) {
			raw = data[v:i]
		}
		i = skipSpace(data, i)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return raw, true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value at data[i].
func skipValue(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch c := data[i]; c {
		case '"':
			i = skipString(data, i)
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i
			}
			i++
		default:
			if depth == 0 && (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
				return i
			}
			i++
		}
		if depth == 0 && i > 0 && (data[i-1] == '"' || data[i-1] == '}' || data[i-1] == ']') {
			return i
		}
	}
	return i
}

// skipString returns the index just past the string literal at data[i].
func skipString(data []byte, i int) int {
	i++
	for i < len(data) {
		j := bytes.IndexAny(data[i:], `"\`)
		if j < 0 {
			return len(data)
		}
		i += j
		if data[i] == '"' {
			return i + 1
		}
		i += 2 // an escape and the byte it escapes
	}
	return i
}
