package monitor

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// productionMix makes n events shaped like production traffic: 5
// organizations of 30 users, 22 % logins (7 % failed), 18 % patient reads,
// 14 % data reads, 5 % exports, 1 % refused reads, 10 % system events without
// a principal, the rest updates; details of a few hundred bytes; stamped one
// every 50 µs from start (20 000 events a second, a drain's rate).
func productionMix(seed uint64, start time.Time, n int) []audit.Event {
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	out := make([]audit.Event, n)
	for i := range out {
		org := rng.IntN(5)
		user := rng.IntN(30)
		e := audit.Event{
			Time:           start.Add(time.Duration(i) * 50 * time.Microsecond),
			OrganizationID: fmt.Sprintf("org-%d", org),
			PrincipalID:    fmt.Sprintf("org-%d-user-%02d", org, user),
			Status:         audit.StatusSuccess,
			CorrelationID:  fmt.Sprintf("corr-%016x", rng.Uint64()),
			SessionContext: &audit.SessionContext{IPAddress: fmt.Sprintf("10.%d.0.%d", org, 1+user)},
		}
		e.Timestamp = e.Time.Format(time.RFC3339Nano)
		switch p := rng.IntN(100); {
		case p < 15:
			e.Action = "auth.login.success"
		case p < 22:
			e.Action, e.Status, e.OutcomeDescription = "auth.login.failure", audit.StatusFailure, "invalid credentials"
		case p < 40:
			e.Action = "fhir.patient.read"
		case p < 54:
			e.Action = "data.read"
		case p < 59:
			e.Action = "data.export"
		case p < 60:
			e.Action, e.Status, e.OutcomeDescription = "data.read", audit.StatusFailure, "Forbidden: access denied"
		case p < 70:
			e.Action, e.PrincipalID, e.SessionContext = "system.heartbeat", "", nil
		default:
			e.Action = "data.update"
		}
		d := map[string]any{
			"requestPath": fmt.Sprintf("/fhir/R4/Patient/%d", rng.IntN(1_000_000)),
			"clinic":      map[string]any{"site": fmt.Sprintf("site-%02d", rng.IntN(20)), "department": "cardiology"},
			"userAgent":   "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
			"note":        strings.Repeat("x", 80),
		}
		if e.Action == "data.export" {
			d["recordCount"] = 1 + rng.IntN(500)
		}
		e.Details, _ = json.Marshal(d)
		out[i] = e
	}
	return out
}
