package report

import (
	"context"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Filter selects the events a report covers: the criteria as a store applies
// them, and the time zone of each organisation for the local-time
// conditions and dimensions.
type Filter struct {
	// Organizations: nil means every organisation and events without one.
	Organizations       []string
	From, To            time.Time // event time in [From, To)
	PrincipalIDs        []string
	Actions             []string // exact, or a prefix written "family.*"
	Statuses            []string
	DataClassifications []string
	ResourceTypes       []string
	Zones               Zones
}

// ActionFilterPrefix returns the prefix of an action filter written "family.*"
// (with its final dot), and whether it is one.
func ActionFilterPrefix(a string) (string, bool) {
	if p, ok := strings.CutSuffix(a, "*"); ok && strings.HasSuffix(p, ".") {
		return p, true
	}
	return "", false
}

// Matches reports whether e passes the filter, as the stores decide.
func (f *Filter) Matches(e *audit.StoredEvent) bool {
	in := func(list []string, v string) bool {
		if list == nil {
			return true
		}
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	if !in(f.Organizations, e.OrganizationID) || e.Time.Before(f.From) || !e.Time.Before(f.To) {
		return false
	}
	if f.Actions != nil {
		ok := false
		for _, a := range f.Actions {
			if p, isPrefix := ActionFilterPrefix(a); isPrefix {
				ok = ok || strings.HasPrefix(e.Action, p)
			} else {
				ok = ok || e.Action == a
			}
		}
		if !ok {
			return false
		}
	}
	return in(f.PrincipalIDs, e.PrincipalID) && in(f.Statuses, string(e.Status)) &&
		in(f.DataClassifications, string(e.DataClassification)) && in(f.ResourceTypes, e.TargetResourceType)
}

// MeasureKind is what a measure computes over a group.
type MeasureKind int

const (
	Count    MeasureKind = iota // events that meet If
	Distinct                    // distinct non-empty values of Of among the events that meet If
	MinTime                     // earliest event time (Unix microseconds) among the events that meet If
	MaxTime                     // latest, likewise
)

// Measure is one number computed for each group.
type Measure struct {
	Kind MeasureKind
	If   Cond
	Of   Dimension
}

// Aggregation is one grouped count over the events of a Filter.
type Aggregation struct {
	GroupBy  []Dimension // none: one group of every event
	Where    Cond        // only events that meet it
	Measures []Measure
	// Top, when above 0, keeps the Top groups with the highest first
	// measure, ties broken by the keys in byte order.
	Top int
}

// Group is one group of an Aggregation: its keys ("" for none) and the
// values of its measures. A MinTime or MaxTime of a group without events is 0.
type Group struct {
	Keys   []string
	Values []int64
}

// Store computes reports in the database. Both stores implement it.
type Store interface {
	// Aggregate runs the aggregations over the events matching f, in one
	// statement that reads the period's rows once, and returns the groups
	// of each, in the order of aggs.
	Aggregate(ctx context.Context, f Filter, aggs []Aggregation) ([][]Group, error)
	// ReportEvents returns up to limit events matching f and where, in
	// (event time, id) order, after the position after when it is set.
	ReportEvents(ctx context.Context, f Filter, where Cond, after *audit.Position, limit int) ([]audit.StoredEvent, error)
	// IntegrityViolationTimes returns the timestamps, as the producers wrote
	// them, of the dead letters refused as integrity violations whose payload
	// names one of orgs as its organizationId (nil: every dead letter).
	IntegrityViolationTimes(ctx context.Context, orgs []string) ([]string, error)
}
