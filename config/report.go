package config

import (
	"time"

	"github.com/smartlogs/audit-worker/report"
)

// ReportOptions are the options of the report generator that the
// configuration sets: time zones, off hours, the record of processing and
// the limits. The store, the HMAC key and the checkpoints are the caller's.
func (c Config) ReportOptions() report.Options {
	pd := c.Monitoring.PatternDetection
	gd := c.Compliance.GDPR
	return report.Options{
		TimeZones: report.TimeZones{Default: pd.TimeZone, ByOrg: pd.OrganizationTimeZones},
		OffHours:  report.HourRange{Start: pd.OffHoursStart, End: pd.OffHoursEnd},
		GDPR: &report.RecordOfProcessing{Controller: gd.Controller, Purposes: gd.Purposes,
			DataSubjectCategories: gd.DataSubjectCategories, PersonalDataCategories: gd.PersonalDataCategories,
			RecipientCategories: gd.RecipientCategories, TransferSafeguards: gd.TransferSafeguards,
			ErasureTimeLimits: gd.ErasureTimeLimits, SecurityMeasures: gd.SecurityMeasures},
		MaxListed: c.Compliance.MaxListedEvents,
		MaxPeriod: time.Duration(c.Compliance.MaxReportPeriodDays) * 24 * time.Hour,
	}
}
