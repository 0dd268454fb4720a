package report

import (
	audit "github.com/smartlogs/audit-worker"
)

// DefinitionsVersion names the definitions below. A report carries it, so
// that a number can be recomputed years later under the rules it was counted
// by; any change to a definition changes the version.
const DefinitionsVersion = "2026-12.1"

// PHIResourceTypes are the FHIR resource types whose events concern
// protected health information whatever their classification.
var PHIResourceTypes = []string{"Patient", "Observation", "Condition", "Procedure", "MedicationRequest",
	"MedicationStatement", "AllergyIntolerance", "DiagnosticReport", "DocumentReference", "Encounter",
	"ImagingStudy", "Immunization", "CarePlan", "CareTeam", "Goal"}

// The verbs and families the definitions name.
var (
	AccessVerbs       = []string{"read", "search", "view", "list", "export", "download", "print"}
	ModificationVerbs = []string{"create", "update", "patch", "delete", "merge", "import"}
	PersonalFamilies  = []string{"data", "fhir", "user", "patient", "consent", "gdpr"}
	BreakGlassWords   = []string{"break_glass", "break-glass", "breakglass"}
)

// The conditions of the reports. Each is documented in docs/reports.md and
// printed, as a formula, in every report that counts with it.
var (
	Failure = StatusIn(audit.StatusFailure)

	PHI             = Or(ClassIn(audit.ClassPHI), TypeIn(PHIResourceTypes...))
	PHIAccess       = And(PHI, VerbIn(AccessVerbs...))
	PHIModification = And(PHI, VerbIn(ModificationVerbs...))
	PHIFailure      = And(PHI, Failure)
	Emergency       = And(PHI, SegmentIn("emergency"))
	BreakGlass      = And(PHI, SegmentIn(BreakGlassWords...))

	PersonalData = And(HasPrincipal(), Or(FamilyIn(PersonalFamilies...),
		ClassIn(audit.ClassPHI, audit.ClassConfidential)))
	RightAccess        = And(FamilyIn("gdpr", "data"), VerbIn("access", "export"))
	RightRectification = VerbIn("rectify")
	RightErasure       = And(FamilyIn("gdpr"), VerbIn("erase", "delete"))
	RightPortability   = VerbIn("portability")
	RightRestriction   = VerbIn("restrict")
	RightObjection     = VerbIn("object")
	ConsentEvent       = FamilyIn("consent")
	ConsentGiven       = And(ConsentEvent, VerbIn("given"))
	ConsentWithdrawn   = And(ConsentEvent, VerbIn("withdrawn"))
	ConsentUpdated     = And(ConsentEvent, VerbIn("updated"))
	CrossBorder        = VerbIn("transfer")
	DataBreach         = Or(FamilyIn("breach"), VerbIn("breach"))

	// AccessRecord: the worker's own records of who read the audit trail.
	AccessRecord = ActionPrefix("audit.access.")
)

// OffHours is the condition of the hours [start, end) of the day, wrapping
// midnight when start > end (22–6 is 22:00 to 05:59).
func OffHours(start, end int) Cond {
	var hours []int
	for h := range 24 {
		if (start <= end && h >= start && h < end) || (start > end && (h >= start || h < end)) {
			hours = append(hours, h)
		}
	}
	return LocalHourIn(hours...)
}

// Definition is one named number of a report and how it is counted.
type Definition struct {
	Name    string `json:"name"`
	Formula string `json:"formula"`
}

func define(name string, c Cond) Definition { return Definition{Name: name, Formula: c.String()} }
