package report

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// CheckpointSource gives reports the tamper-evidence checkpoints: the latest
// one, and a row's inclusion check against it. covered is false when the row
// is not in that checkpoint (integrated after it, or not yet).
type CheckpointSource interface {
	Latest(ctx context.Context) (Checkpoint, error)
	Inclusion(ctx context.Context, cp Checkpoint, e *audit.StoredEvent) (c audit.Check, covered bool, err error)
}

// Options configure a Generator.
type Options struct {
	Store     Store
	TimeZones TimeZones
	// OffHours are the detectors' off hours (offHoursStart, offHoursEnd).
	OffHours HourRange
	// GDPR is the deployment's record of processing activities.
	GDPR *RecordOfProcessing
	// HMACKey returns the producers' signing key in force; nil or empty:
	// signatures are not checked.
	HMACKey func() []byte
	// Checkpoints, when set, adds the checkpoint to every report and the
	// inclusion check to the integrity report.
	Checkpoints CheckpointSource
	// MaxListed bounds the events a report lists (default 10,000).
	MaxListed int
	// MaxPeriod bounds the period of a report (default 400 days).
	MaxPeriod time.Duration
	Now       func() time.Time
}

// DefaultMaxListed is how many events a report lists at most by default.
const DefaultMaxListed = 10000

// Generator makes reports.
type Generator struct {
	opts Options
}

// New returns a generator.
func New(opts Options) *Generator {
	if opts.MaxListed <= 0 {
		opts.MaxListed = DefaultMaxListed
	}
	if opts.MaxPeriod <= 0 {
		opts.MaxPeriod = DefaultMaxPeriod
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Generator{opts: opts}
}

// MaxPeriod is the longest period a report may cover.
func (g *Generator) MaxPeriod() time.Duration { return g.opts.MaxPeriod }

// Request is what to report on: the type, the criteria, the organisations
// the caller may read them for (nil: every organisation), and who asks.
type Request struct {
	Type          Type
	Criteria      Criteria
	Organizations []string
	GeneratedBy   string
}

// Generate computes a report. Its numbers come from one statement over the
// period's rows (the integrity report also reads the rows, in batches, to
// recompute their hashes).
func (g *Generator) Generate(ctx context.Context, req Request) (*Report, error) {
	c := req.Criteria
	if err := c.Validate(g.opts.MaxPeriod); err != nil {
		return nil, err
	}
	zones, err := PlanZones(g.opts.TimeZones, req.Organizations, c.From, c.To)
	if err != nil {
		return nil, err
	}
	r := &Report{filter: c.filter(req.Organizations, zones)}
	r.Metadata = Metadata{ReportID: newReportID(), ReportType: req.Type, GeneratedAt: g.opts.Now().UTC(),
		GeneratedBy: req.GeneratedBy, Criteria: c, Organizations: req.Organizations,
		DefinitionsVersion: DefinitionsVersion, TimeZones: g.zoneNames(req.Organizations)}
	if r.Metadata.Organizations == nil {
		r.Metadata.Organizations = []string{audit.AllOrganizations}
	}
	if g.opts.Checkpoints != nil {
		cp, err := g.opts.Checkpoints.Latest(ctx)
		switch {
		case err == nil:
			r.Metadata.Checkpoint = &cp
		case audit.ErrorCode(err) != audit.CodeNotFound: // none signed yet: the report says so
			return nil, audit.Wrap(audit.ErrorCode(err), "read the latest checkpoint", err)
		}
	}
	plan := g.plan(req.Type, &c, r)
	groups, err := g.opts.Store.Aggregate(ctx, r.filter, plan.aggs)
	if err != nil {
		return nil, err
	}
	plan.fill(groups)
	if r.Summary.IntegrityViolations, err = g.integrityViolations(ctx, r.filter); err != nil {
		return nil, err
	}
	if req.Type == Integrity {
		if err := g.verify(ctx, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func newReportID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "rpt_" + hex.EncodeToString(b)
}

func (g *Generator) zoneNames(orgs []string) map[string]string {
	out := map[string]string{"default": g.opts.TimeZones.Zone("")}
	if orgs == nil {
		orgs = slices.Sorted(maps.Keys(g.opts.TimeZones.ByOrg))
	}
	for _, org := range orgs {
		out[org] = g.opts.TimeZones.Zone(org)
	}
	return out
}

// plan is the aggregations of one report and how their groups fill it.
type plan struct {
	aggs  []Aggregation
	fills []func([]Group)
}

func (p *plan) add(a Aggregation, fill func([]Group)) {
	p.aggs = append(p.aggs, a)
	p.fills = append(p.fills, fill)
}

func (p *plan) fill(groups [][]Group) {
	for i, f := range p.fills {
		f(groups[i])
	}
}

// plan lays out the aggregations of a report of type t.
func (g *Generator) plan(t Type, c *Criteria, r *Report) *plan {
	p := &plan{}
	r.listCond, r.Listed = listing(t, g.opts.MaxListed)
	r.Metadata.Definitions = definitions(t)
	g.planSummary(p, c, r)
	switch t {
	case HIPAA:
		off := OffHours(g.opts.OffHours.Start, g.opts.OffHours.End)
		r.Metadata.OffHours = &HourRange{Start: g.opts.OffHours.Start, End: g.opts.OffHours.End}
		r.Metadata.Definitions = append(r.Metadata.Definitions, define("afterHoursAccessEvents", And(PHIAccess, off)))
		planHIPAA(p, c, r, off)
	case GDPR:
		planGDPR(p, r, g.opts.GDPR)
	case General:
		planGeneral(p, r)
	}
	return p
}

func listing(t Type, limit int) (Cond, *Listing) {
	var c Cond
	var what string
	switch t {
	case HIPAA:
		c, what = Or(PHIFailure, Emergency, BreakGlass), "PHI events that failed, emergency and break-glass accesses"
	case GDPR:
		c, what = Or(RightAccess, RightRectification, RightErasure, RightPortability, RightRestriction,
			RightObjection, ConsentEvent, CrossBorder, DataBreach),
			"data-subject requests, consent events, cross-border transfers and breaches"
	case General:
		c, what = Or(Failure, AccessRecord), "failures, and the records of who read the audit trail"
	default:
		return Cond{}, nil
	}
	return c, &Listing{Description: what, Formula: c.String(), Limit: limit}
}

func definitions(t Type) []Definition {
	defs := []Definition{define("totalEvents", Cond{})}
	switch t {
	case HIPAA:
		defs = append(defs, define("phiEvents", PHI), define("phiAccessEvents", PHIAccess),
			define("phiModificationEvents", PHIModification), define("unauthorizedAttempts", PHIFailure),
			define("emergencyAccess", Emergency), define("breakGlassEvents", BreakGlass))
	case GDPR:
		defs = append(defs, define("personalDataEvents", PersonalData),
			define("dataSubjectRights.access", RightAccess), define("dataSubjectRights.rectification", RightRectification),
			define("dataSubjectRights.erasure", RightErasure), define("dataSubjectRights.portability", RightPortability),
			define("dataSubjectRights.restriction", RightRestriction), define("dataSubjectRights.objection", RightObjection),
			define("consentEvents", ConsentEvent), define("consentEvents.given", ConsentGiven),
			define("consentEvents.withdrawn", ConsentWithdrawn), define("consentEvents.updated", ConsentUpdated),
			define("crossBorderTransfers", CrossBorder), define("dataBreaches", DataBreach))
	case General:
		defs = append(defs, define("failures", Failure), define("accessRecords", AccessRecord))
	}
	return defs
}

// planSummary: the totals, the table of status × action × classification,
// and the activity over time.
func (g *Generator) planSummary(p *plan, c *Criteria, r *Report) {
	listCond := r.listCond
	p.add(Aggregation{Measures: []Measure{{Kind: Count}, {Kind: Distinct, Of: DimPrincipal},
		{Kind: Distinct, Of: DimResource}, {Kind: MinTime}, {Kind: MaxTime}, {Kind: Count, If: listCond}}},
		func(gs []Group) {
			v := gs[0].Values
			r.Summary.TotalEvents, r.Summary.UniquePrincipals, r.Summary.UniqueResources = v[0], v[1], v[2]
			if v[0] > 0 {
				r.Summary.TimeRange = &TimeRange{Earliest: time.UnixMicro(v[3]).UTC(), Latest: time.UnixMicro(v[4]).UTC()}
			}
			if r.Listed != nil {
				r.Listed.Total = v[5]
				r.Listed.Listed = min(v[5], int64(r.Listed.Limit))
				r.Listed.Truncated = v[5] > int64(r.Listed.Limit)
			}
		})
	p.add(Aggregation{GroupBy: []Dimension{DimStatus, DimAction, DimClassification}, Measures: []Measure{{Kind: Count}}},
		func(gs []Group) {
			s := &r.Summary
			s.EventsByStatus, s.EventsByAction, s.EventsByDataClassification = map[string]int64{}, map[string]int64{}, map[string]int64{}
			for _, gr := range gs {
				class := gr.Keys[2]
				if class == "" {
					class = Unspecified
				}
				s.EventsByStatus[gr.Keys[0]] += gr.Values[0]
				s.EventsByAction[gr.Keys[1]] += gr.Values[0]
				s.EventsByDataClassification[class] += gr.Values[0]
			}
		})
	unit, dim := "day", DimLocalDay
	if c.To.Sub(c.From) <= 72*time.Hour {
		unit, dim = "hour", DimLocalHourStamp
	}
	p.add(Aggregation{GroupBy: []Dimension{dim}, Measures: []Measure{{Kind: Count}, {Kind: Count, If: Failure}}},
		func(gs []Group) {
			r.Activity = Activity{Unit: unit, Buckets: activityBuckets(gs, unit)}
		})
}

// activityBuckets turns local day or hour numbers into labels, in order.
func activityBuckets(gs []Group, unit string) []ActivityBucket {
	type numbered struct {
		n int64
		b ActivityBucket
	}
	var list []numbered
	for _, gr := range gs {
		n, err := strconv.ParseInt(gr.Keys[0], 10, 64)
		if err != nil {
			continue
		}
		var label string
		if unit == "hour" {
			label = time.Unix(n*3600, 0).UTC().Format("2006-01-02T15")
		} else {
			label = time.Unix(n*86400, 0).UTC().Format("2006-01-02")
		}
		list = append(list, numbered{n, ActivityBucket{Start: label, Events: gr.Values[0], Failures: gr.Values[1]}})
	}
	slices.SortFunc(list, func(a, b numbered) int { return cmp.Compare(a.n, b.n) })
	out := make([]ActivityBucket, len(list))
	for i := range list {
		out[i] = list[i].b
	}
	return out
}

func planHIPAA(p *plan, c *Criteria, r *Report, off Cond) {
	h := &HIPAASpecific{ByPrincipal: []PrincipalPHI{}}
	risk := &RiskAssessment{HighVolumeAccessThreshold: c.Threshold(), Findings: []Finding{}}
	r.HIPAA, r.Risk = h, risk
	p.add(Aggregation{GroupBy: []Dimension{DimPrincipal}, Where: PHI, Measures: []Measure{
		{Kind: Count}, {Kind: Count, If: PHIAccess}, {Kind: Count, If: PHIModification}, {Kind: Count, If: Failure},
		{Kind: Distinct, Of: DimPatient}, {Kind: Count, If: And(PHIAccess, off)},
		{Kind: Count, If: Emergency}, {Kind: Count, If: BreakGlass}, {Kind: Count, If: Or(PHIFailure, Emergency, BreakGlass)},
	}}, func(gs []Group) {
		for _, gr := range gs {
			v := gr.Values
			pp := PrincipalPHI{PrincipalID: gr.Keys[0], PHIEvents: v[0], Accesses: v[1], Modifications: v[2],
				Failures: v[3], DistinctPatients: v[4], AfterHoursAccesses: v[5]}
			h.ByPrincipal = append(h.ByPrincipal, pp)
			h.PHIEvents += v[0]
			h.PHIAccessEvents += v[1]
			h.PHIModificationEvents += v[2]
			h.UnauthorizedAttempts += v[3]
			h.AfterHoursAccessEvents += v[5]
			h.EmergencyAccess += v[6]
			h.BreakGlassEvents += v[7]
			risk.HighRiskEvents += v[8]
		}
		slices.SortFunc(h.ByPrincipal, func(a, b PrincipalPHI) int {
			if a.PHIEvents != b.PHIEvents {
				return cmp.Compare(b.PHIEvents, a.PHIEvents)
			}
			return strings.Compare(a.PrincipalID, b.PrincipalID)
		})
		for _, pp := range h.ByPrincipal {
			if pp.Accesses > int64(risk.HighVolumeAccessThreshold) {
				risk.Findings = append(risk.Findings, Finding{Type: "HIGH_VOLUME_ACCESS", Severity: "MEDIUM",
					PrincipalID: pp.PrincipalID, Count: pp.Accesses,
					Description: fmt.Sprintf("%d PHI accesses in the period, more than %d", pp.Accesses, risk.HighVolumeAccessThreshold)})
			}
		}
		for _, pp := range h.ByPrincipal {
			if pp.AfterHoursAccesses > 0 {
				risk.Findings = append(risk.Findings, Finding{Type: "AFTER_HOURS_ACCESS", Severity: "LOW",
					PrincipalID: pp.PrincipalID, Count: pp.AfterHoursAccesses,
					Description: fmt.Sprintf("%d PHI accesses in the organisation's off hours", pp.AfterHoursAccesses)})
			}
		}
	})
}

func planGDPR(p *plan, r *Report, record *RecordOfProcessing) {
	gd := &GDPRSpecific{LegalBasisBreakdown: map[string]int64{}}
	if !record.IsZero() {
		gd.RecordOfProcessing = record
	}
	r.GDPR = gd
	conds := []Cond{PersonalData, RightAccess, RightRectification, RightErasure, RightPortability, RightRestriction,
		RightObjection, ConsentEvent, ConsentGiven, ConsentWithdrawn, ConsentUpdated, CrossBorder, DataBreach}
	measures := make([]Measure, len(conds))
	for i, c := range conds {
		measures[i] = Measure{Kind: Count, If: c}
	}
	p.add(Aggregation{Measures: measures}, func(gs []Group) {
		v := gs[0].Values
		gd.PersonalDataEvents = v[0]
		gd.DataSubjectRights = DataSubjectRights{Access: v[1], Rectification: v[2], Erasure: v[3],
			Portability: v[4], Restriction: v[5], Objection: v[6]}
		gd.ConsentEvents = ConsentEvents{Total: v[7], Given: v[8], Withdrawn: v[9], Updated: v[10],
			Other: v[7] - v[8] - v[9] - v[10]}
		gd.CrossBorderTransfers, gd.DataBreaches = v[11], v[12]
	})
	p.add(Aggregation{GroupBy: []Dimension{DimLegalBasis}, Where: PersonalData, Measures: []Measure{{Kind: Count}}},
		func(gs []Group) {
			for _, gr := range gs {
				gd.LegalBasisBreakdown[gr.Keys[0]] += gr.Values[0]
			}
		})
}

// topN is the size of the general report's top tables.
const topN = 20

func planGeneral(p *plan, r *Report) {
	gen := &GeneralSpecific{FailuresByAction: []KeyCount{}, FailuresByPrincipal: []KeyCount{}, TopPrincipals: []KeyCount{},
		TopResources: []ResourceCount{}, AccessRecords: AccessRecords{By: []PrincipalActions{}}}
	r.General = gen
	counts := func(dst *[]KeyCount) func([]Group) {
		return func(gs []Group) {
			for _, gr := range gs {
				*dst = append(*dst, KeyCount{Key: gr.Keys[0], Count: gr.Values[0]})
			}
			sortCounts(*dst)
		}
	}
	count := []Measure{{Kind: Count}}
	p.add(Aggregation{GroupBy: []Dimension{DimAction}, Where: Failure, Measures: count}, counts(&gen.FailuresByAction))
	p.add(Aggregation{GroupBy: []Dimension{DimPrincipal}, Where: Failure, Measures: count}, counts(&gen.FailuresByPrincipal))
	p.add(Aggregation{GroupBy: []Dimension{DimPrincipal}, Where: HasPrincipal(), Measures: count, Top: topN},
		counts(&gen.TopPrincipals))
	p.add(Aggregation{GroupBy: []Dimension{DimResource}, Where: HasResource(), Measures: count, Top: topN},
		func(gs []Group) {
			for _, gr := range gs {
				typ, id, _ := SplitResourceKey(gr.Keys[0])
				gen.TopResources = append(gen.TopResources, ResourceCount{Type: typ, ID: id, Count: gr.Values[0]})
			}
			slices.SortFunc(gen.TopResources, func(a, b ResourceCount) int {
				if a.Count != b.Count {
					return cmp.Compare(b.Count, a.Count)
				}
				return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.ID, b.ID))
			})
		})
	p.add(Aggregation{GroupBy: []Dimension{DimLocalHour}, Measures: count}, func(gs []Group) {
		hours := make([]HourCount, 24)
		for h := range hours {
			hours[h].Hour = h
		}
		for _, gr := range gs {
			if h, err := strconv.Atoi(gr.Keys[0]); err == nil && h >= 0 && h < 24 {
				hours[h].Events += gr.Values[0]
			}
		}
		gen.ActivityByHour = hours
	})
	p.add(Aggregation{GroupBy: []Dimension{DimPrincipal, DimAction}, Where: AccessRecord, Measures: count},
		func(gs []Group) {
			for _, gr := range gs {
				gen.AccessRecords.Total += gr.Values[0]
				gen.AccessRecords.By = append(gen.AccessRecords.By,
					PrincipalActions{PrincipalID: gr.Keys[0], Action: gr.Keys[1], Count: gr.Values[0]})
			}
			slices.SortFunc(gen.AccessRecords.By, func(a, b PrincipalActions) int {
				if a.Count != b.Count {
					return cmp.Compare(b.Count, a.Count)
				}
				if c := strings.Compare(a.PrincipalID, b.PrincipalID); c != 0 {
					return c
				}
				return strings.Compare(a.Action, b.Action)
			})
		})
}

// sortCounts orders by count, highest first, then by key.
func sortCounts(cs []KeyCount) {
	slices.SortFunc(cs, func(a, b KeyCount) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// integrityViolations counts the dead letters refused as integrity
// violations whose event time is in the period. The store selects them by
// reason and organisation; their time is the producer's text, parsed here as
// validation parses it (a dead letter's payload is not a stored row).
func (g *Generator) integrityViolations(ctx context.Context, f Filter) (int64, error) {
	stamps, err := g.opts.Store.IntegrityViolationTimes(ctx, f.Organizations)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range stamps {
		t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
		if err != nil {
			continue
		}
		t = t.Truncate(time.Microsecond)
		if !t.Before(f.From) && t.Before(f.To) {
			n++
		}
	}
	return n, nil
}

// ListedEvents calls fn with each event the report lists, in event-time
// order, up to the listing's limit, reading the store in batches.
func (g *Generator) ListedEvents(ctx context.Context, r *Report, fn func(*audit.StoredEvent) error) error {
	if r.Listed == nil {
		return nil
	}
	return g.scan(ctx, r.filter, r.listCond, int64(r.Listed.Limit), fn)
}

// scanBatch is how many rows one read brings.
const scanBatch = 2000

func (g *Generator) scan(ctx context.Context, f Filter, where Cond, limit int64, fn func(*audit.StoredEvent) error) error {
	var after *audit.Position
	var seen int64
	for seen < limit {
		batch := int(min(int64(scanBatch), limit-seen))
		events, err := g.opts.Store.ReportEvents(ctx, f, where, after, batch)
		if err != nil {
			return err
		}
		for i := range events {
			if err := fn(&events[i]); err != nil {
				return err
			}
		}
		seen += int64(len(events))
		if len(events) < batch {
			return nil
		}
		last := audit.PositionOf(&events[len(events)-1])
		after = &last
	}
	return nil
}

// Names of the inclusion check and the reasons a check cannot be made.
const (
	CheckInclusion  = "inclusion"
	noCheckpointSrc = "no signed checkpoint to check against"
)

// verify recomputes every row of the period: the producer hash, the
// signature, the record hash and, with a checkpoint, its inclusion.
func (g *Generator) verify(ctx context.Context, r *Report) error {
	var key []byte
	if g.opts.HMACKey != nil {
		key = g.opts.HMACKey()
	}
	res := &IntegrityResults{NotVerifiable: map[string]int64{}, Checks: map[string]CheckTally{}}
	r.Results, r.Failures = res, []IntegrityFailure{}
	limit := g.opts.MaxListed
	tally := func(name string, ok, made bool, note string) {
		t := res.Checks[name]
		switch {
		case !made:
			t.NotVerifiable++
			res.NotVerifiable[name+": "+note]++
		case ok:
			t.Checked++
			t.Passed++
		default:
			t.Checked++
			t.Failed++
		}
		res.Checks[name] = t
	}
	err := g.scan(ctx, r.filter, Cond{}, math.MaxInt64, func(e *audit.StoredEvent) error {
		res.TotalEvents++
		v := audit.VerifyStored(e, key)
		checks := v.Checks
		if cp := r.Metadata.Checkpoint; cp != nil {
			c, covered, err := g.opts.Checkpoints.Inclusion(ctx, *cp, e)
			if err != nil {
				return err
			}
			if covered {
				c.Note = "" // made: a failure is in Expected and Found
			} else {
				c = audit.Check{Name: CheckInclusion, OK: true, Note: "the row is newer than the report's checkpoint"}
			}
			checks = append(checks, c)
		} else {
			checks = append(checks, audit.Check{Name: CheckInclusion, OK: true, Note: noCheckpointSrc})
		}
		failed := false
		for _, c := range checks {
			made := c.Note == ""
			tally(c.Name, c.OK, made, c.Note)
			if made && !c.OK {
				failed = true
				res.FailuresTotal++
				if len(r.Failures) < limit {
					r.Failures = append(r.Failures, IntegrityFailure{ID: e.Seq, Timestamp: e.Time.UTC(), Check: c.Name,
						Expected: c.Expected, Found: c.Found})
				}
			}
		}
		if failed {
			res.FailedVerifications++
		} else {
			res.VerifiedEvents++
		}
		return nil
	})
	if err != nil {
		return err
	}
	res.FailuresListed = int64(len(r.Failures))
	if res.TotalEvents > 0 {
		rate := math.Round(float64(res.VerifiedEvents)/float64(res.TotalEvents)*10000) / 100
		res.VerificationRate = &rate
	}
	return nil
}
