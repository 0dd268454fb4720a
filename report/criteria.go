package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	audit "github.com/smartlogs/audit-worker"
)

// Criteria choose the events of a report. From and To are required and
// half-open: [from, to). Every list is optional; an empty one matches
// everything. Actions are exact, or prefixes written "family.*".
type Criteria struct {
	OrganizationIDs     []string  `json:"organizationIds"`
	From                time.Time `json:"from"`
	To                  time.Time `json:"to"`
	PrincipalIDs        []string  `json:"principalIds,omitempty"`
	Actions             []string  `json:"actions,omitempty"`
	Statuses            []string  `json:"statuses,omitempty"`
	DataClassifications []string  `json:"dataClassifications,omitempty"`
	ResourceTypes       []string  `json:"resourceTypes,omitempty"`
	// HighVolumeAccessThreshold: a principal with more PHI accesses than
	// this in the period is a HIGH_VOLUME_ACCESS finding (default 100).
	HighVolumeAccessThreshold int `json:"highVolumeAccessThreshold,omitempty"`
}

// DefaultHighVolumeAccessThreshold is the HIPAA report's default limit of
// PHI accesses per principal and period.
const DefaultHighVolumeAccessThreshold = 100

// DefaultMaxPeriod is the longest period a report may cover by default.
const DefaultMaxPeriod = 400 * 24 * time.Hour

// maxListEntries bounds each list of the criteria: a report is for people,
// and every entry is a bound parameter of the statement.
const maxListEntries = 1000

// rawCriteria is the criteria as sent, so that each field's error names it.
type rawCriteria struct {
	OrganizationIDs           []string `json:"organizationIds"`
	From                      *string  `json:"from"`
	To                        *string  `json:"to"`
	PrincipalIDs              []string `json:"principalIds"`
	Actions                   []string `json:"actions"`
	Statuses                  []string `json:"statuses"`
	DataClassifications       []string `json:"dataClassifications"`
	ResourceTypes             []string `json:"resourceTypes"`
	HighVolumeAccessThreshold *int     `json:"highVolumeAccessThreshold"`
}

// ParseCriteria decodes criteria strictly (an unknown field is an error, so
// that a misspelt filter never silently widens a report) and checks them.
// Errors are CodeInvalid and name the field: "criteria.from: …".
func ParseCriteria(data []byte, maxPeriod time.Duration) (Criteria, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var raw rawCriteria
	if err := dec.Decode(&raw); err != nil {
		return Criteria{}, audit.Errorf(audit.CodeInvalid, "criteria: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Criteria{}, audit.Errorf(audit.CodeInvalid, "criteria: one JSON object expected")
	}
	c := Criteria{OrganizationIDs: raw.OrganizationIDs, PrincipalIDs: raw.PrincipalIDs, Actions: raw.Actions,
		Statuses: raw.Statuses, DataClassifications: raw.DataClassifications, ResourceTypes: raw.ResourceTypes}
	var err error
	if c.From, err = parseInstant("criteria.from", raw.From); err != nil {
		return Criteria{}, err
	}
	if c.To, err = parseInstant("criteria.to", raw.To); err != nil {
		return Criteria{}, err
	}
	if raw.HighVolumeAccessThreshold != nil {
		c.HighVolumeAccessThreshold = *raw.HighVolumeAccessThreshold
		if c.HighVolumeAccessThreshold < 1 {
			return Criteria{}, audit.Errorf(audit.CodeInvalid, "criteria.highVolumeAccessThreshold: at least 1 (is %d)", c.HighVolumeAccessThreshold)
		}
	}
	return c, c.Validate(maxPeriod)
}

func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("%s: must be %s", typeErr.Field, typeErr.Type)
	}
	return err.Error()
}

func parseInstant(field string, v *string) (time.Time, error) {
	if v == nil || *v == "" {
		return time.Time{}, audit.Errorf(audit.CodeInvalid, "%s: required, an RFC 3339 time with an offset such as 2024-03-01T00:00:00-05:00", field)
	}
	t, err := audit.ParseQueryTime(*v)
	if err != nil {
		return time.Time{}, audit.Errorf(audit.CodeInvalid, "%s: %q: %s", field, clip(*v), err)
	}
	return t, nil
}

// Validate checks criteria built in code (the scheduler's, the CLI's) by
// the rules ParseCriteria applies.
func (c *Criteria) Validate(maxPeriod time.Duration) error {
	if maxPeriod <= 0 {
		maxPeriod = DefaultMaxPeriod
	}
	switch {
	case c.From.IsZero():
		return audit.Errorf(audit.CodeInvalid, "criteria.from: required")
	case c.To.IsZero():
		return audit.Errorf(audit.CodeInvalid, "criteria.to: required")
	case !c.From.Before(c.To):
		return audit.Errorf(audit.CodeInvalid, "criteria.from: %s is not before criteria.to %s (the period is [from, to))",
			c.From.Format(time.RFC3339Nano), c.To.Format(time.RFC3339Nano))
	case c.To.Sub(c.From) > maxPeriod:
		return audit.Errorf(audit.CodeInvalid, "criteria: the period of %s is longer than the limit of %d days",
			days(c.To.Sub(c.From)), int(maxPeriod/(24*time.Hour)))
	}
	lists := []struct {
		name   string
		values []string
		check  func(string) string
	}{
		{"organizationIds", c.OrganizationIDs, func(v string) string {
			if v == audit.AllOrganizations {
				return `"*" is not an organisation; leave organizationIds out for every organisation in scope`
			}
			return ""
		}},
		{"principalIds", c.PrincipalIDs, nil},
		{"actions", c.Actions, checkActionFilter},
		{"statuses", c.Statuses, oneOf("attempt", "success", "failure")},
		{"dataClassifications", c.DataClassifications, oneOf("PUBLIC", "INTERNAL", "CONFIDENTIAL", "PHI")},
		{"resourceTypes", c.ResourceTypes, nil},
	}
	for _, l := range lists {
		if len(l.values) > maxListEntries {
			return audit.Errorf(audit.CodeInvalid, "criteria.%s: at most %d entries (has %d)", l.name, maxListEntries, len(l.values))
		}
		for i, v := range l.values {
			problem := checkText(v)
			if problem == "" && l.check != nil {
				problem = l.check(v)
			}
			if problem != "" {
				return audit.Errorf(audit.CodeInvalid, "criteria.%s[%d]: %s", l.name, i, problem)
			}
		}
	}
	return nil
}

func days(d time.Duration) string {
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}

func checkText(v string) string {
	switch {
	case v == "":
		return "must not be empty"
	case len(v) > 1024:
		return "longer than 1024 bytes"
	case !utf8.ValidString(v) || strings.ContainsRune(v, 0):
		return "must be valid UTF-8 without NUL"
	}
	return ""
}

func checkActionFilter(a string) string {
	if !strings.Contains(a, "*") {
		return ""
	}
	if _, ok := ActionFilterPrefix(a); !ok || strings.Count(a, "*") > 1 {
		return fmt.Sprintf("%q: an exact action, or a prefix written like fhir.*", clip(a))
	}
	return ""
}

func oneOf(allowed ...string) func(string) string {
	return func(v string) string {
		if slices.Contains(allowed, v) {
			return ""
		}
		return fmt.Sprintf("%q: one of %s", clip(v), strings.Join(allowed, ", "))
	}
}

func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}

// Threshold is the HIGH_VOLUME_ACCESS limit in force.
func (c *Criteria) Threshold() int {
	if c.HighVolumeAccessThreshold > 0 {
		return c.HighVolumeAccessThreshold
	}
	return DefaultHighVolumeAccessThreshold
}

// filter is the store filter of the criteria, over orgs (the organisations
// the caller may read, resolved from OrganizationIDs).
func (c *Criteria) filter(orgs []string, zones Zones) Filter {
	return Filter{Organizations: orgs, From: c.From, To: c.To, PrincipalIDs: nilIfEmpty(c.PrincipalIDs),
		Actions: nilIfEmpty(c.Actions), Statuses: nilIfEmpty(c.Statuses),
		DataClassifications: nilIfEmpty(c.DataClassifications), ResourceTypes: nilIfEmpty(c.ResourceTypes), Zones: zones}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
