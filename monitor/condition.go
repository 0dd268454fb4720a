package monitor

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// offHoursDedupWindow: one open off-hours alert per principal collects the
// following nights as occurrences while it stays open.
const offHoursDedupWindow = 24 * time.Hour

// evidence is a pattern alert's Metadata.
type evidence struct {
	Pattern      Pattern   `json:"pattern"`
	Key          string    `json:"key"` // e.g. "principal:u-42"
	Count        int       `json:"count"`
	WindowMs     int64     `json:"windowMs,omitempty"`
	Threshold    int       `json:"threshold"`
	EventKeys    []string  `json:"eventKeys"` // idempotency keys, newest ones, oldest first
	FirstEventAt time.Time `json:"firstEventAt"`
	LastEventAt  time.Time `json:"lastEventAt"`
	// Detections is how many events of the batch found the window at or over
	// the threshold; they are raised as one condition.
	Detections int       `json:"detections"`
	OffHours   *offHours `json:"offHours,omitempty"`
}

type offHours struct {
	Start     int    `json:"start"`
	End       int    `json:"end"`
	TimeZone  string `json:"timeZone"`
	LocalTime string `json:"localTime"`
}

// condition turns a detection into the alert condition it raises.
func condition(d *detection) audit.AlertCondition {
	o, r, s := &d.op, d.res, d.s
	e := evidence{
		Pattern: o.pattern, Key: o.dim + ":" + o.value, Count: r.count, Threshold: o.threshold,
		EventKeys: r.keys, Detections: d.n,
	}
	var desc string
	window := time.Duration(o.window) * time.Millisecond
	// A condition can outlive its batch (it is written after the batch when
	// the store is slow): the event's strings are cloned, as they share one
	// buffer with the whole event.
	c := audit.AlertCondition{
		OrganizationID: strings.Clone(d.org),
		Type:           audit.AlertSecurity,
		Severity:       o.pattern.Severity(),
		DedupKey:       o.dedupKey,
		DedupWindow:    window,
		Title:          "Suspicious pattern: " + string(o.pattern),
		Tags:           []string{"suspicious-pattern", strings.ToLower(strings.ReplaceAll(string(o.pattern), "_", "-"))},
		CorrelationID:  strings.Clone(d.correlation),
		ObservedAt:     d.observed,
	}
	switch o.pattern {
	case PatternOffHours:
		at := time.UnixMilli(o.at).UTC()
		e.Count, e.EventKeys, e.FirstEventAt, e.LastEventAt = 1, []string{o.member}, at, at
		e.OffHours = &offHours{Start: s.OffHoursStart, End: s.OffHoursEnd,
			TimeZone: o.local.Location().String(), LocalTime: o.local.Format(time.RFC3339)}
		c.DedupWindow = offHoursDedupWindow
		desc = fmt.Sprintf("principal %s accessed data (%s) at %s local time in organization %s, within off hours %02d:00–%02d:00 %s",
			o.value, d.action, o.local.Format("15:04"), d.org, s.OffHoursStart, s.OffHoursEnd, o.local.Location())
	default:
		e.WindowMs = o.window
		e.FirstEventAt, e.LastEventAt = time.UnixMilli(r.first).UTC(), time.UnixMilli(r.last).UTC()
		desc = fmt.Sprintf("%d %s for %s %s within %s (threshold %d)",
			r.count, what(o.pattern), o.dim, o.value, window, o.threshold)
	}
	c.Description = desc
	meta, err := json.Marshal(e)
	if err != nil { // cannot happen: plain strings, numbers and times
		meta = []byte(`{}`)
	}
	c.Metadata = meta
	return c
}

func what(p Pattern) string {
	switch p {
	case PatternFailedAuth:
		return "failed authentication attempts"
	case PatternUnauthorizedAccess:
		return "unauthorized access attempts"
	case PatternDataVelocity:
		return "data reads"
	}
	return "bulk operations"
}
