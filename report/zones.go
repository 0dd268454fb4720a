package report

import (
	"fmt"
	"maps"
	"slices"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// TimeZones are the organisations' time zones, as the detectors use them
// (monitoring.patternDetection.timeZone and organizationTimeZones): an
// organisation's local hour and day are counted in its own zone.
type TimeZones struct {
	Default string            // IANA name; "" is UTC
	ByOrg   map[string]string // organisation id → IANA name
}

// Locator returns the zone of each organisation.
func (z TimeZones) Locator() (Locator, error) {
	def, err := loadZone(z.Default)
	if err != nil {
		return nil, err
	}
	byOrg := make(map[string]*time.Location, len(z.ByOrg))
	for org, name := range z.ByOrg {
		if byOrg[org], err = loadZone(name); err != nil {
			return nil, err
		}
	}
	return func(org string) *time.Location {
		if l, ok := byOrg[org]; ok {
			return l
		}
		return def
	}, nil
}

// Zone is the IANA name of an organisation's zone.
func (z TimeZones) Zone(org string) string {
	if name, ok := z.ByOrg[org]; ok && name != "" {
		return name
	}
	if z.Default == "" {
		return "UTC"
	}
	return z.Default
}

func loadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, audit.Errorf(audit.CodeInvalid, "time zone %q: %v", name, err)
	}
	return l, nil
}

// Segment is a stretch of time with one UTC offset: it applies to the
// instants before Until (the last segment, with a zero Until, to every
// later one).
type Segment struct {
	Until  time.Time
	Offset int // seconds east of UTC
}

// ZoneGroup is the organisations that share a zone, and its segments.
type ZoneGroup struct {
	Organizations []string
	Segments      []Segment
}

// Zones tell a store the UTC offset of every event of a period: the offset
// of an event of an organisation in Groups is that of its group's segment,
// any other event's that of Default's. The offsets come from Go's time zone
// database, so both stores count local hours alike whatever their own.
type Zones struct {
	Groups  []ZoneGroup
	Default []Segment
}

// PlanZones computes the segments of the period [from, to) for the
// organisations orgs (nil: every organisation with a zone of its own).
func PlanZones(z TimeZones, orgs []string, from, to time.Time) (Zones, error) {
	def, err := loadZone(z.Default)
	if err != nil {
		return Zones{}, err
	}
	defSegs := segments(def, from, to)
	byZone := map[string][]string{}
	consider := orgs
	if consider == nil {
		consider = slices.Sorted(maps.Keys(z.ByOrg))
	}
	for _, org := range consider {
		if name, ok := z.ByOrg[org]; ok && name != "" && name != z.Default {
			byZone[name] = append(byZone[name], org)
		}
	}
	out := Zones{Default: defSegs}
	for _, name := range slices.Sorted(maps.Keys(byZone)) {
		l, err := loadZone(name)
		if err != nil {
			return Zones{}, err
		}
		out.Groups = append(out.Groups, ZoneGroup{Organizations: byZone[name], Segments: segments(l, from, to)})
	}
	return out, nil
}

// segments splits [from, to) at the zone's changes of offset (daylight
// saving time and the like).
func segments(l *time.Location, from, to time.Time) []Segment {
	var out []Segment
	t := from
	for range 1000 { // a zone changes offset a few times a year; this bounds a corrupt database
		local := t.In(l)
		_, offset := local.Zone()
		_, end := local.ZoneBounds()
		if end.IsZero() || !end.Before(to) {
			return append(out, Segment{Offset: offset})
		}
		out = append(out, Segment{Until: end, Offset: offset})
		t = end
	}
	panic(fmt.Sprintf("time zone %s changes offset more than 1000 times in the period", l))
}
