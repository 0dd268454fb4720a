package eventgen

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Profile selects the distribution a Generator draws events from.
type Profile int

const (
	// Synthetic is the uniform mix New has always made: 8 actions, 50
	// organisations, 20,000 principals, timestamps 3 ms apart from an hour ago.
	Synthetic Profile = iota
	// Production is shaped like a real producer's traffic (see the package
	// doc): few organisations, principals that repeat, timestamps of now.
	Production
)

// String names the profile as the benchmark harness and the Node scripts do.
func (p Profile) String() string {
	if p == Production {
		return "production"
	}
	return "synthetic"
}

// ParseProfile reads a profile name ("production" or "synthetic").
func ParseProfile(name string) (Profile, error) {
	switch name {
	case "production":
		return Production, nil
	case "synthetic":
		return Synthetic, nil
	}
	return 0, fmt.Errorf("eventgen: unknown profile %q (want production or synthetic)", name)
}

// NewProfile returns a deterministic generator of the given profile: the
// same seed gives the same events, apart from the timestamps of Production,
// which follow the clock.
func NewProfile(p Profile, seed uint64) *Generator {
	g := New(seed)
	g.profile = p
	if p == Production {
		g.Now = time.Now
		g.prod = newPopulation(g.rng)
	}
	return g
}

// JobOptions are the BullMQ options a producer adds one event with; the
// zero value is a plain job.
type JobOptions struct {
	Priority int           // 0: none; otherwise 1 (highest) to 3
	Delay    time.Duration // 0: not delayed
}

// Job returns the next valid, hashed event as JSON with the options to add it
// with. Synthetic events always come with plain options.
func (g *Generator) Job() ([]byte, JobOptions) {
	payload := g.Valid()
	if g.profile != Production {
		return payload, JobOptions{}
	}
	var o JobOptions
	if g.rng.Float64() < productionPriorityShare {
		o.Priority = 1 + g.rng.IntN(3)
	}
	if g.rng.Float64() < productionDelayShare {
		o.Delay = time.Second + time.Duration(g.rng.Int64N(int64(4*time.Second)))
	}
	return payload, o
}

// The production profile's table; the package doc repeats it, and the tests
// check the generated frequencies against their own copy of it.
const (
	productionPriorityShare = 0.05  // jobs with a priority (1–3)
	productionDelayShare    = 0.005 // delayed jobs (1–5 s)
	productionNATShare      = 0.10  // events from a shared NAT address
	productionBulkReadShare = 0.05  // data.read events above the bulk threshold
	productionBulkExport    = 0.20  // data.export events above it
	maxTimestampJitter      = 2 * time.Second
)

type family struct {
	action, resource, status, class, method string
	weight                                  int // per mille
}

// families: the actions and their shares; system events carry no principal.
var families = []family{
	{"auth.login.success", "User", "success", "INTERNAL", "POST", 150},
	{"auth.login.failure", "User", "failure", "INTERNAL", "POST", 70},
	{"auth.logout", "User", "success", "INTERNAL", "POST", 60},
	{"fhir.patient.read", "Patient", "success", "PHI", "GET", 180},
	{"fhir.observation.read", "Observation", "success", "PHI", "GET", 100},
	{"fhir.encounter.read", "Encounter", "success", "PHI", "GET", 70},
	{"data.read", "DocumentReference", "success", "CONFIDENTIAL", "GET", 140},
	{"data.update", "DocumentReference", "success", "CONFIDENTIAL", "PUT", 60},
	{"data.create", "DocumentReference", "success", "CONFIDENTIAL", "POST", 40},
	{"data.export", "Patient", "success", "PHI", "POST", 50},
	{"user.role.changed", "User", "success", "INTERNAL", "PATCH", 20},
	{"user.created", "User", "success", "INTERNAL", "POST", 10},
	{"system.backup.completed", "Service", "success", "INTERNAL", "", 25},
	{"system.config.changed", "Service", "success", "INTERNAL", "", 15},
	{"system.startup", "Service", "success", "INTERNAL", "", 10},
}

type weighted struct {
	name   string
	weight int // per mille
}

// loginFailureReasons: why a failed login failed.
var loginFailureReasons = []weighted{
	{"invalid_password", 700}, {"unknown_user", 150}, {"mfa_failed", 100}, {"account_locked", 50},
}

type organisation struct {
	id, slug string
	weight   int // per mille
	users    int
}

var organisations = []organisation{
	{"org-riverside-health", "riverside", 350, 40},
	{"org-lakeview-clinic", "lakeview", 250, 30},
	{"org-northgate-hospital", "northgate", 200, 25},
	{"org-harbor-pediatrics", "harbor", 120, 20},
	{"org-summit-imaging", "summit", 80, 15},
}

// natAddresses are shared by users of every organisation (a carrier or VPN
// gateway in front of many clients).
var natAddresses = []string{"203.0.113.10", "203.0.113.11", "198.51.100.7", "2001:db8:ffff::1"}

var (
	departments = []string{"cardiology", "oncology", "radiology", "emergency", "pediatrics", "general-medicine"}
	userAgents  = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"smart-on-fhir-client/2.3.1 (+node 20)",
		"EHRDesktop/11.4 (Windows 10; build 19045)",
	}
	exportFormats  = []string{"ndjson", "csv", "pdf"}
	systemTriggers = []string{"scheduler", "deploy-pipeline", "operator-console"}
	roles          = []string{"clinician", "nurse", "front-desk", "billing", "admin"}
)

// user is one principal with the addresses its clients use.
type user struct {
	id, agent, site, department string
	ips                         []string
}

// population is the production profile's fixed cast, drawn once per generator.
type population struct {
	users    [][]user // by organisation
	orgCum   []int
	famCum   []int
	reasonCm []int
}

func cumulative(ws []int) []int {
	out := make([]int, len(ws))
	sum := 0
	for i, w := range ws {
		sum += w
		out[i] = sum
	}
	return out
}

// pick returns the index whose cumulative weight range holds a uniform draw.
func pick(rng *rand.Rand, cum []int) int {
	x := rng.IntN(cum[len(cum)-1])
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	return len(cum) - 1
}

func newPopulation(rng *rand.Rand) *population {
	p := &population{}
	var ow, fw, rw []int
	for _, o := range organisations {
		ow = append(ow, o.weight)
		us := make([]user, o.users)
		for i := range us {
			u := user{
				id:         fmt.Sprintf("%s.u%03d", o.slug, i+1),
				agent:      userAgents[rng.IntN(len(userAgents))],
				site:       fmt.Sprintf("%s-site-%d", o.slug, 1+rng.IntN(3)),
				department: departments[rng.IntN(len(departments))],
			}
			for range 1 + rng.IntN(3) {
				u.ips = append(u.ips, fmt.Sprintf("10.%d.%d.%d", 10+len(p.users), rng.IntN(64), 1+rng.IntN(254)))
			}
			us[i] = u
		}
		p.users = append(p.users, us)
	}
	for _, f := range families {
		fw = append(fw, f.weight)
	}
	for _, r := range loginFailureReasons {
		rw = append(rw, r.weight)
	}
	p.orgCum, p.famCum, p.reasonCm = cumulative(ow), cumulative(fw), cumulative(rw)
	return p
}

// productionFields draws one event of the production profile.
func (g *Generator) productionFields() map[string]any {
	p, rng := g.prod, g.rng
	fam := families[pick(rng, p.famCum)]
	oi := pick(rng, p.orgCum)
	org := organisations[oi]
	u := p.users[oi][rng.IntN(len(p.users[oi]))]
	ts := g.Now().UTC().Add(-time.Duration(rng.Int64N(int64(maxTimestampJitter) + 1))).Truncate(time.Millisecond)
	fields := map[string]any{
		"timestamp":          ts.Format("2006-01-02T15:04:05.000Z"),
		"action":             fam.action,
		"status":             fam.status,
		"organizationId":     org.id,
		"targetResourceType": fam.resource,
		"hashAlgorithm":      "SHA-256",
		"eventVersion":       "1.0",
		"correlationId":      fmt.Sprintf("corr-%016x", rng.Uint64()),
		"dataClassification": fam.class,
		"retentionPolicy":    "standard",
	}
	if fam.method == "" { // a system event: no principal, no session
		fields["targetResourceId"] = "audit-gateway"
		fields["outcomeDescription"] = fmt.Sprintf("%s on %s", fam.action, "audit-gateway")
		fields["host"] = fmt.Sprintf("gw-%d.%s.internal", 1+rng.IntN(3), org.slug)
		fields["service"] = map[string]any{"name": "audit-gateway", "version": fmt.Sprintf("3.%d.%d", rng.IntN(5), rng.IntN(20)),
			"commit": fmt.Sprintf("%016x%08x", rng.Uint64(), rng.Uint32()), "region": "eu-west-1", "environment": "production"}
		fields["triggeredBy"] = systemTriggers[rng.IntN(len(systemTriggers))]
		switch fam.action {
		case "system.backup.completed":
			fields["backup"] = map[string]any{"target": "s3://backups/" + org.slug, "sizeBytes": 1 << 30 * (1 + rng.IntN(40)), "durationMs": 30000 + rng.IntN(600000)}
		case "system.config.changed":
			fields["change"] = map[string]any{"key": "retention.days", "from": 2555, "to": 2920, "ticket": fmt.Sprintf("CHG-%05d", rng.IntN(100000))}
		default:
			fields["startup"] = map[string]any{"pid": 1000 + rng.IntN(60000), "bootMs": 800 + rng.IntN(4000)}
		}
		return fields
	}
	ip := u.ips[rng.IntN(len(u.ips))]
	if rng.Float64() < productionNATShare {
		ip = natAddresses[rng.IntN(len(natAddresses))]
	}
	principal := u.id
	fields["sessionContext"] = map[string]any{
		"sessionId": fmt.Sprintf("sess-%012x", rng.Uint64()>>16),
		"ipAddress": ip,
		"userAgent": u.agent,
	}
	fields["httpMethod"] = fam.method
	fields["clinic"] = map[string]any{"site": u.site, "department": u.department}
	fields["client"] = map[string]any{"appId": "ehr-web", "version": fmt.Sprintf("11.%d.%d", rng.IntN(5), rng.IntN(30))}
	id := fmt.Sprintf("%08d", rng.IntN(10_000_000))
	switch fam.resource {
	case "User":
		fields["targetResourceId"] = u.id
		fields["requestPath"] = "/auth/session"
	default:
		fields["targetResourceId"] = fam.resource + "-" + id
		fields["requestPath"] = fmt.Sprintf("/fhir/R4/%s/%s", fam.resource, id)
	}
	outcome := fmt.Sprintf("%s on %s %s", fam.action, fam.resource, fields["targetResourceId"])
	switch fam.action {
	case "auth.login.failure":
		reason := loginFailureReasons[pick(rng, p.reasonCm)].name
		if reason == "unknown_user" {
			// A name nobody in the organisation has: the attempt, not a user.
			principal = fmt.Sprintf("%s.u%03d", org.slug, org.users+1+rng.IntN(200))
			fields["targetResourceId"] = principal
		}
		outcome = "login failed: " + reason
		fields["reason"] = reason
		fields["attempt"] = 1 + rng.IntN(5)
	case "auth.login.success":
		fields["mfa"] = map[string]any{"method": "totp", "verified": true}
	case "data.read":
		fields["recordCount"] = readRecordCount(rng)
		fields["query"] = "patient=" + id + "&_count=50&_sort=-date"
	case "data.export":
		fields["recordCount"] = exportRecordCount(rng)
		fields["format"] = exportFormats[rng.IntN(len(exportFormats))]
		fields["purpose"] = "care-coordination"
	case "user.role.changed":
		fields["targetResourceId"] = fmt.Sprintf("%s.u%03d", org.slug, 1+rng.IntN(org.users))
		fields["role"] = map[string]any{"from": roles[rng.IntN(len(roles))], "to": roles[rng.IntN(len(roles))]}
	case "user.created":
		fields["targetResourceId"] = fmt.Sprintf("%s.u%03d", org.slug, org.users+1+rng.IntN(1000))
		fields["role"] = map[string]any{"to": roles[rng.IntN(len(roles))]}
	}
	fields["principalId"] = principal
	fields["outcomeDescription"] = outcome
	return fields
}

// readRecordCount: most reads return one page of a few records; 5 % return
// more than the bulk threshold (10 records).
func readRecordCount(rng *rand.Rand) int {
	if rng.Float64() < productionBulkReadShare {
		return 11 + rng.IntN(490)
	}
	return 1 + rng.IntN(10)
}

// exportRecordCount: exports are mostly small (1–10 records), 20 % are bulk
// (up to 50,000 records). Every data.export counts as bulk for the
// BULK_OPERATION detector anyway, by its action.
func exportRecordCount(rng *rand.Rand) int {
	if rng.Float64() < productionBulkExport {
		return 11 + rng.IntN(50000)
	}
	return 1 + rng.IntN(10)
}

// Shares is the production profile's table as probabilities: of all events
// (Actions, Organisations, Priority, Delay), of login failures
// (LoginFailureReasons), of events with a session (NAT) and of data.read
// events (BulkRead: recordCount above 10). Users is each organisation's
// number of users.
type Shares struct {
	Actions, Organisations, LoginFailureReasons map[string]float64
	Users                                       map[string]int
	Priority, Delay, NAT, BulkRead              float64
}

// ProductionShares returns the table the Production profile draws from, for
// tests that check another generator (the Node producer's) against it.
func ProductionShares() Shares {
	s := Shares{Actions: map[string]float64{}, Organisations: map[string]float64{}, LoginFailureReasons: map[string]float64{},
		Users: map[string]int{}, Priority: productionPriorityShare, Delay: productionDelayShare, NAT: productionNATShare,
		BulkRead: productionBulkReadShare}
	for _, f := range families {
		s.Actions[f.action] = float64(f.weight) / 1000
	}
	for _, o := range organisations {
		s.Organisations[o.id] = float64(o.weight) / 1000
		s.Users[o.id] = o.users
	}
	for _, r := range loginFailureReasons {
		s.LoginFailureReasons[r.name] = float64(r.weight) / 1000
	}
	return s
}
