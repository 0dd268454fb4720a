package storetest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/report"
)

// ReportStore is what the report suite needs: writing events and computing
// reports over them.
type ReportStore interface {
	audit.EventStore
	report.Store
}

// RunReports runs the report conformance tests: every condition, dimension
// and measure of the report definitions computed by the store against the
// same definitions evaluated in Go, over events full of the traps the
// definitions must not fall into; and the hand-worked fixture
// (report/testdata/fixture.json) through every report. tamper changes one
// stored value of the row with this Seq behind the store's back (fields
// "outcome" or "principal"), as an attacker with database access would.
func RunReports(t *testing.T, open func(t *testing.T) ReportStore, tamper func(t *testing.T, s ReportStore, seq int64, field string)) {
	t.Run("DefinitionsMatchGo", func(t *testing.T) { testReportDefinitions(t, open(t)) })
	t.Run("ListingPagesInOrder", func(t *testing.T) { testReportListing(t, open(t)) })
	t.Run("HandWorkedFixture", func(t *testing.T) { testReportFixture(t, open(t), tamper) })
}

var (
	reportActions = []string{"fhir.patient.read", "FHIR.Patient.READ", "thread.create", "fhir.patient.update",
		"ehr.break-glass.read", "fhir.patient.break_glass", "fhir.BreakGlass", "fhir.breakglassy.read",
		"fhir.emergency.read", "fhir.nonemergency.read", "gdpr.request.access", "data.export", "gdpr.data.erase",
		"data.record.delete", "consent.given", "consent.withdrawn", "consent.updated", "consent.revoked",
		"data.transfer", "breach.notify", "security.breach.detected", "audit.access.query", "audit.accessx",
		"auth.login.failure", "read", "fhir..read", "ünïcode.REad", "data.rectify", "gdpr.x.portability",
		"gdpr.restrict", "user.object", "patient.list", "billing.invoice.print"}
	reportTypes   = []string{"Patient", "Observation", "Invoice", "patient", "", "Thread", "Goal"}
	reportClasses = []audit.Classification{audit.ClassPHI, audit.ClassConfidential, audit.ClassInternal, audit.ClassPublic, ""}
	reportDetails = []string{``, `{"legalBasis":"consent"}`, `{"gdprContext":{"legalBasis":"contract"}}`,
		`{"legalBasis":"","gdprContext":{"legalBasis":"vital_interest"}}`, `{"legalBasis":5}`,
		`{"LegalBasis":"case"}`, `{"gdprContext":"x"}`, `{"legalBasis":"consent","gdprContext":{"legalBasis":"contract"}}`}
)

// reportRecords makes n events around a daylight-saving change of New York
// (2024-03-10) for two organisations and none.
func reportRecords(seed uint64, n int) []audit.Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	base := time.Date(2024, 3, 8, 0, 0, 0, 0, time.UTC)
	orgs := []string{"org-ny", "org-tokyo", "org-utc", ""}
	principals := []string{"alice", "bob", "", "carol"}
	out := make([]audit.Record, n)
	for i := range out {
		at := base.Add(time.Duration(rng.Int64N(int64(5 * 24 * time.Hour)))).Truncate(time.Millisecond)
		ts := at.Format("2006-01-02T15:04:05.000Z")
		e := audit.Event{Timestamp: ts, Time: at,
			Action:             reportActions[rng.IntN(len(reportActions))],
			Status:             []audit.Status{audit.StatusSuccess, audit.StatusFailure, audit.StatusAttempt}[rng.IntN(3)],
			OrganizationID:     orgs[rng.IntN(len(orgs))],
			PrincipalID:        principals[rng.IntN(len(principals))],
			TargetResourceType: reportTypes[rng.IntN(len(reportTypes))],
			DataClassification: reportClasses[rng.IntN(len(reportClasses))],
		}
		if rng.IntN(4) != 0 {
			e.TargetResourceID = fmt.Sprintf("r-%d", rng.IntN(7))
		}
		if d := reportDetails[rng.IntN(len(reportDetails))]; d != "" {
			e.Details = []byte(d)
		}
		out[i] = record(e, fmt.Sprintf("report-%d-%d", seed, i))
	}
	return out
}

var reportZones = report.TimeZones{Default: "UTC", ByOrg: map[string]string{"org-ny": "America/New_York", "org-tokyo": "Asia/Tokyo"}}

func storeReportRecords(t *testing.T, s ReportStore, recs []audit.Record) []audit.StoredEvent {
	t.Helper()
	for i := 0; i < len(recs); i += 250 {
		store(t, s, audit.Batch{Records: recs[i:min(i+250, len(recs))]})
	}
	return listAll(t, s)
}

// expectedGroups computes an aggregation in Go from every stored event.
func expectedGroups(all []audit.StoredEvent, f report.Filter, a report.Aggregation, loc report.Locator) map[string][]int64 {
	type acc struct {
		values   []int64
		distinct []map[string]bool
	}
	groups := map[string]*acc{}
	newAcc := func() *acc {
		g := &acc{values: make([]int64, len(a.Measures)), distinct: make([]map[string]bool, len(a.Measures))}
		for i := range g.distinct {
			g.distinct[i] = map[string]bool{}
		}
		return g
	}
	if len(a.GroupBy) == 0 {
		groups[""] = newAcc()
	}
	for i := range all {
		e := &all[i]
		if !f.Matches(e) || !a.Where.Match(e, loc) {
			continue
		}
		keys := make([]string, len(a.GroupBy))
		for k, d := range a.GroupBy {
			keys[k], _ = d.Value(e, loc)
		}
		key := strings.Join(keys, "\x00")
		g := groups[key]
		if g == nil {
			g = newAcc()
			groups[key] = g
		}
		for m, ms := range a.Measures {
			if !ms.If.Match(e, loc) {
				continue
			}
			switch ms.Kind {
			case report.Count:
				g.values[m]++
			case report.Distinct:
				if v, ok := ms.Of.Value(e, loc); ok {
					g.distinct[m][v] = true
				}
			case report.MinTime:
				if us := e.Time.UnixMicro(); g.values[m] == 0 || us < g.values[m] {
					g.values[m] = us
				}
			case report.MaxTime:
				g.values[m] = max(g.values[m], e.Time.UnixMicro())
			}
		}
	}
	out := map[string][]int64{}
	for key, g := range groups {
		for m, ms := range a.Measures {
			if ms.Kind == report.Distinct {
				g.values[m] = int64(len(g.distinct[m]))
			}
		}
		out[key] = g.values
	}
	if a.Top > 0 {
		keys := slices.Collect(maps.Keys(out))
		sort.Slice(keys, func(i, j int) bool {
			vi, vj := out[keys[i]][0], out[keys[j]][0]
			if vi != vj {
				return vi > vj
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys[min(a.Top, len(keys)):] {
			delete(out, k)
		}
	}
	return out
}

func gotGroups(gs []report.Group) map[string][]int64 {
	out := map[string][]int64{}
	for _, g := range gs {
		out[strings.Join(g.Keys, "\x00")] = g.Values
	}
	return out
}

// reportConds are every definition the reports use, and a few compositions.
var reportConds = map[string]report.Cond{
	"phi": report.PHI, "phiAccess": report.PHIAccess, "phiModification": report.PHIModification,
	"phiFailure": report.PHIFailure, "emergency": report.Emergency, "breakGlass": report.BreakGlass,
	"personalData": report.PersonalData, "rightAccess": report.RightAccess, "rectification": report.RightRectification,
	"erasure": report.RightErasure, "portability": report.RightPortability, "restriction": report.RightRestriction,
	"objection": report.RightObjection, "consent": report.ConsentEvent, "consentGiven": report.ConsentGiven,
	"crossBorder": report.CrossBorder, "breach": report.DataBreach, "accessRecord": report.AccessRecord,
	"offHours": report.OffHours(22, 6), "dayHours": report.OffHours(9, 17),
	"not personal": report.Not(report.PersonalData), "not classified PHI": report.Not(report.ClassIn(audit.ClassPHI)),
	"not typed": report.Not(report.TypeIn("Patient")), "no resource": report.Not(report.HasResource()),
	"unicode verb": report.VerbIn("read"), "segment": report.SegmentIn("access"),
}

func testReportDefinitions(t *testing.T, s ReportStore) {
	all := storeReportRecords(t, s, reportRecords(7, 1500))
	loc, err := reportZones.Locator()
	if err != nil {
		t.Fatal(err)
	}
	from, to := time.Date(2024, 3, 8, 12, 0, 0, 0, time.UTC), time.Date(2024, 3, 12, 12, 0, 0, 0, time.UTC)
	filters := map[string]report.Filter{
		"two orgs": {Organizations: []string{"org-ny", "org-tokyo"}, From: from, To: to},
		"all orgs": {From: from, To: to},
		"narrowed": {Organizations: []string{"org-ny", "org-utc"}, From: from, To: to,
			PrincipalIDs: []string{"alice", "bob"}, Actions: []string{"fhir.*", "consent.given", "data.export"},
			Statuses: []string{"success", "failure"}, DataClassifications: []string{"PHI", "INTERNAL"},
			ResourceTypes: []string{"Patient", "Invoice"}},
		"no org": {Organizations: []string{}, From: from, To: to},
	}
	dims := []report.Dimension{report.DimStatus, report.DimAction, report.DimClassification, report.DimPrincipal,
		report.DimResource, report.DimPatient, report.DimLegalBasis, report.DimLocalHour, report.DimLocalDay,
		report.DimLocalHourStamp}
	var aggs []report.Aggregation
	var names []string
	condNames := slices.Sorted(maps.Keys(reportConds))
	var measures []report.Measure
	for _, n := range condNames {
		measures = append(measures, report.Measure{Kind: report.Count, If: reportConds[n]})
	}
	aggs = append(aggs, report.Aggregation{Measures: measures})
	names = append(names, "every condition")
	for _, d := range dims {
		aggs = append(aggs, report.Aggregation{GroupBy: []report.Dimension{d}, Measures: []report.Measure{
			{Kind: report.Count}, {Kind: report.Distinct, Of: report.DimPrincipal, If: report.PHI},
			{Kind: report.Distinct, Of: report.DimPatient}, {Kind: report.MinTime, If: report.Failure}, {Kind: report.MaxTime},
			{Kind: report.Count, If: report.OffHours(22, 6)}}})
		names = append(names, fmt.Sprintf("grouped by dimension %d", d))
		aggs = append(aggs, report.Aggregation{Measures: []report.Measure{{Kind: report.Distinct, Of: d}}, Where: report.PersonalData})
		names = append(names, fmt.Sprintf("distinct dimension %d of personal data", d))
	}
	aggs = append(aggs,
		report.Aggregation{GroupBy: []report.Dimension{report.DimStatus, report.DimAction, report.DimClassification},
			Measures: []report.Measure{{Kind: report.Count}}},
		report.Aggregation{GroupBy: []report.Dimension{report.DimPrincipal}, Where: report.HasPrincipal(),
			Measures: []report.Measure{{Kind: report.Count}}, Top: 2},
		report.Aggregation{GroupBy: []report.Dimension{report.DimResource}, Where: report.HasResource(),
			Measures: []report.Measure{{Kind: report.Count}}, Top: 5},
		report.Aggregation{GroupBy: []report.Dimension{report.DimPrincipal, report.DimAction}, Where: report.AccessRecord,
			Measures: []report.Measure{{Kind: report.Count}}})
	names = append(names, "cube", "top principals", "top resources", "access records")
	for fname, f := range filters {
		f.Zones, err = report.PlanZones(reportZones, f.Organizations, f.From, f.To)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Aggregate(ctxFor(t), f, aggs)
		if err != nil {
			t.Fatalf("%s: Aggregate: %v", fname, err)
		}
		matched := 0
		for i := range all {
			if f.Matches(&all[i]) {
				matched++
			}
		}
		if fname != "no org" && (matched == 0 || matched == len(all)) {
			t.Fatalf("%s: the filter matches %d of %d events, so it tests nothing", fname, matched, len(all))
		}
		for i, a := range aggs {
			want, have := expectedGroups(all, f, a, loc), gotGroups(got[i])
			if !maps.EqualFunc(want, have, slices.Equal[[]int64]) {
				t.Errorf("%s, %s: store %v\nGo %v", fname, names[i], clipMap(have), clipMap(want))
			}
		}
	}
	// Each condition holds for some events and fails for others, or it tests nothing.
	for _, n := range condNames {
		hits := 0
		for i := range all {
			if reportConds[n].Match(&all[i], loc) {
				hits++
			}
		}
		if hits == 0 || hits == len(all) {
			t.Errorf("condition %s holds for %d of %d events: the test data misses it", n, hits, len(all))
		}
	}
}

func clipMap(m map[string][]int64) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for i, k := range keys {
		if i == 12 {
			b.WriteString(" …")
			break
		}
		fmt.Fprintf(&b, " %q:%v", k, m[k])
	}
	return b.String()
}

func testReportListing(t *testing.T, s ReportStore) {
	all := storeReportRecords(t, s, reportRecords(8, 800))
	loc, _ := reportZones.Locator()
	f := report.Filter{Organizations: []string{"org-ny", "org-utc"},
		From: time.Date(2024, 3, 8, 0, 0, 0, 0, time.UTC), To: time.Date(2024, 3, 13, 0, 0, 0, 0, time.UTC)}
	var err error
	if f.Zones, err = report.PlanZones(reportZones, f.Organizations, f.From, f.To); err != nil {
		t.Fatal(err)
	}
	for name, where := range map[string]report.Cond{"all": {}, "high risk": report.Or(report.PHIFailure, report.Emergency, report.BreakGlass),
		"off hours": report.And(report.PHIAccess, report.OffHours(22, 6))} {
		var want []int64
		for i := range all {
			if f.Matches(&all[i]) && where.Match(&all[i], loc) {
				want = append(want, all[i].Seq)
			}
		}
		slices.SortFunc(want, func(a, b int64) int {
			ea, eb := all[slices.IndexFunc(all, func(e audit.StoredEvent) bool { return e.Seq == a })],
				all[slices.IndexFunc(all, func(e audit.StoredEvent) bool { return e.Seq == b })]
			if c := ea.Time.Compare(eb.Time); c != 0 {
				return c
			}
			return int(a - b)
		})
		var got []int64
		var after *audit.Position
		for {
			page, err := s.ReportEvents(ctxFor(t), f, where, after, 7)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, seqs(page)...)
			if len(page) < 7 {
				break
			}
			last := audit.PositionOf(&page[len(page)-1])
			after = &last
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: listed %d events %v…, want %d %v…", name, len(got), head(got), len(want), head(want))
		}
	}
	_, err = s.ReportEvents(ctxFor(t), f, report.Cond{}, nil, 0)
	wantCode(t, "limit 0", err, audit.CodeInvalid)
}
