package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/report"
)

// problems checks the compliance section.
func (c *Compliance) problems() []Problem {
	var probs []Problem
	check := func(ok bool, field, rule string) {
		if !ok {
			probs = append(probs, Problem{Field: field, Rule: rule})
		}
	}
	check(c.MaxReportPeriodDays >= 1 && c.MaxReportPeriodDays <= 3660, "compliance.maxReportPeriodDays",
		fmt.Sprintf("must be between 1 and 3660 (is %d)", c.MaxReportPeriodDays))
	check(c.MaxListedEvents >= 1 && c.MaxListedEvents <= 1_000_000, "compliance.maxListedEvents",
		fmt.Sprintf("must be between 1 and 1000000 (is %d)", c.MaxListedEvents))
	rs := c.ReportingSchedule
	check(slices.Contains(ReportFrequencies, rs.Frequency), "compliance.reportingSchedule.frequency",
		"must be one of "+strings.Join(ReportFrequencies, ", "))
	check(!rs.Enabled || len(rs.Recipients) > 0, "compliance.reportingSchedule.recipients",
		"must name at least one recipient when the schedule is enabled")
	for i, r := range rs.Recipients {
		check(emailPattern.MatchString(r), fmt.Sprintf("compliance.reportingSchedule.recipients[%d]", i), "must be an email address")
	}
	names := map[string]bool{}
	for i, r := range c.Reports {
		field := fmt.Sprintf("compliance.reports[%d]", i)
		check(keyNamePattern.MatchString(r.Name), field+".name", "must be 1 to 64 letters, digits, '.', '_' or '-'")
		check(!names[r.Name], field+".name", fmt.Sprintf("%q names two reports", r.Name))
		names[r.Name] = true
		check(slices.Contains(ReportTypes, r.Report), field+".report", "must be one of "+strings.Join(ReportTypes, ", "))
		check(len(r.Organizations) > 0, field+".organizations", `must name at least one organisation, or "*" for all`)
		for j, o := range r.Organizations {
			check(o != "" && (o != audit.AllOrganizations || len(r.Organizations) == 1),
				fmt.Sprintf("%s.organizations[%d]", field, j), `must not be empty; "*" stands alone`)
		}
		switch {
		case (r.Frequency == "") == (r.Cron == ""):
			check(false, field+".frequency", "exactly one of frequency and cron must be set")
		case r.Cron != "":
			check(report.ParseCron(r.Cron) == nil, field+".cron", "must be a five-field cron expression such as 0 6 * * 1")
		default:
			check(slices.Contains(ReportFrequencies, r.Frequency), field+".frequency", "must be one of "+strings.Join(ReportFrequencies, ", "))
		}
		if r.TimeZone != "" {
			_, err := time.LoadLocation(r.TimeZone)
			check(err == nil, field+".timeZone", "must be an IANA time zone such as UTC or Europe/Berlin")
		}
		check(r.Format == "" || slices.Contains(ReportFormats, r.Format), field+".format", "must be one of "+strings.Join(ReportFormats, ", "))
		switch d := r.Destination; {
		case d == "":
			check(false, field+".destination", "must be a directory, an s3://bucket/prefix or an http(s):// webhook URL")
		case strings.HasPrefix(d, "s3:"):
			check(s3URLPattern.MatchString(d), field+".destination", "must be s3://bucket/prefix")
		case strings.HasPrefix(d, "http:") || strings.HasPrefix(d, "https:"):
			check(httpURLPattern.MatchString(d), field+".destination", "must be an http:// or https:// URL")
			check(len(r.Secret) >= 16, field+".secret", "must be at least 16 characters for a webhook (receivers verify the signature)")
		}
	}
	return probs
}
