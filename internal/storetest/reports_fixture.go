package storetest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/report"
)

// Fixture is report/testdata/fixture.json: events in blocks, dead letters,
// rows to tamper with, and the numbers each report must give, worked out by
// hand.
type Fixture struct {
	TimeZones struct {
		Default string            `json:"default"`
		ByOrg   map[string]string `json:"byOrg"`
	} `json:"timeZones"`
	OffHours    report.HourRange `json:"offHours"`
	HMACKey     string           `json:"hmacKey"`
	Criteria    json.RawMessage  `json:"criteria"`
	Blocks      []FixtureBlock   `json:"blocks"`
	DeadLetters []struct {
		ID      string          `json:"id"`
		Reason  string          `json:"reason"`
		Payload json.RawMessage `json:"payload"`
	} `json:"deadLetters"`
	Tamper []struct {
		Block string `json:"block"`
		Index int    `json:"index"`
		Field string `json:"field"`
	} `json:"tamper"`
	Expected FixtureExpected `json:"expected"`
}

// FixtureBlock is count events made from one template.
type FixtureBlock struct {
	ID    string         `json:"id"`
	Count int            `json:"count"`
	Start string         `json:"start"`
	Step  string         `json:"step"`
	Seal  string         `json:"seal"`
	Event map[string]any `json:"event"`
}

// FixtureExpected are the hand-worked numbers.
type FixtureExpected struct {
	Summary struct {
		report.Summary
		Activity report.Activity `json:"activity"`
	} `json:"summary"`
	HIPAA struct {
		report.HIPAASpecific
		Findings []report.Finding `json:"findings"`
		Listed   int64            `json:"listed"`
	} `json:"hipaa"`
	GDPR struct {
		report.GDPRSpecific
		Listed int64 `json:"listed"`
	} `json:"gdpr"`
	General struct {
		report.GeneralSpecific
		ActivityByHour map[string]int64 `json:"activityByHour"`
		Listed         int64            `json:"listed"`
	} `json:"general"`
	Integrity struct {
		report.IntegrityResults
		Failures []struct {
			Block string `json:"block"`
			Index int    `json:"index"`
			Check string `json:"check"`
		} `json:"failures"`
		IntegrityViolations int64 `json:"integrityViolations"`
	} `json:"integrity"`
}

// LoadFixture reads report/testdata/fixture.json.
func LoadFixture(t testing.TB) *Fixture {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "report", "testdata", "fixture.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f Fixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return &f
}

// Zones are the fixture's time zones.
func (f *Fixture) Zones() report.TimeZones {
	return report.TimeZones{Default: f.TimeZones.Default, ByOrg: f.TimeZones.ByOrg}
}

var templateVar = regexp.MustCompile(`\{i(?:%(\d+))?\}`)

// Payloads renders the events of a block, as the producer would send them.
func (b *FixtureBlock) Payloads(t testing.TB, hmacKey []byte) [][]byte {
	t.Helper()
	start, err := time.Parse(time.RFC3339Nano, b.Start)
	if err != nil {
		t.Fatalf("%s: start: %v", b.ID, err)
	}
	step, err := time.ParseDuration(b.Step)
	if err != nil {
		t.Fatalf("%s: step: %v", b.ID, err)
	}
	out := make([][]byte, b.Count)
	for i := range b.Count {
		fields := map[string]any{}
		for k, v := range b.Event {
			if s, ok := v.(string); ok {
				v = templateVar.ReplaceAllStringFunc(s, func(m string) string {
					mod := templateVar.FindStringSubmatch(m)[1]
					if mod == "" {
						return strconv.Itoa(i)
					}
					n, _ := strconv.Atoi(mod)
					return strconv.Itoa(i % n)
				})
			}
			fields[k] = v
		}
		fields["timestamp"] = b.Start // its text, offset and all
		if step > 0 {
			fields["timestamp"] = start.Add(time.Duration(i) * step).UTC().Format("2006-01-02T15:04:05.000Z")
		}
		data, _ := json.Marshal(fields)
		if b.Seal != "" {
			hash, err := audit.HashPayload(data)
			if err != nil {
				t.Fatal(err)
			}
			fields["hash"], fields["hashAlgorithm"] = hash, "SHA-256"
			if b.Seal == "hash+signature" {
				fields["signature"], fields["algorithm"] = audit.Sign(hash, hmacKey), "HMAC-SHA256"
			}
			data, _ = json.Marshal(fields)
		}
		out[i] = data
	}
	return out
}

// Store parses, verifies and stores the fixture's events and dead letters,
// as the pipeline would, and returns the Seq of each (block, index).
func (f *Fixture) Store(t *testing.T, s audit.EventStore) map[string]int64 {
	t.Helper()
	key := []byte(f.HMACKey)
	now := time.Now()
	seqs := map[string]int64{}
	for _, b := range f.Blocks {
		var recs []audit.Record
		for i, payload := range b.Payloads(t, key) {
			ev, _, err := audit.ParseEvent(payload, audit.DefaultRules(), now)
			if err != nil {
				t.Fatalf("%s[%d]: %v", b.ID, i, err)
			}
			integrity, err := audit.VerifyIntegrity(&ev, key)
			if err != nil {
				t.Fatalf("%s[%d]: %v", b.ID, i, err)
			}
			r := audit.NewRecord(ev, fmt.Sprintf("fixture:%s:%d", b.ID, i), "fixture", integrity, now)
			r.Payload = payload
			recs = append(recs, r)
		}
		for i, res := range store(t, s, audit.Batch{Records: recs}) {
			seqs[fmt.Sprintf("%s[%d]", b.ID, i)] = res.Seq
		}
	}
	var dls []audit.DeadLetter
	for _, d := range f.DeadLetters {
		dls = append(dls, audit.DeadLetter{IdempotencyKey: "fixture-dl:" + d.ID, Source: "fixture", Reason: d.Reason,
			Message: "fixture", Payload: d.Payload, ReceivedAt: now})
	}
	store(t, s, audit.Batch{DeadLetters: dls})
	return seqs
}

// Generator is a report generator over s with the fixture's settings.
func (f *Fixture) Generator(s report.Store) *report.Generator {
	return report.New(report.Options{Store: s, TimeZones: f.Zones(), OffHours: f.OffHours,
		HMACKey: func() []byte { return []byte(f.HMACKey) }})
}

// Request is a report of type typ over the fixture's criteria.
func (f *Fixture) Request(t testing.TB, typ report.Type) report.Request {
	t.Helper()
	c, err := report.ParseCriteria(f.Criteria, 0)
	if err != nil {
		t.Fatal(err)
	}
	return report.Request{Type: typ, Criteria: c, Organizations: c.OrganizationIDs, GeneratedBy: "fixture"}
}

func testReportFixture(t *testing.T, s ReportStore, tamper func(t *testing.T, s ReportStore, seq int64, field string)) {
	f := LoadFixture(t)
	seqs := f.Store(t, s)
	g := f.Generator(s)
	want := &f.Expected
	reports := map[report.Type]*report.Report{}
	// The integrity report runs last, after rows were tampered with (a
	// tampered principal would change the other reports' counts).
	for _, typ := range []report.Type{report.HIPAA, report.GDPR, report.General, report.Integrity} {
		if typ == report.Integrity {
			for _, tp := range f.Tamper {
				tamper(t, s, seqs[fmt.Sprintf("%s[%d]", tp.Block, tp.Index)], tp.Field)
			}
		}
		r, err := g.Generate(ctxFor(t), f.Request(t, typ))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		reports[typ] = r
		if typ != report.Integrity {
			checkSummary(t, typ, r, want)
		}
	}
	same := func(what string, got, want any) {
		t.Helper()
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", what, g, w)
			return
		}
		t.Logf("%s: the report gives %s; worked out by hand: the same", what, g)
	}

	h := reports[report.HIPAA]
	wantH := want.HIPAA.HIPAASpecific
	same("hipaa", *h.HIPAA, wantH)
	var findings []report.Finding
	for _, fd := range h.Risk.Findings {
		findings = append(findings, report.Finding{Type: fd.Type, PrincipalID: fd.PrincipalID, Count: fd.Count})
	}
	same("hipaa findings", findings, want.HIPAA.Findings)
	same("hipaa listed", h.Listed.Total, want.HIPAA.Listed)
	same("hipaa high-risk events", h.Risk.HighRiskEvents, want.HIPAA.Listed)

	gd := reports[report.GDPR]
	same("gdpr", *gd.GDPR, want.GDPR.GDPRSpecific)
	same("gdpr listed", gd.Listed.Total, want.GDPR.Listed)

	gen := reports[report.General]
	wantG := want.General.GeneralSpecific
	wantG.ActivityByHour = make([]report.HourCount, 24)
	for h := range 24 {
		wantG.ActivityByHour[h] = report.HourCount{Hour: h, Events: want.General.ActivityByHour[strconv.Itoa(h)]}
	}
	same("general", *gen.General, wantG)
	same("general listed", gen.Listed.Total, want.General.Listed)

	in := reports[report.Integrity]
	wantI := want.Integrity.IntegrityResults
	wantI.FailuresTotal, wantI.FailuresListed = int64(len(want.Integrity.Failures)), int64(len(want.Integrity.Failures))
	same("integrity results", *in.Results, wantI)
	var failures, wantFailures []string
	for _, fl := range in.Failures {
		failures = append(failures, fmt.Sprintf("%d %s", fl.ID, fl.Check))
		if fl.Expected == fl.Found {
			t.Errorf("integrity failure %d %s: expected and found are both %q", fl.ID, fl.Check, fl.Found)
		}
	}
	for _, fl := range want.Integrity.Failures {
		wantFailures = append(wantFailures, fmt.Sprintf("%d %s", seqs[fmt.Sprintf("%s[%d]", fl.Block, fl.Index)], fl.Check))
	}
	same("integrity failures", failures, wantFailures)
	same("integrity violations", in.Summary.IntegrityViolations, want.Integrity.IntegrityViolations)

	// The listed events are those the listing counts, in time order.
	var listed int64
	var last time.Time
	err := g.ListedEvents(ctxFor(t), h, func(e *audit.StoredEvent) error {
		listed++
		if e.Time.Before(last) || e.OrganizationID != "org-a" {
			t.Errorf("listed event %d out of order or of %q", e.Seq, e.OrganizationID)
		}
		last = e.Time
		if !strings.HasPrefix(e.Action, "fhir.") && !strings.HasPrefix(e.Action, "ehr.") {
			t.Errorf("listed event %d (%s) is not high-risk PHI", e.Seq, e.Action)
		}
		return nil
	})
	if err != nil || listed != want.HIPAA.Listed {
		t.Errorf("hipaa listed %d events (%v), want %d", listed, err, want.HIPAA.Listed)
	}
}

func checkSummary(t *testing.T, typ report.Type, r *report.Report, want *FixtureExpected) {
	t.Helper()
	w := want.Summary.Summary
	got := r.Summary
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		wj, _ := json.Marshal(w)
		t.Errorf("%s summary:\n got %s\nwant %s", typ, g, wj)
	}
	if !reflect.DeepEqual(r.Activity, want.Summary.Activity) {
		g, _ := json.Marshal(r.Activity)
		wj, _ := json.Marshal(want.Summary.Activity)
		t.Errorf("%s activity:\n got %s\nwant %s", typ, g, wj)
	}
	if r.Metadata.DefinitionsVersion != report.DefinitionsVersion || r.Metadata.ReportType != typ {
		t.Errorf("%s metadata: %+v", typ, r.Metadata)
	}
}
