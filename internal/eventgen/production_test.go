package eventgen

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// productionTable is the production profile as the package doc states it, in
// shares of all events (or of the group named), written out independently of
// the generator's own table.
type table struct {
	Actions, Orgs, Reasons map[string]float64
	UsersPerOrg            map[string]int
	Priority, Delay, NAT   float64
	BulkRead               float64 // of data.read
}

var productionTable = table{
	Actions: map[string]float64{
		"auth.login.success": 0.15, "auth.login.failure": 0.07, "auth.logout": 0.06,
		"fhir.patient.read": 0.18, "fhir.observation.read": 0.10, "fhir.encounter.read": 0.07,
		"data.read": 0.14, "data.update": 0.06, "data.create": 0.04, "data.export": 0.05,
		"user.role.changed": 0.02, "user.created": 0.01,
		"system.backup.completed": 0.025, "system.config.changed": 0.015, "system.startup": 0.01,
	},
	Orgs: map[string]float64{
		"org-riverside-health": 0.35, "org-lakeview-clinic": 0.25, "org-northgate-hospital": 0.20,
		"org-harbor-pediatrics": 0.12, "org-summit-imaging": 0.08,
	},
	Reasons: map[string]float64{ // of auth.login.failure
		"invalid_password": 0.70, "unknown_user": 0.15, "mfa_failed": 0.10, "account_locked": 0.05,
	},
	UsersPerOrg: map[string]int{
		"org-riverside-health": 40, "org-lakeview-clinic": 30, "org-northgate-hospital": 25,
		"org-harbor-pediatrics": 20, "org-summit-imaging": 15,
	},
	Priority: 0.05, Delay: 0.005, NAT: 0.10, BulkRead: 0.05,
}

func TestProductionProfileMatchesItsTable(t *testing.T) {
	const n = 20000
	g := NewProfile(Production, 42)
	g.HMACKey = []byte("test-secret-key-for-testing-purposes-only")
	clock := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	g.Now = func() time.Time { return clock }
	tally := NewTally()
	for i := range n {
		payload, opts := g.Job()
		ev, _, err := audit.ParseEvent(payload, audit.DefaultRules(), clock)
		if err != nil {
			t.Fatalf("event %d refused: %v\n%s", i, err, payload)
		}
		if res, err := audit.VerifyIntegrity(&ev, g.HMACKey); err != nil || res.SignatureStatus != audit.SignatureVerified {
			t.Fatalf("event %d does not verify: %+v %v", i, res, err)
		}
		tally.Add(&ev, opts, clock)
	}
	for _, p := range tally.Check(productionTable.shares()) {
		t.Error(p)
	}
	t.Logf("details %d–%d bytes; timestamps %s–%s old", tally.MinDetails, tally.MaxDetails, tally.YoungestAge, tally.OldestAge)
}

// shares puts the table in the form Tally.Check takes.
func (tb table) shares() Shares {
	return Shares{Actions: tb.Actions, Organisations: tb.Orgs, LoginFailureReasons: tb.Reasons, Users: tb.UsersPerOrg,
		Priority: tb.Priority, Delay: tb.Delay, NAT: tb.NAT, BulkRead: tb.BulkRead}
}

// A tally of a generator with another table fails: Check can tell.
func TestTallyRefusesAnotherTable(t *testing.T) {
	g := NewProfile(Production, 3)
	clock := time.Now()
	g.Now = func() time.Time { return clock } // a loaded host must not age the events
	tally := NewTally()
	for range 3000 {
		payload, opts := g.Job()
		ev, _, err := audit.ParseEvent(payload, audit.DefaultRules(), clock)
		if err != nil {
			t.Fatal(err)
		}
		tally.Add(&ev, opts, clock)
	}
	if p := tally.Check(productionTable.shares()); len(p) != 0 {
		t.Fatalf("the right table refused: %v", p)
	}
	other := productionTable.shares()
	other.Actions = maps.Clone(other.Actions)
	other.Actions["fhir.patient.read"], other.Actions["data.read"] = 0.14, 0.18
	other.Users = map[string]int{"org-riverside-health": 41}
	problems := strings.Join(tally.Check(other), "\n")
	for _, want := range []string{"action fhir.patient.read", "action data.read", "org-riverside-health: 40 users seen, want 41"} {
		if !strings.Contains(problems, want) {
			t.Errorf("a table with other shares: problems %q lack %q", problems, want)
		}
	}
}

func TestProductionSharesAreTheTable(t *testing.T) {
	s := ProductionShares()
	for what, pair := range map[string][2]map[string]float64{
		"action": {s.Actions, productionTable.Actions}, "organisation": {s.Organisations, productionTable.Orgs},
		"reason": {s.LoginFailureReasons, productionTable.Reasons},
	} {
		if len(pair[0]) != len(pair[1]) {
			t.Errorf("%s shares: %v, want %v", what, pair[0], pair[1])
		}
		for k, v := range pair[1] {
			if math.Abs(pair[0][k]-v) > 1e-9 {
				t.Errorf("%s %s: share %v, want %v", what, k, pair[0][k], v)
			}
		}
	}
	if s.Priority != productionTable.Priority || s.Delay != productionTable.Delay || s.NAT != productionTable.NAT ||
		s.BulkRead != productionTable.BulkRead || fmt.Sprint(s.Users) != fmt.Sprint(productionTable.UsersPerOrg) {
		t.Errorf("shares %+v, want %+v", s, productionTable)
	}
}

func TestProductionProfileIsSeeded(t *testing.T) {
	clock := time.Now()
	a, b := NewProfile(Production, 7), NewProfile(Production, 7)
	a.Now = func() time.Time { return clock }
	b.Now = a.Now
	for i := range 100 {
		pa, oa := a.Job()
		pb, ob := b.Job()
		if string(pa) != string(pb) || oa != ob {
			t.Fatalf("event %d differs for one seed:\n%s\n%s", i, pa, pb)
		}
	}
}

func TestProfileNames(t *testing.T) {
	for _, p := range []Profile{Synthetic, Production} {
		got, err := ParseProfile(p.String())
		if err != nil || got != p {
			t.Errorf("ParseProfile(%q) = %v, %v", p, got, err)
		}
	}
	if _, err := ParseProfile("uniform"); err == nil {
		t.Error("ParseProfile accepted an unknown name")
	}
}

// Invalid and Tampered work on production events too, system events (no
// session context) included.
func TestProductionInvalidAndTampered(t *testing.T) {
	g := NewProfile(Production, 9)
	now := time.Now()
	for range 300 {
		invalid, code := g.Invalid()
		_, _, err := audit.ParseEvent(invalid, audit.DefaultRules(), now)
		var ve *audit.ValidationError
		if !errors.As(err, &ve) || ve.Errors[0].Code != code {
			t.Fatalf("invalid event: err = %v, want code %s\n%s", err, code, invalid)
		}
		tampered, _, err := audit.ParseEvent(g.Tampered(), audit.DefaultRules(), now)
		if err != nil {
			t.Fatalf("tampered event should still be valid: %v", err)
		}
		if _, err := audit.VerifyIntegrity(&tampered, nil); !audit.IsIntegrityViolation(err) {
			t.Fatalf("tampered event verified: %v", err)
		}
	}
}
