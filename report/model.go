package report

import (
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Type is a report's kind, under the original system's names.
type Type string

const (
	HIPAA     Type = "HIPAA_AUDIT_TRAIL"
	GDPR      Type = "GDPR_PROCESSING_ACTIVITIES"
	General   Type = "GENERAL_COMPLIANCE"
	Integrity Type = "INTEGRITY_VERIFICATION"
)

// Types lists the report types by their short names, as the API and the
// CLI take them.
var Types = map[string]Type{"hipaa": HIPAA, "gdpr": GDPR, "general": General, "integrity": Integrity}

// ParseType returns the type named by its short name (hipaa, gdpr, general,
// integrity) or its full name, or a CodeInvalid error listing them.
func ParseType(name string) (Type, error) {
	if t, ok := Types[strings.ToLower(name)]; ok {
		return t, nil
	}
	for _, t := range Types {
		if string(t) == name {
			return t, nil
		}
	}
	return "", audit.Errorf(audit.CodeInvalid, "report type %q: one of hipaa, gdpr, general, integrity", clip(name))
}

// Short is the type's short name.
func (t Type) Short() string {
	for name, tt := range Types {
		if tt == t {
			return name
		}
	}
	return strings.ToLower(string(t))
}

// Title is the type's name for people.
func (t Type) Title() string {
	switch t {
	case HIPAA:
		return "HIPAA audit trail"
	case GDPR:
		return "GDPR processing activities"
	case General:
		return "General compliance"
	case Integrity:
		return "Integrity verification"
	}
	return string(t)
}

// Report is one report. Its numbers are computed in the database; the
// listed events are not held here but read when the report is rendered
// (Generator.ListedEvents), so that a report of any size is rendered in
// constant memory.
type Report struct {
	Metadata Metadata           `json:"metadata"`
	Summary  Summary            `json:"summary"`
	Activity Activity           `json:"activity"`
	HIPAA    *HIPAASpecific     `json:"hipaaSpecific,omitempty"`
	Risk     *RiskAssessment    `json:"riskAssessment,omitempty"`
	GDPR     *GDPRSpecific      `json:"gdprSpecific,omitempty"`
	General  *GeneralSpecific   `json:"generalSpecific,omitempty"`
	Results  *IntegrityResults  `json:"results,omitempty"`
	Failures []IntegrityFailure `json:"failures,omitempty"`
	Listed   *Listing           `json:"listedEvents,omitempty"`

	filter   Filter
	listCond Cond
}

// Metadata says what the report is, who made it, over what, and by which rules.
type Metadata struct {
	ReportID    string    `json:"reportId"`
	ReportType  Type      `json:"reportType"`
	GeneratedAt time.Time `json:"generatedAt"`
	GeneratedBy string    `json:"generatedBy"`
	Criteria    Criteria  `json:"criteria"`
	// Organizations is the scope the report covered: the organisations
	// named, or those of the caller's scope, or ["*"] for all.
	Organizations []string `json:"organizations"`
	// Checkpoint is the latest tamper-evidence checkpoint, present once a
	// checkpoint source is configured.
	Checkpoint         *Checkpoint       `json:"checkpoint,omitempty"`
	DefinitionsVersion string            `json:"definitionsVersion"`
	TimeZones          map[string]string `json:"timeZones"`
	OffHours           *HourRange        `json:"offHours,omitempty"`
	// Definitions give the formula of every number the report counts.
	Definitions []Definition `json:"definitions"`
}

// HourRange is [Start, End) in hours of the day, wrapping midnight when
// Start > End.
type HourRange struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Summary is what every report starts with.
type Summary struct {
	TotalEvents                int64            `json:"totalEvents"`
	EventsByStatus             map[string]int64 `json:"eventsByStatus"`
	EventsByAction             map[string]int64 `json:"eventsByAction"`
	EventsByDataClassification map[string]int64 `json:"eventsByDataClassification"`
	UniquePrincipals           int64            `json:"uniquePrincipals"`
	UniqueResources            int64            `json:"uniqueResources"`
	// IntegrityViolations counts the events of the period and organisations
	// refused at ingest because their hash or signature did not match.
	IntegrityViolations int64      `json:"integrityViolations"`
	TimeRange           *TimeRange `json:"timeRange"`
}

// TimeRange is the first and last event time of the report's events.
type TimeRange struct {
	Earliest time.Time `json:"earliest"`
	Latest   time.Time `json:"latest"`
}

// Activity is the count of events over time, for the chart: by local day,
// or by local hour for periods of three days or less.
type Activity struct {
	Unit    string           `json:"unit"` // "day" or "hour"
	Buckets []ActivityBucket `json:"buckets"`
}

// ActivityBucket is one day or hour, in the organisations' local time.
type ActivityBucket struct {
	Start    string `json:"start"` // 2024-03-10 or 2024-03-10T14
	Events   int64  `json:"events"`
	Failures int64  `json:"failures"`
}

// HIPAASpecific are the HIPAA audit trail's numbers.
type HIPAASpecific struct {
	PHIEvents              int64          `json:"phiEvents"`
	PHIAccessEvents        int64          `json:"phiAccessEvents"`
	PHIModificationEvents  int64          `json:"phiModificationEvents"`
	UnauthorizedAttempts   int64          `json:"unauthorizedAttempts"`
	EmergencyAccess        int64          `json:"emergencyAccess"`
	BreakGlassEvents       int64          `json:"breakGlassEvents"`
	AfterHoursAccessEvents int64          `json:"afterHoursAccessEvents"`
	ByPrincipal            []PrincipalPHI `json:"byPrincipal"`
}

// PrincipalPHI is one principal's PHI activity.
type PrincipalPHI struct {
	PrincipalID        string `json:"principalId"` // "" for events without one
	PHIEvents          int64  `json:"phiEvents"`
	Accesses           int64  `json:"accesses"`
	Modifications      int64  `json:"modifications"`
	Failures           int64  `json:"failures"`
	DistinctPatients   int64  `json:"distinctPatients"`
	AfterHoursAccesses int64  `json:"afterHoursAccesses"`
}

// RiskAssessment lists the findings of the HIPAA report.
type RiskAssessment struct {
	HighVolumeAccessThreshold int       `json:"highVolumeAccessThreshold"`
	Findings                  []Finding `json:"findings"`
	// HighRiskEvents counts the events listed: PHI failures, emergency
	// and break-glass accesses.
	HighRiskEvents int64 `json:"highRiskEvents"`
}

// Finding is one risk found.
type Finding struct {
	Type        string `json:"type"` // HIGH_VOLUME_ACCESS, AFTER_HOURS_ACCESS
	Severity    string `json:"severity"`
	PrincipalID string `json:"principalId"`
	Count       int64  `json:"count"`
	Description string `json:"description"`
}

// GDPRSpecific are the GDPR report's numbers.
type GDPRSpecific struct {
	PersonalDataEvents   int64             `json:"personalDataEvents"`
	DataSubjectRights    DataSubjectRights `json:"dataSubjectRights"`
	ConsentEvents        ConsentEvents     `json:"consentEvents"`
	CrossBorderTransfers int64             `json:"crossBorderTransfers"`
	DataBreaches         int64             `json:"dataBreaches"`
	LegalBasisBreakdown  map[string]int64  `json:"legalBasisBreakdown"`
	// RecordOfProcessing is Art. 30's record, as the deployment configures it.
	RecordOfProcessing *RecordOfProcessing `json:"recordOfProcessing,omitempty"`
}

// DataSubjectRights counts the requests of each right.
type DataSubjectRights struct {
	Access        int64 `json:"access"`
	Rectification int64 `json:"rectification"`
	Erasure       int64 `json:"erasure"`
	Portability   int64 `json:"portability"`
	Restriction   int64 `json:"restriction"`
	Objection     int64 `json:"objection"`
}

// ConsentEvents counts the consent family's events by verb.
type ConsentEvents struct {
	Total     int64 `json:"total"`
	Given     int64 `json:"given"`
	Withdrawn int64 `json:"withdrawn"`
	Updated   int64 `json:"updated"`
	Other     int64 `json:"other"`
}

// RecordOfProcessing is the record of processing activities (GDPR Art. 30)
// the deployment keeps in its configuration (compliance.gdpr); reports print
// it as given.
type RecordOfProcessing struct {
	Controller             string   `json:"controller,omitempty"`
	Purposes               []string `json:"purposes,omitempty"`
	DataSubjectCategories  []string `json:"dataSubjectCategories,omitempty"`
	PersonalDataCategories []string `json:"personalDataCategories,omitempty"`
	RecipientCategories    []string `json:"recipientCategories,omitempty"`
	TransferSafeguards     string   `json:"transferSafeguards,omitempty"`
	ErasureTimeLimits      string   `json:"erasureTimeLimits,omitempty"`
	SecurityMeasures       []string `json:"securityMeasures,omitempty"`
}

// IsZero reports whether nothing is configured.
func (r *RecordOfProcessing) IsZero() bool {
	return r == nil || (r.Controller == "" && len(r.Purposes) == 0 && len(r.DataSubjectCategories) == 0 &&
		len(r.PersonalDataCategories) == 0 && len(r.RecipientCategories) == 0 && r.TransferSafeguards == "" &&
		r.ErasureTimeLimits == "" && len(r.SecurityMeasures) == 0)
}

// GeneralSpecific are the general report's tables.
type GeneralSpecific struct {
	FailuresByAction    []KeyCount      `json:"failuresByAction"`
	FailuresByPrincipal []KeyCount      `json:"failuresByPrincipal"`
	TopPrincipals       []KeyCount      `json:"topPrincipals"`
	TopResources        []ResourceCount `json:"topResources"`
	ActivityByHour      []HourCount     `json:"activityByHour"`
	AccessRecords       AccessRecords   `json:"accessRecords"`
}

// KeyCount is a value and how many events have it.
type KeyCount struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// ResourceCount is a resource and how many events name it.
type ResourceCount struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Count int64  `json:"count"`
}

// HourCount is the events of one hour of the local day.
type HourCount struct {
	Hour   int   `json:"hour"`
	Events int64 `json:"events"`
}

// AccessRecords are the audit.access.* events of the period: who read the
// audit trail, how.
type AccessRecords struct {
	Total int64              `json:"total"`
	By    []PrincipalActions `json:"byPrincipalAndAction"`
}

// PrincipalActions counts one principal's records of one action.
type PrincipalActions struct {
	PrincipalID string `json:"principalId"`
	Action      string `json:"action"`
	Count       int64  `json:"count"`
}

// IntegrityResults are the integrity report's tallies.
type IntegrityResults struct {
	TotalEvents         int64 `json:"totalEvents"`
	VerifiedEvents      int64 `json:"verifiedEvents"`
	FailedVerifications int64 `json:"failedVerifications"`
	// NotVerifiable counts, by check and reason, the checks that could not
	// be made ("signature: the producer sent no signature").
	NotVerifiable map[string]int64 `json:"notVerifiable"`
	// VerificationRate is VerifiedEvents / TotalEvents in percent; null
	// without events.
	VerificationRate *float64              `json:"verificationRate"`
	Checks           map[string]CheckTally `json:"checks"`
	// FailuresListed is how many failures are listed (the first ones, at
	// most the listing limit), FailuresTotal how many there are.
	FailuresTotal  int64 `json:"failuresTotal"`
	FailuresListed int64 `json:"failuresListed"`
}

// CheckTally is one check over the period's rows.
type CheckTally struct {
	Checked       int64 `json:"checked"`
	Passed        int64 `json:"passed"`
	Failed        int64 `json:"failed"`
	NotVerifiable int64 `json:"notVerifiable"`
}

// IntegrityFailure is one check that failed on one row.
type IntegrityFailure struct {
	ID        int64     `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	Check     string    `json:"check"`
	Expected  string    `json:"expected"`
	Found     string    `json:"found"`
}

// Listing says which events the report lists after its tables.
type Listing struct {
	Description string `json:"description"`
	Formula     string `json:"formula"`
	Total       int64  `json:"total"`  // events that meet it
	Listed      int64  `json:"listed"` // events listed: the first ones, up to Limit
	Limit       int    `json:"limit"`
	Truncated   bool   `json:"truncated"`
}

// Checkpoint is the signed tamper-evidence checkpoint a report was made
// against: the first Size leaves of the log's Merkle tree have RootHash.
type Checkpoint struct {
	Origin   string    `json:"origin"`
	Size     int64     `json:"size"`
	RootHash string    `json:"rootHash"` // base64, as the checkpoint writes it
	SignedAt time.Time `json:"signedAt"`
	Note     string    `json:"note"` // the signed note itself
}
