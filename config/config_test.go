package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The sample configuration of the original worker's README must keep working.
func TestSeedReadmeConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "seed-readme.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.UsesPostgres() || c.EnhancedClient.MaxConnections != 20 {
		t.Errorf("enhancedClient not read: %+v", c.EnhancedClient)
	}
	if c.HTTP.Address != ":3001" || c.ReliableProcessor.DeadLetterConfig.QueueName != "audit-events-failed" {
		t.Errorf("defaults or worker section wrong: address %q, dlq %q", c.HTTP.Address, c.ReliableProcessor.DeadLetterConfig.QueueName)
	}
	if c.Security.EncryptionKey != "your-256-bit-encryption-key-here" {
		t.Errorf("security.encryptionKey = %q", c.Security.EncryptionKey)
	}
}

func TestDefaultIsEmbeddedAndValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.UsesPostgres() || c.HTTP.Address != "127.0.0.1:3001" || c.SQLitePath() != filepath.Join("audit-data", "audit.db") {
		t.Errorf("default = %+v", c)
	}
}

func TestInvalidConfigNamesFieldAndRule(t *testing.T) {
	tests := []struct{ doc, field, rule string }{
		{`{"enhancedClient":{"connectionString":"mysql://x"}}`, "enhancedClient.connectionString", "postgres://"},
		{`{"security":{"encryptionKey":"short"}}`, "security.encryptionKey", "at least 32"},
		{`{"worker":{"port":70000}}`, "worker.port", "between 1 and 65535"},
		{`{"reliableProcessor":{"queueName":"bad name"}}`, "reliableProcessor.queueName", "must match"},
		{`{"http":{"apiKeys":["tiny"]}}`, "http.apiKeys[0]", "at least 16"},
		{`{"logging":{"level":"loud"}}`, "logging.level", "one of"},
		{`{"worker":{"port":"3001"}}`, "worker.port", "must be an integer"},
		{`{"environment":"prod"}`, "environment", "one of development, staging, production, test"},
		{`{"monitoring":{"alertThresholds":{"errorRate":1.5}}}`, "monitoring.alertThresholds.errorRate", "between 0 and 1 (is 1.5)"},
		{`{"monitoring":{"alertThresholds":{"memoryUsage":0.05}}}`, "monitoring.alertThresholds.memoryUsage", "between 0.1 and 1"},
		{`{"monitoring":{"alertThresholds":{"queueDepth":0}}}`, "monitoring.alertThresholds.queueDepth", "at least 1 (is 0)"},
		{`{"monitoring":{"patternDetection":{"offHoursStart":24}}}`, "monitoring.patternDetection.offHoursStart", "between 0 and 23"},
		{`{"monitoring":{"patternDetection":{"state":"shared"}}}`, "monitoring.patternDetection.state", "one of auto, redis, memory"},
		{`{"monitoring":{"patternDetection":{"state":"redis"}}}`, "monitoring.patternDetection.state", "needs a Redis"},
		{`{"reliableProcessor":{"deadLetterConfig":{"alertThreshold":1001}}}`, "reliableProcessor.deadLetterConfig.alertThreshold", "between 1 and 1000"},
		{`{"redis":{"clusterNodes":["node-1"]}}`, "redis.clusterNodes[0]", "host:port"},
		{`{"http":{"address":"localhost"}}`, "http.address", "host:port"},
		{`{"http":{"apiKeys":["0123456789abcdef", " key-with-a-leading-space"]}}`, "http.apiKeys[1]", "must not begin or end with whitespace"},
		{`{"http":{"apiKeys":["key-with-a-trailing-newline\n"]}}`, "http.apiKeys[0]", "must not begin or end with whitespace"},
		{`{"http":{"apiKeys":["key-with-a-trailing-nbsp\u00a0"]}}`, "http.apiKeys[0]", "must not begin or end with whitespace"},
		{`{"http":{"maxBodyBytes":16777216,"maxInFlightBytes":8388608}}`, "http.maxInFlightBytes", "must be at least http.maxBodyBytes (16777216)"},
		{`{"http":{"maxInFlightBytes":1000}}`, "http.maxInFlightBytes", "between 1048576 and 68719476736 (is 1000)"},
		{`{"storage":{"deadLetters":{"maxBytes":-5}}}`, "storage.deadLetters.maxBytes", "between 0 and 1099511627776 (is -5)"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.doc))
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: err = %v, want a config error", tt.doc, err)
			continue
		}
		found := false
		for _, p := range ce.Problems {
			if p.Field == tt.field && strings.Contains(p.Rule, tt.rule) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: problems %+v, want %s %q", tt.doc, ce.Problems, tt.field, tt.rule)
		}
	}
}

func TestLoadReportsUnreadableAndMalformedFiles(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file loaded")
	}
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte(`{"worker":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("malformed file: %v", err)
	}
}

func TestMaxStalledCountZeroIsKept(t *testing.T) {
	c, err := Parse([]byte(`{"reliableProcessor":{"maxStalledCount":0}}`))
	if err != nil || *c.ReliableProcessor.MaxStalledCount != 0 {
		t.Fatalf("maxStalledCount 0: %v, %v", c.ReliableProcessor.MaxStalledCount, err)
	}
	c, _ = Parse([]byte(`{}`))
	if *c.ReliableProcessor.MaxStalledCount != 1 {
		t.Errorf("default maxStalledCount = %d, want 1", *c.ReliableProcessor.MaxStalledCount)
	}
}

// A file is refused with every broken rule listed at once, each as "field: rule".
func TestEveryBrokenRuleIsListed(t *testing.T) {
	_, err := Parse([]byte(`{"redis":{"port":70000},"worker":{"port":"x","shutdownTimeout":5},"logging":{"level":"loud"}}`))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a config error", err)
	}
	want := []string{
		"worker.port: must be an integer",
		"redis.port: must be between 1 and 65535 (is 70000)",
		"worker.shutdownTimeout: must be between 1000 and 600000 (is 5)",
		`logging.level: must be one of debug, info, warn, error (is "loud")`,
	}
	if len(ce.Problems) != len(want) {
		t.Errorf("problems = %v, want %d", ce.Problems, len(want))
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestProductionRules(t *testing.T) {
	const goodKey = "k3y-0f-the-producers-hmac-at-least-32-chars"
	bad := `{"environment":"production",
		"enhancedClient":{"connectionString":"postgresql://audit:pw@db:5432/audit?sslmode=prefer"},
		"security":{"encryptionKey":"your-256-bit-encryption-key-here-padded"},
		"logging":{"level":"debug"}}`
	_, err := Parse([]byte(bad))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a config error", err)
	}
	got := map[string]string{}
	for _, p := range ce.Problems {
		got[p.Field] = p.Rule
	}
	for field, rule := range map[string]string{
		"enhancedClient.connectionString": "must require TLS in production",
		"security.encryptionKey":          "must not be a placeholder",
		"logging.level":                   "must not be debug in production",
	} {
		if !strings.Contains(got[field], rule) {
			t.Errorf("%s: %q, want %q (all: %v)", field, got[field], rule, ce.Problems)
		}
	}
	if strings.Contains(err.Error(), "your-256-bit") || strings.Contains(err.Error(), ":pw@") {
		t.Errorf("the error shows a secret: %v", err)
	}

	for _, tt := range []struct{ name, doc, field string }{
		{"no key", `{"environment":"production"}`, "security.encryptionKey"},
		{"changeme", `{"environment":"production","security":{"encryptionKey":"CHANGEME-CHANGEME-CHANGEME-CHANGEME"}}`, "security.encryptionKey"},
		{"example", `{"environment":"production","security":{"encryptionKey":"an-example-key-that-is-long-enough-to-pass"}}`, "security.encryptionKey"},
		{"no sslmode", `{"environment":"production","security":{"encryptionKey":"` + goodKey + `"},"enhancedClient":{"connectionString":"postgres://db/audit"}}`, "enhancedClient.connectionString"},
		{"disable after require", `{"environment":"production","security":{"encryptionKey":"` + goodKey + `"},"enhancedClient":{"connectionString":"postgres://db/audit?sslmode=require&sslmode=disable"}}`, "enhancedClient.connectionString"},
	} {
		_, err := Parse([]byte(tt.doc))
		if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Field != tt.field {
			t.Errorf("%s: %v, want one problem on %s", tt.name, err, tt.field)
		}
	}

	for _, mode := range []string{"require", "verify-ca", "verify-full"} {
		good := `{"environment":"production","security":{"encryptionKey":"` + goodKey + `"},
			"enhancedClient":{"connectionString":"postgresql://audit@db:5432/audit?application_name=w&sslmode=` + mode + `"}}`
		if _, err := Parse([]byte(good)); err != nil {
			t.Errorf("sslmode=%s: %v", mode, err)
		}
	}
	// Outside production the seed's sample key and plain connections stay accepted.
	if _, err := Parse([]byte(`{"environment":"staging","security":{"encryptionKey":"your-256-bit-encryption-key-here"},"logging":{"level":"debug"}}`)); err != nil {
		t.Errorf("staging: %v", err)
	}
}

func TestMonitoringAndEnvironmentDefaults(t *testing.T) {
	c, err := Parse([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Monitoring{
		Enabled:             true,
		AlertThresholds:     AlertThresholds{ErrorRate: 0.1, QueueDepth: 100, ProcessingLatency: 5000, MemoryUsage: 0.8},
		HealthCheckInterval: 30000,
		PatternDetection: PatternDetection{
			FailedAuthThreshold: 5, FailedAuthTimeWindow: 300000,
			UnauthorizedAccessThreshold: 3, UnauthorizedAccessTimeWindow: 600000,
			DataAccessVelocityThreshold: 50, DataAccessTimeWindow: 60000,
			BulkOperationThreshold: 100, BulkOperationTimeWindow: 300000,
			OffHoursStart: 22, OffHoursEnd: 6,
			LateEventToleranceMs: 300000, MaxTrackedKeys: 100000, TimeZone: "UTC", State: "auto",
		},
	}
	if !reflect.DeepEqual(c.Monitoring, want) || c.Environment != "development" {
		t.Errorf("defaults: environment %q, monitoring %+v", c.Environment, c.Monitoring)
	}
	if d := Default(); !reflect.DeepEqual(d.Monitoring, want) || d.Environment != "development" {
		t.Errorf("Default(): environment %q, monitoring %+v", d.Environment, d.Monitoring)
	}

	seed, err := Load(filepath.Join("testdata", "seed-readme.json"))
	if err != nil {
		t.Fatal(err)
	}
	if a := seed.Monitoring.AlertThresholds; a != (AlertThresholds{ErrorRate: 0.05, QueueDepth: 1000, ProcessingLatency: 5000, MemoryUsage: 0.8}) {
		t.Errorf("seed alertThresholds = %+v", a)
	}
}

// A value the file writes is kept as written, even when it is the zero value:
// 0 is a valid error rate, hour and clock skew, not a request for the default.
func TestExplicitZeroIsKept(t *testing.T) {
	c, err := Parse([]byte(`{"monitoring":{"alertThresholds":{"errorRate":0},"patternDetection":{"offHoursStart":0,"offHoursEnd":0}},
		"validation":{"maxFutureSkewMs":0}}`))
	if err != nil {
		t.Fatal(err)
	}
	pd := c.Monitoring.PatternDetection
	if c.Monitoring.AlertThresholds.ErrorRate != 0 || pd.OffHoursStart != 0 || pd.OffHoursEnd != 0 || c.Validation.MaxFutureSkewMs != 0 {
		t.Errorf("zeros replaced: %+v, skew %d", c.Monitoring, c.Validation.MaxFutureSkewMs)
	}
	// Where 0 is out of range it is an error rather than silently the default.
	if _, err := Parse([]byte(`{"worker":{"port":0}}`)); err == nil || !strings.Contains(err.Error(), "worker.port") {
		t.Errorf("port 0: %v", err)
	}
	// An empty http.address still means ":<worker.port>".
	if c, err := Parse([]byte(`{"worker":{"port":4000},"http":{"address":""}}`)); err != nil || c.HTTP.Address != ":4000" {
		t.Errorf("address = %q, %v", c.HTTP.Address, err)
	}
}

func TestParseRefusesWhatIsNotOneObject(t *testing.T) {
	for _, doc := range []string{`[]`, `"x"`, `{} {}`, `{"worker":{}} trailing`, ``} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%q accepted", doc)
		}
	}
}

// Time zones are checked against the zone database, which the schema cannot do.
func TestTimeZonesMustExist(t *testing.T) {
	_, err := Parse([]byte(`{"monitoring":{"patternDetection":{"timeZone":"Mars/Olympus",
		"organizationTimeZones":{"org-1":"America/New_York","org-2":"Europe/Atlantis"}}}}`))
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 2 ||
		ce.Problems[0].Field != "monitoring.patternDetection.timeZone" ||
		ce.Problems[1].Field != "monitoring.patternDetection.organizationTimeZones.org-2" {
		t.Fatalf("err = %v, want the zone and org-2's zone refused", err)
	}
	c, err := Parse([]byte(`{"monitoring":{"notification":{"enabled":true,"provider":"webhook","url":"https://n/x",
		"credentials":{"secret":"0123456789abcdef"},"webhooks":[{"name":"a","url":"https://a","secret":"0123456789abcdef"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	hooks := c.Monitoring.Notification.EffectiveWebhooks()
	if len(hooks) != 2 || hooks[0].MinSeverity != "LOW" || hooks[1].Name != "notification" || hooks[1].URL != "https://n/x" {
		t.Errorf("webhooks = %+v", hooks)
	}
}
