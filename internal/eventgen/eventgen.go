package eventgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	rng     *rand.Rand
	HMACKey []byte    // when set, events are signed (HMAC-SHA256 over the hash)
	Start   time.Time // Synthetic: timestamps start here and advance 3 ms per event
	// Now is the Production profile's clock: each event is stamped Now()
	// minus 0–2 s of jitter.
	Now     func() time.Time
	n       int
	profile Profile
	prod    *population
}

// New returns a deterministic generator of the Synthetic profile.
func New(seed uint64) *Generator {
	return &Generator{
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		Start: time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond),
	}
}

var actions = []struct {
	action, resource string
}{
	{"auth.login.success", "User"}, {"auth.login.failure", "User"},
	{"fhir.patient.read", "Patient"}, {"fhir.observation.read", "Observation"},
	{"data.read", "DocumentReference"}, {"data.update", "Encounter"},
	{"data.export", "Patient"}, {"system.startup", "Service"},
}

// Fields returns the next valid event as a map, ready to be changed by a test.
func (g *Generator) Fields() map[string]any {
	g.n++
	if g.profile == Production {
		return g.productionFields()
	}
	a := actions[g.rng.IntN(len(actions))]
	status := "success"
	if a.action == "auth.login.failure" {
		status = "failure"
	}
	org := fmt.Sprintf("org-%03d", g.rng.IntN(50))
	ts := g.Start.Add(time.Duration(g.n) * 3 * time.Millisecond)
	class := "INTERNAL"
	if a.resource == "Patient" || a.resource == "Observation" {
		class = "PHI"
	}
	return map[string]any{
		"timestamp":          ts.Format("2006-01-02T15:04:05.000Z"),
		"action":             a.action,
		"status":             status,
		"principalId":        fmt.Sprintf("user-%05d", g.rng.IntN(20000)),
		"organizationId":     org,
		"targetResourceType": a.resource,
		"targetResourceId":   fmt.Sprintf("%s-%08d", a.resource, g.rng.IntN(1_000_000)),
		"outcomeDescription": fmt.Sprintf("%s on %s completed with status %s", a.action, a.resource, status),
		"hashAlgorithm":      "SHA-256",
		"eventVersion":       "1.0",
		"correlationId":      fmt.Sprintf("corr-%016x", g.rng.Uint64()),
		"dataClassification": class,
		"retentionPolicy":    "standard",
		"sessionContext": map[string]any{
			"sessionId": fmt.Sprintf("sess-%012x", g.rng.Uint64()>>16),
			"ipAddress": fmt.Sprintf("10.%d.%d.%d", g.rng.IntN(256), g.rng.IntN(256), 1+g.rng.IntN(254)),
			"userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		},
		"requestPath": fmt.Sprintf("/fhir/R4/%s/%d", a.resource, g.rng.IntN(1_000_000)),
		"clinic":      map[string]any{"site": fmt.Sprintf("site-%02d", g.rng.IntN(20)), "department": "cardiology"},
		"httpMethod":  "GET",
	}
}

// Seal adds the producer hash (and signature, with HMACKey) to fields and encodes them.
func (g *Generator) Seal(fields map[string]any) []byte {
	data, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	hash, err := audit.HashPayload(data)
	if err != nil {
		panic(err)
	}
	fields["hash"] = hash
	if len(g.HMACKey) > 0 {
		fields["signature"] = audit.Sign(hash, g.HMACKey)
		fields["algorithm"] = "HMAC-SHA256"
	}
	data, err = json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	return data
}

// Valid returns the next valid, hashed event as JSON.
func (g *Generator) Valid() []byte { return g.Seal(g.Fields()) }

// Tampered returns a hashed event whose outcome was changed after hashing.
func (g *Generator) Tampered() []byte {
	var fields map[string]any
	if err := json.Unmarshal(g.Valid(), &fields); err != nil {
		panic(err)
	}
	fields["outcomeDescription"] = "changed after hashing"
	data, _ := json.Marshal(fields)
	return data
}

// Invalid returns an event that breaks one validation rule, and the rule's code.
func (g *Generator) Invalid() ([]byte, string) {
	fields := g.Fields()
	var code string
	switch g.rng.IntN(4) {
	case 0:
		delete(fields, "action")
		code = audit.ErrRequiredFieldMissing
	case 1:
		fields["status"] = "maybe"
		code = audit.ErrInvalidValue
	case 2:
		fields["timestamp"] = "26/10/2023 10:30"
		code = audit.ErrInvalidFormat
	default:
		if sc, ok := fields["sessionContext"].(map[string]any); ok {
			sc["ipAddress"] = "999.1.1.1"
		} else { // a system event has no session
			fields["timestamp"] = "2023-10-26 10:30"
		}
		code = audit.ErrInvalidFormat
	}
	data, _ := json.Marshal(fields)
	return data, code
}

// Records returns n valid records with distinct keys, as the pipeline would build them.
func (g *Generator) Records(n int, source string) []audit.Record {
	out := make([]audit.Record, n)
	now := time.Now()
	for i := range out {
		payload := g.Valid()
		ev, _, err := audit.ParseEvent(payload, audit.DefaultRules(), now)
		if err != nil {
			panic(err)
		}
		integrity, err := audit.VerifyIntegrity(&ev, g.HMACKey)
		if err != nil {
			panic(err)
		}
		key := fmt.Sprintf("%s:%d:%016x", source, g.n, g.rng.Uint64())
		out[i] = audit.NewRecord(ev, key, source, integrity, now)
	}
	return out
}
