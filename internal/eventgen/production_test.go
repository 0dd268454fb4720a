package eventgen

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// productionTable is the production profile as the package doc states it, in
// shares of all events (or of the group named), written out independently of
// the generator's own table.
var productionTable = struct {
	Actions, Orgs, Reasons map[string]float64
	UsersPerOrg            map[string]int
	Priority, Delay, NAT   float64
	BulkRead               float64 // of data.read
}{
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

// checkShare fails unless count/n is within four standard deviations of a
// binomial draw with probability want (plus 0.1 percentage point), a bound
// an honest generator misses about once in 16,000 checks.
func checkShare(t *testing.T, what string, count, n int, want float64) {
	t.Helper()
	got := float64(count) / float64(n)
	tol := 4*math.Sqrt(want*(1-want)/float64(n)) + 0.001
	if math.Abs(got-want) > tol {
		t.Errorf("%s: %.4f of %d, want %.4f ± %.4f", what, got, n, want, tol)
	}
}

func TestProductionProfileMatchesItsTable(t *testing.T) {
	const n = 20000
	g := NewProfile(Production, 42)
	g.HMACKey = []byte("test-secret-key-for-testing-purposes-only")
	clock := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	g.Now = func() time.Time { return clock }
	actions, orgs, reasons := map[string]int{}, map[string]int{}, map[string]int{}
	users := map[string]map[string]bool{}       // organisation -> its users seen
	userIPs := map[string]map[string]bool{}     // user -> its own addresses seen
	var withSession, nat, priority, delayed int // counts
	var reads, bulkReads int
	minDetails, maxDetails := math.MaxInt, 0
	for i := range n {
		payload, opts := g.Job()
		ev, _, err := audit.ParseEvent(payload, audit.DefaultRules(), clock)
		if err != nil {
			t.Fatalf("event %d refused: %v\n%s", i, err, payload)
		}
		if res, err := audit.VerifyIntegrity(&ev, g.HMACKey); err != nil || res.SignatureStatus != audit.SignatureVerified {
			t.Fatalf("event %d does not verify: %+v %v", i, res, err)
		}
		if age := clock.Sub(ev.Time); age < 0 || age > 2*time.Second {
			t.Fatalf("event %d stamped %s, %s before the clock; want 0–2 s", i, ev.Timestamp, age)
		}
		minDetails, maxDetails = min(minDetails, len(ev.Details)), max(maxDetails, len(ev.Details))
		actions[ev.Action]++
		orgs[ev.OrganizationID]++
		var details struct {
			Reason      string   `json:"reason"`
			RecordCount *float64 `json:"recordCount"`
		}
		if err := json.Unmarshal(ev.Details, &details); err != nil {
			t.Fatalf("event %d details: %v", i, err)
		}
		system := strings.HasPrefix(ev.Action, "system.")
		if system != (ev.PrincipalID == "") || system != (ev.SessionContext == nil) {
			t.Fatalf("event %d (%s): principal %q, session %v; want neither exactly for system events", i, ev.Action, ev.PrincipalID, ev.SessionContext)
		}
		switch ev.Action {
		case "auth.login.failure":
			if ev.Status != audit.StatusFailure || ev.OutcomeDescription != "login failed: "+details.Reason {
				t.Fatalf("event %d: login failure with status %s, outcome %q, reason %q", i, ev.Status, ev.OutcomeDescription, details.Reason)
			}
			reasons[details.Reason]++
		case "data.read":
			reads++
			if details.RecordCount == nil {
				t.Fatalf("event %d: data.read without recordCount", i)
			}
			if *details.RecordCount > 10 {
				bulkReads++
			}
		case "data.export":
			if details.RecordCount == nil {
				t.Fatalf("event %d: data.export without recordCount", i)
			}
		}
		if ev.PrincipalID != "" && details.Reason != "unknown_user" {
			if users[ev.OrganizationID] == nil {
				users[ev.OrganizationID] = map[string]bool{}
			}
			users[ev.OrganizationID][ev.PrincipalID] = true
		}
		if sc := ev.SessionContext; sc != nil {
			withSession++
			if !strings.HasPrefix(sc.IPAddress, "10.") {
				nat++
			} else if details.Reason != "unknown_user" {
				if userIPs[ev.PrincipalID] == nil {
					userIPs[ev.PrincipalID] = map[string]bool{}
				}
				userIPs[ev.PrincipalID][sc.IPAddress] = true
			}
		}
		if opts.Priority != 0 {
			priority++
			if opts.Priority < 1 || opts.Priority > 3 {
				t.Fatalf("event %d: priority %d, want 1–3", i, opts.Priority)
			}
		}
		if opts.Delay != 0 {
			delayed++
			if opts.Delay < time.Second || opts.Delay > 5*time.Second {
				t.Fatalf("event %d: delay %s, want 1–5 s", i, opts.Delay)
			}
		}
	}
	if minDetails < 200 || maxDetails > 600 {
		t.Errorf("details are %d to %d bytes, want 200–600", minDetails, maxDetails)
	}
	checkShares(t, "action", actions, n, productionTable.Actions)
	checkShares(t, "organisation", orgs, n, productionTable.Orgs)
	checkShares(t, "login failure reason", reasons, actions["auth.login.failure"], productionTable.Reasons)
	for org, want := range productionTable.UsersPerOrg {
		if got := len(users[org]); got != want {
			t.Errorf("%s: %d users seen, want %d", org, got, want)
		}
	}
	for u, ips := range userIPs {
		if len(ips) > 3 {
			t.Errorf("%s used %d own addresses, want 1–3", u, len(ips))
		}
	}
	checkShare(t, "events from a shared NAT address (of those with a session)", nat, withSession, productionTable.NAT)
	checkShare(t, "jobs with a priority", priority, n, productionTable.Priority)
	checkShare(t, "delayed jobs", delayed, n, productionTable.Delay)
	checkShare(t, "data.read above 10 records", bulkReads, reads, productionTable.BulkRead)
	t.Logf("details %d–%d bytes; %d users with their own addresses", minDetails, maxDetails, len(userIPs))
}

// checkShares checks each name's share of n against want, and that nothing
// outside want was drawn.
func checkShares(t *testing.T, what string, counts map[string]int, n int, want map[string]float64) {
	t.Helper()
	for name, share := range want {
		checkShare(t, fmt.Sprintf("%s %s", what, name), counts[name], n, share)
	}
	for name := range counts {
		if _, ok := want[name]; !ok {
			t.Errorf("%s %q is not in the table", what, name)
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
