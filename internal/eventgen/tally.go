package eventgen

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Tally counts, over a stream of parsed events and their job options, what
// the production table governs, so that a test can hold any generator (this
// package's, or the Node producer's in e2e/node/lib.mjs) to the table.
type Tally struct {
	N                      int
	Actions, Orgs, Reasons map[string]int
	users                  map[string]map[string]bool // organisation -> its users seen
	userIPs                map[string]map[string]bool // user -> its own addresses seen
	WithSession, NAT       int
	Priority, Delayed      int
	Reads, BulkReads       int
	MinDetails, MaxDetails int
	OldestAge, YoungestAge time.Duration // of the timestamps, against the clock passed to Add
	problems               []string
}

// NewTally returns an empty Tally.
func NewTally() *Tally {
	return &Tally{Actions: map[string]int{}, Orgs: map[string]int{}, Reasons: map[string]int{},
		users: map[string]map[string]bool{}, userIPs: map[string]map[string]bool{},
		MinDetails: math.MaxInt, YoungestAge: math.MaxInt64}
}

func (t *Tally) problem(format string, args ...any) {
	if len(t.problems) < 20 {
		t.problems = append(t.problems, fmt.Sprintf(format, args...))
	}
}

// Add counts one event, stamped when the clock read generatedAt (its
// timestamp must lie 0–2 s before).
func (t *Tally) Add(ev *audit.Event, opts JobOptions, generatedAt time.Time) {
	t.N++
	age := generatedAt.Sub(ev.Time)
	t.OldestAge, t.YoungestAge = max(t.OldestAge, age), min(t.YoungestAge, age)
	t.MinDetails, t.MaxDetails = min(t.MinDetails, len(ev.Details)), max(t.MaxDetails, len(ev.Details))
	t.Actions[ev.Action]++
	t.Orgs[ev.OrganizationID]++
	var details struct {
		Reason      string   `json:"reason"`
		RecordCount *float64 `json:"recordCount"`
	}
	if err := json.Unmarshal(ev.Details, &details); err != nil {
		t.problem("%s: details: %v", ev.Action, err)
	}
	system := strings.HasPrefix(ev.Action, "system.")
	if system != (ev.PrincipalID == "") || system != (ev.SessionContext == nil) {
		t.problem("%s with principal %q and session %v: only system events lack both", ev.Action, ev.PrincipalID, ev.SessionContext)
	}
	switch ev.Action {
	case "auth.login.failure":
		if ev.Status != audit.StatusFailure || ev.OutcomeDescription != "login failed: "+details.Reason {
			t.problem("login failure with status %s, outcome %q, reason %q", ev.Status, ev.OutcomeDescription, details.Reason)
		}
		t.Reasons[details.Reason]++
	case "data.read":
		t.Reads++
		if details.RecordCount == nil {
			t.problem("data.read without recordCount")
		} else if *details.RecordCount > 10 {
			t.BulkReads++
		}
	case "data.export":
		if details.RecordCount == nil {
			t.problem("data.export without recordCount")
		}
	}
	known := ev.PrincipalID != "" && details.Reason != "unknown_user"
	if known {
		if t.users[ev.OrganizationID] == nil {
			t.users[ev.OrganizationID] = map[string]bool{}
		}
		t.users[ev.OrganizationID][ev.PrincipalID] = true
	}
	if sc := ev.SessionContext; sc != nil {
		t.WithSession++
		if !strings.HasPrefix(sc.IPAddress, "10.") {
			t.NAT++
		} else if known {
			if t.userIPs[ev.PrincipalID] == nil {
				t.userIPs[ev.PrincipalID] = map[string]bool{}
			}
			t.userIPs[ev.PrincipalID][sc.IPAddress] = true
		}
	}
	if opts.Priority != 0 {
		t.Priority++
		if opts.Priority < 1 || opts.Priority > 3 {
			t.problem("priority %d, want 1–3", opts.Priority)
		}
	}
	if opts.Delay != 0 {
		t.Delayed++
		if opts.Delay < time.Second || opts.Delay > 5*time.Second {
			t.problem("delay %s, want 1–5 s", opts.Delay)
		}
	}
}

// Check compares the counts with the table and returns what differs: a share
// is accepted within four standard deviations of a binomial draw with the
// table's probability, plus 0.1 percentage point (an honest generator misses
// that about once in 16,000 checks); details must be 200–600 bytes,
// timestamps 0–2 s old (50 ms of slack), each organisation must show exactly its users, each
// user 1–3 addresses of its own.
func (t *Tally) Check(want Shares) []string {
	out := append([]string(nil), t.problems...)
	share := func(what string, count, n int, p float64) {
		if n == 0 {
			out = append(out, what+": nothing counted")
			return
		}
		got := float64(count) / float64(n)
		tol := 4*math.Sqrt(p*(1-p)/float64(n)) + 0.001
		if math.Abs(got-p) > tol {
			out = append(out, fmt.Sprintf("%s: %.4f of %d, want %.4f ± %.4f", what, got, n, p, tol))
		}
	}
	shares := func(what string, counts map[string]int, n int, ps map[string]float64) {
		for name, p := range ps {
			share(what+" "+name, counts[name], n, p)
		}
		for name := range counts {
			if _, ok := ps[name]; !ok {
				out = append(out, fmt.Sprintf("%s %q is not in the table", what, name))
			}
		}
	}
	shares("action", t.Actions, t.N, want.Actions)
	shares("organisation", t.Orgs, t.N, want.Organisations)
	shares("login failure reason", t.Reasons, t.Actions["auth.login.failure"], want.LoginFailureReasons)
	share("events from a shared NAT address (of those with a session)", t.NAT, t.WithSession, want.NAT)
	share("jobs with a priority", t.Priority, t.N, want.Priority)
	share("delayed jobs", t.Delayed, t.N, want.Delay)
	share("data.read above 10 records", t.BulkReads, t.Reads, want.BulkRead)
	for org, n := range want.Users {
		if got := len(t.users[org]); got != n {
			out = append(out, fmt.Sprintf("%s: %d users seen, want %d", org, got, n))
		}
	}
	for u, ips := range t.userIPs {
		if len(ips) > 3 {
			out = append(out, fmt.Sprintf("%s used %d addresses of its own, want 1–3", u, len(ips)))
		}
	}
	if t.MinDetails < 200 || t.MaxDetails > 600 {
		out = append(out, fmt.Sprintf("details are %d to %d bytes, want 200–600", t.MinDetails, t.MaxDetails))
	}
	// 50 ms of slack: the clock is read in milliseconds, and a caller may
	// read generatedAt a moment after the generator did.
	if t.YoungestAge < 0 || t.OldestAge > maxTimestampJitter+50*time.Millisecond {
		out = append(out, fmt.Sprintf("timestamps %s to %s before generation, want 0–2 s", t.YoungestAge, t.OldestAge))
	}
	return out
}
