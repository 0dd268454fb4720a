package report

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// FuzzParseCriteria holds ParseCriteria to its contract on any request body:
// a refusal is CodeInvalid and names the criteria field; accepted criteria
// pass Validate (the period is [from, to) within the limit, every list within
// its size with storable entries), and their own JSON reads back the same.
func FuzzParseCriteria(f *testing.F) {
	for _, s := range []string{
		`{"organizationIds":["org-a"],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`,
		`{"organizationIds":["org-a","org-b"],"from":"2026-01-01T00:00:00-05:00","to":"2026-01-01T00:00:00.000001-05:00",` +
			`"principalIds":["u"],"actions":["fhir.*","auth.login"],"statuses":["success"],"dataClassifications":["PHI"],` +
			`"resourceTypes":["Patient"],"highVolumeAccessThreshold":5}`,
		`{"from":"2026-01-01T00:00:00Z","to":"2025-01-01T00:00:00Z"}`,
		`{"from":"0000-01-01T00:00:00Z","to":"9999-12-31T23:59:59Z"}`,
		`{"organizationIds":["*"],"from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z","actions":["a*b*"]}`,
		`{"organizationIds":"org-a","from":1,"to":null,"bogus":true}`,
		`{} {}`,
	} {
		f.Add([]byte(s))
	}
	const maxPeriod = 400 * 24 * time.Hour
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCriteria(data, maxPeriod)
		if err != nil {
			if audit.ErrorCode(err) != audit.CodeInvalid || !strings.Contains(err.Error(), "criteria") {
				t.Fatalf("refusal %q is not CodeInvalid naming the criteria", err)
			}
			return
		}
		if err := c.Validate(maxPeriod); err != nil {
			t.Fatalf("accepted criteria that do not validate: %v", err)
		}
		if !c.From.Before(c.To) || c.To.Sub(c.From) > maxPeriod {
			t.Fatalf("accepted the period [%v, %v)", c.From, c.To)
		}
		if c.Threshold() < 1 {
			t.Fatalf("threshold %d", c.Threshold())
		}
		encoded, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted criteria cannot be encoded: %v", err)
		}
		back, err := ParseCriteria(encoded, maxPeriod)
		if err != nil {
			t.Fatalf("accepted criteria, encoded as %s, are refused: %v", encoded, err)
		}
		if !back.From.Equal(c.From) || !back.To.Equal(c.To) || back.HighVolumeAccessThreshold != c.HighVolumeAccessThreshold ||
			!slices.Equal(back.OrganizationIDs, c.OrganizationIDs) || !slices.Equal(back.Actions, c.Actions) ||
			!slices.Equal(back.PrincipalIDs, c.PrincipalIDs) || !slices.Equal(back.Statuses, c.Statuses) ||
			!slices.Equal(back.DataClassifications, c.DataClassifications) || !slices.Equal(back.ResourceTypes, c.ResourceTypes) {
			t.Fatalf("criteria %+v read back as %+v", c, back)
		}
	})
}

// FuzzParseCron holds the cron parser of report schedules (and of
// compliance.reports[].cron) to never panicking, and an accepted expression
// to a schedule whose next run is after the time asked about.
func FuzzParseCron(f *testing.F) {
	for _, s := range []string{"0 6 * * 1", "*/15 0-6 1,15 * *", "@monthly", "@every 1h30m", "0 0 31 2 *", "60 * * * *",
		"CRON_TZ=Europe/Berlin 0 6 * * *", "* * * * * *", ""} {
		f.Add(s)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := parseCron(expr)
		if (err == nil) != (ParseCron(expr) == nil) {
			t.Fatalf("%q: parseCron and ParseCron disagree", expr)
		}
		if err != nil {
			return
		}
		if next := s.Next(at); !next.IsZero() && !next.After(at) {
			t.Fatalf("%q: next run after %v is %v", expr, at, next)
		}
	})
}
