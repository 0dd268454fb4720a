package monitor

import (
	"fmt"
	"time"
)

// Rule is one windowed detector's threshold: Threshold events within Window
// (of event time) raise an alert.
type Rule struct {
	Threshold int
	Window    time.Duration
}

// Config is the detectors' configuration; SetConfig replaces it while running.
type Config struct {
	FailedAuth         Rule // per principal and per source IP
	UnauthorizedAccess Rule // per principal
	DataVelocity       Rule // per principal
	BulkOperation      Rule // per organization
	// OffHoursStart and OffHoursEnd are hours of the day (0–23) in the
	// organization's time zone: [start, end), wrapping midnight when start > end.
	// start == end disables the off-hours detector.
	OffHoursStart, OffHoursEnd int
	// TimeZones maps an organization id to an IANA zone name; organizations
	// not listed use DefaultTimeZone.
	TimeZones map[string]string
	// DefaultTimeZone is the IANA zone of organizations not in TimeZones; "" is UTC.
	DefaultTimeZone string
	// LateTolerance is how far behind its window an event may arrive and still
	// count: an event at t counts for a detector when t ≥ now − window −
	// LateTolerance (for off-hours: when its night ended at most LateTolerance
	// ago). Older events are counted as late and ignored.
	LateTolerance time.Duration
	// MaxTrackedKeys caps the windows (and off-hours markers) kept at once;
	// when full, the one closest to expiry is dropped to make room.
	MaxTrackedKeys int
}

// DefaultConfig returns the original worker's thresholds and windows, a
// five-minute late tolerance and room for 100 000 tracked keys.
func DefaultConfig() Config {
	return Config{
		FailedAuth:         Rule{Threshold: 5, Window: 5 * time.Minute},
		UnauthorizedAccess: Rule{Threshold: 3, Window: 10 * time.Minute},
		DataVelocity:       Rule{Threshold: 50, Window: time.Minute},
		BulkOperation:      Rule{Threshold: 100, Window: 5 * time.Minute},
		OffHoursStart:      22,
		OffHoursEnd:        6,
		LateTolerance:      5 * time.Minute,
		MaxTrackedKeys:     100_000,
	}
}

// settings is a validated Config with its time zones loaded.
type settings struct {
	Config
	zones       map[string]*time.Location
	defaultZone *time.Location
}

func compile(c Config) (*settings, error) {
	for _, r := range []struct {
		name string
		rule Rule
	}{
		{"failedAuth", c.FailedAuth}, {"unauthorizedAccess", c.UnauthorizedAccess},
		{"dataVelocity", c.DataVelocity}, {"bulkOperation", c.BulkOperation},
	} {
		if r.rule.Threshold < 1 {
			return nil, fmt.Errorf("monitor: %s threshold %d: must be at least 1", r.name, r.rule.Threshold)
		}
		if r.rule.Window < time.Millisecond {
			return nil, fmt.Errorf("monitor: %s window %s: must be at least 1ms", r.name, r.rule.Window)
		}
	}
	if c.OffHoursStart < 0 || c.OffHoursStart > 23 || c.OffHoursEnd < 0 || c.OffHoursEnd > 23 {
		return nil, fmt.Errorf("monitor: off hours %d–%d: hours must be 0–23", c.OffHoursStart, c.OffHoursEnd)
	}
	if c.LateTolerance < 0 {
		return nil, fmt.Errorf("monitor: late tolerance %s: must not be negative", c.LateTolerance)
	}
	if c.MaxTrackedKeys < 1 {
		return nil, fmt.Errorf("monitor: max tracked keys %d: must be at least 1", c.MaxTrackedKeys)
	}
	s := &settings{Config: c, zones: make(map[string]*time.Location, len(c.TimeZones)), defaultZone: time.UTC}
	if c.DefaultTimeZone != "" {
		loc, err := time.LoadLocation(c.DefaultTimeZone)
		if err != nil {
			return nil, fmt.Errorf("monitor: default time zone: %w", err)
		}
		s.defaultZone = loc
	}
	for org, name := range c.TimeZones {
		loc, err := time.LoadLocation(name)
		if err != nil {
			return nil, fmt.Errorf("monitor: time zone of organization %q: %w", org, err)
		}
		s.zones[org] = loc
	}
	return s, nil
}

// zone is the organization's time zone, DefaultTimeZone when it has none.
func (s *settings) zone(org string) *time.Location {
	if loc, ok := s.zones[org]; ok {
		return loc
	}
	return s.defaultZone
}
