package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func schemaValidate(t *testing.T, sch *jsonschema.Schema, doc string) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	return sch.Validate(v)
}

func TestPublishedSchemaIsTheEmbeddedOne(t *testing.T) {
	published, err := os.ReadFile(filepath.Join("..", "docs", "config.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(published, Schema()) {
		t.Error("docs/config.schema.json differs from config/schema.json: copy config/schema.json over it")
	}
}

// testEnv is the environment the schema agreement test resolves ${NAME} with.
var testEnv = map[string]string{
	"AUDIT_TEST_HMAC_KEY":   "k3y-0f-the-producers-hmac-at-least-32-chars",
	"AUDIT_TEST_REDIS_PASS": "s3cret",
	"AUDIT_TEST_ENV":        "production",
}

func testLookup(name string) (string, bool) {
	v, ok := testEnv[name]
	return v, ok
}

// The same documents go through the published schema (jsonschema/v6) and
// through Parse/Validate: each valid one must pass both, each invalid one must
// fail both (and Validate must name the field), so the two cannot drift apart.
func TestSchemaAndValidateAgree(t *testing.T) {
	sch := compileSchema(t)
	seed, err := os.ReadFile(filepath.Join("testdata", "seed-readme.json"))
	if err != nil {
		t.Fatal(err)
	}
	const key = `"k3y-0f-the-producers-hmac-at-least-32-chars"`
	valid := []string{
		string(seed),
		`{}`,
		`{"compliance":{"gdpr":{"enabled":true}},"observability":{"tracing":{"enabled":false}},"retry":{"maxRetries":3}}`,
		`{"environment":"test","redis":{"host":"127.0.0.1","port":65535,"password":"pw","db":0,"keyPrefix":"{bull}"}}`,
		`{"redis":{"url":"rediss://:pw@cache:6380/2","password":null}}`,
		`{"redis":{"clusterNodes":["10.0.0.1:7000","[::1]:7001","redis-2.internal:1"]}}`,
		`{"enhancedClient":{"connectionString":"postgres://audit@db/audit","maxConnections":100,"partitioning":{"enabled":true},"monitoring":{"enabled":false}}}`,
		`{"security":{"encryptionKey":` + key + `,"algorithm":"aes-256-gcm"}}`,
		`{"monitoring":{"enabled":true,"metricsInterval":30000,"notification":{"provider":"slack"},
			"alertThresholds":{"errorRate":0,"queueDepth":1,"processingLatency":1,"memoryUsage":0.1},
			"healthCheckInterval":5000,
			"patternDetection":{"failedAuthThreshold":1,"failedAuthTimeWindow":1000,"unauthorizedAccessThreshold":1000000,
			"unauthorizedAccessTimeWindow":86400000,"dataAccessVelocityThreshold":50,"dataAccessTimeWindow":60000,
			"bulkOperationThreshold":100,"bulkOperationTimeWindow":300000,"offHoursStart":0,"offHoursEnd":23}}}`,
		`{"monitoring":{"alertThresholds":{"errorRate":1,"memoryUsage":1,"queueDepth":1000000}}}`,
		`{"monitoring":{"enabled":false,"patternDetection":{"lateEventToleranceMs":0,"maxTrackedKeys":100,"timeZone":"Europe/Berlin",
			"organizationTimeZones":{"org-ny":"America/New_York"}},
			"notification":{"enabled":true,"webhooks":[{"name":"soc","url":"https://soc.example.org/hook","secret":"0123456789abcdef",
			"minSeverity":"HIGH","organizations":["org-ny"]},{"name":"ops","url":"http://10.0.0.5:8080","secret":"${AUDIT_TEST_HMAC_KEY}"}]}}}`,
		`{"monitoring":{"notification":{"enabled":true,"provider":"webhook","url":"https://ntfy.internal/audit","credentials":{"secret":"0123456789abcdef"}}}}`,
		`{"observability":{"tracing":{"enabled":true,"serviceName":"audit","sampleRate":0,"exporterType":"jaeger",
			"exporterEndpoint":"http://collector:4318/v1/traces","headers":{"x-api-key":"k"},"maxSpans":100},
			"metrics":{"enabled":false,"collectionInterval":1000},"profiling":{"enabled":true,"sampleRate":0.1},"dashboard":{"enabled":true}}}`,
		`{"reliableProcessor":{"queueName":"{audit-events}","concurrency":50,"batchSize":10000,"lockDurationMs":1000,
			"stalledIntervalMs":600000,"maxStalledCount":0,"circuitBreakerConfig":{"failureThreshold":100,"recoveryTimeout":1000},
			"deadLetterConfig":{"queueName":"audit_dlq-1","alertThreshold":1000}}}`,
		`{"reliableProcessor":{"maxStalledCount":null}}`,
		`{"worker":{"port":1,"shutdownTimeout":600000}}`,
		`{"storage":{"dataDir":"/var/lib/audit","batchMaxSize":1,"batchMaxWaitMs":10000,"partitionsAhead":36}}`,
		`{"http":{"address":"127.0.0.1:0","apiKeys":["0123456789abcdef"],"maxBodyBytes":1024},"validation":{"maxEventBytes":1024}}`,
		`{"http":{"address":"[::1]:3001"}}`,
		`{"http":{"apiKeys":["0123456789 abcdef","x0123456789abcdef\ty"],"maxBodyBytes":1024,"maxInFlightBytes":1048576},"validation":{"maxEventBytes":1024}}`,
		`{"http":{"maxInFlightBytes":68719476736}}`,
		`{"http":{"keys":[{"name":"billing-ingest","key":"0123456789abcdef","role":"ingest","organizations":["org-a","org-b"]},
			{"name":"soc.reader","key":"${AUDIT_TEST_HMAC_KEY}","role":"auditor","organizations":["*"]}]}}`,
		`{"http":{"oidc":{"issuer":"https://login.example.org/realms/x","audience":"audit-worker","jwksUrl":"https://login.example.org/certs",
			"roleClaim":"groups","organizationsClaim":"tenants","roleMapping":{"soc":"auditor","ops":"operator"},"clockSkewMs":0}}}`,
		`{"http":{"oidc":{"issuer":"http://127.0.0.1:8080","audience":"a"}}}`,
		`{"http":{"rateLimits":{"perPrincipal":{"reader":{"requestsPerSecond":0,"burst":0}},"perRole":{"ingest":{"requestsPerSecond":5000,"burst":1}},
			"failedAuthPerAddress":{"requestsPerSecond":0.5,"burst":5}}}}`,
		`{"storage":{"deadLetters":{"maxEntries":0,"maxBytes":0,"retentionDays":0}}}`,
		`{"storage":{"deadLetters":{"maxEntries":100000000,"maxBytes":1099511627776,"retentionDays":36500}}}`,
		`{"http":{"address":""}}`,
		`{"validation":{"maxStringLength":1,"maxCustomFieldDepth":64,"maxFutureSkewMs":0,"maxEventBytes":256}}`,
		`{"logging":{"level":"error","format":"json"}}`,
		`{"logging":{"format":""}}`,
		`{"compliance":{"reportingSchedule":{"enabled":true,"frequency":"weekly","recipients":["dpo@example.org"]},"maxReportPeriodDays":31,
			"maxListedEvents":1,"gdpr":{"enabled":true,"controller":"Clinic","purposes":["care"],"retentionDays":365},
			"reports":[{"name":"hipaa-monthly","report":"hipaa","organizations":["org-a"],"frequency":"monthly","timeZone":"America/New_York",
			"format":"pdf","destination":"s3://audit-reports/hipaa"},{"name":"soc","report":"general","organizations":["*"],"cron":"0 6 * * 1",
			"destination":"https://soc.example.org/reports","secret":"0123456789abcdef"},{"name":"disk","report":"integrity","organizations":["org-b"],
			"frequency":"daily","format":"json","destination":"/var/lib/audit/reports"}]}}`,
		`{"environment":"production","security":{"encryptionKey":` + key + `},
			"enhancedClient":{"connectionString":"postgresql://audit:pw@db:5432/audit?sslmode=verify-full"},"logging":{"level":"warn"}}`,
		`{"environment":"production","security":{"encryptionKey":` + key + `}}`,
		`{"environment":"production","security":{"encryptionKey":"${AUDIT_TEST_HMAC_KEY}"},"logging":{"level":"info"}}`,
		`{"environment":"${AUDIT_TEST_ENV}","security":{"encryptionKey":"${AUDIT_TEST_HMAC_KEY}"},"redis":{"host":"r","password":"${AUDIT_TEST_REDIS_PASS}"}}`,
		`{"environment":"staging","security":{"encryptionKey":"your-256-bit-encryption-key-here"},"logging":{"level":"debug"}}`,
	}
	invalid := []struct{ doc, field string }{
		{`{"environment":"prod"}`, "environment"},
		{`{"environment":5}`, "environment"},
		{`{"redis":{"port":70000}}`, "redis.port"},
		{`{"redis":{"port":0}}`, "redis.port"},
		{`{"redis":{"port":"6379"}}`, "redis.port"},
		{`{"redis":{"password":5}}`, "redis.password"},
		{`{"redis":{"db":-1}}`, "redis.db"},
		{`{"redis":{"url":"http://cache:6379"}}`, "redis.url"},
		{`{"redis":{"clusterNodes":["cache"]}}`, "redis.clusterNodes[0]"},
		{`{"redis":{"clusterNodes":["a:1","cache:70000"]}}`, "redis.clusterNodes[1]"},
		{`{"redis":{"clusterNodes":[":7000"]}}`, "redis.clusterNodes[0]"},
		{`{"redis":{"keyPrefix":""}}`, "redis.keyPrefix"},
		{`{"redis":{"keyPrefix":"my prefix"}}`, "redis.keyPrefix"},
		{`{"enhancedClient":{"connectionString":"mysql://db/audit"}}`, "enhancedClient.connectionString"},
		{`{"enhancedClient":{"maxConnections":0}}`, "enhancedClient.maxConnections"},
		{`{"enhancedClient":{"maxConnections":101}}`, "enhancedClient.maxConnections"},
		{`{"security":{"encryptionKey":"short"}}`, "security.encryptionKey"},
		{`{"monitoring":{"alertThresholds":{"errorRate":1.01}}}`, "monitoring.alertThresholds.errorRate"},
		{`{"monitoring":{"alertThresholds":{"errorRate":-0.1}}}`, "monitoring.alertThresholds.errorRate"},
		{`{"monitoring":{"alertThresholds":{"queueDepth":0}}}`, "monitoring.alertThresholds.queueDepth"},
		{`{"monitoring":{"alertThresholds":{"queueDepth":2.5}}}`, "monitoring.alertThresholds.queueDepth"},
		{`{"monitoring":{"alertThresholds":{"processingLatency":0}}}`, "monitoring.alertThresholds.processingLatency"},
		{`{"monitoring":{"alertThresholds":{"memoryUsage":0.09}}}`, "monitoring.alertThresholds.memoryUsage"},
		{`{"monitoring":{"alertThresholds":{"memoryUsage":1.5}}}`, "monitoring.alertThresholds.memoryUsage"},
		{`{"monitoring":{"healthCheckInterval":4999}}`, "monitoring.healthCheckInterval"},
		{`{"monitoring":{"patternDetection":{"failedAuthThreshold":0}}}`, "monitoring.patternDetection.failedAuthThreshold"},
		{`{"monitoring":{"patternDetection":{"unauthorizedAccessTimeWindow":86400001}}}`, "monitoring.patternDetection.unauthorizedAccessTimeWindow"},
		{`{"monitoring":{"patternDetection":{"dataAccessTimeWindow":999}}}`, "monitoring.patternDetection.dataAccessTimeWindow"},
		{`{"monitoring":{"patternDetection":{"bulkOperationThreshold":1000001}}}`, "monitoring.patternDetection.bulkOperationThreshold"},
		{`{"monitoring":{"patternDetection":{"offHoursStart":24}}}`, "monitoring.patternDetection.offHoursStart"},
		{`{"monitoring":{"patternDetection":{"offHoursEnd":-1}}}`, "monitoring.patternDetection.offHoursEnd"},
		{`{"monitoring":{"enabled":"yes"}}`, "monitoring.enabled"},
		{`{"monitoring":{"patternDetection":{"lateEventToleranceMs":-1}}}`, "monitoring.patternDetection.lateEventToleranceMs"},
		{`{"monitoring":{"patternDetection":{"maxTrackedKeys":99}}}`, "monitoring.patternDetection.maxTrackedKeys"},
		{`{"monitoring":{"patternDetection":{"timeZone":""}}}`, "monitoring.patternDetection.timeZone"},
		{`{"monitoring":{"notification":{"webhooks":[{"name":"soc","url":"ftp://x","secret":"0123456789abcdef"}]}}}`, "monitoring.notification.webhooks[0].url"},
		{`{"monitoring":{"notification":{"webhooks":[{"name":"soc","url":"https://x","secret":"short"}]}}}`, "monitoring.notification.webhooks[0].secret"},
		{`{"monitoring":{"notification":{"webhooks":[{"name":"soc","url":"https://x","secret":"0123456789abcdef","minSeverity":"URGENT"}]}}}`, "monitoring.notification.webhooks[0].minSeverity"},
		{`{"monitoring":{"notification":{"webhooks":[{"name":"","url":"https://x","secret":"0123456789abcdef"}]}}}`, "monitoring.notification.webhooks[0].name"},
		{`{"observability":{"tracing":{"sampleRate":1.5}}}`, "observability.tracing.sampleRate"},
		{`{"observability":{"tracing":{"exporterType":"zipkin"}}}`, "observability.tracing.exporterType"},
		{`{"observability":{"tracing":{"exporterEndpoint":"collector:4318"}}}`, "observability.tracing.exporterEndpoint"},
		{`{"observability":{"tracing":{"maxSpans":99}}}`, "observability.tracing.maxSpans"},
		{`{"observability":{"metrics":{"collectionInterval":999}}}`, "observability.metrics.collectionInterval"},
		{`{"reliableProcessor":{"queueName":"audit events"}}`, "reliableProcessor.queueName"},
		{`{"reliableProcessor":{"queueName":""}}`, "reliableProcessor.queueName"},
		{`{"reliableProcessor":{"concurrency":51}}`, "reliableProcessor.concurrency"},
		{`{"reliableProcessor":{"batchSize":0}}`, "reliableProcessor.batchSize"},
		{`{"reliableProcessor":{"lockDurationMs":999}}`, "reliableProcessor.lockDurationMs"},
		{`{"reliableProcessor":{"stalledIntervalMs":600001}}`, "reliableProcessor.stalledIntervalMs"},
		{`{"reliableProcessor":{"maxStalledCount":101}}`, "reliableProcessor.maxStalledCount"},
		{`{"reliableProcessor":{"circuitBreakerConfig":{"failureThreshold":0}}}`, "reliableProcessor.circuitBreakerConfig.failureThreshold"},
		{`{"reliableProcessor":{"circuitBreakerConfig":{"recoveryTimeout":300001}}}`, "reliableProcessor.circuitBreakerConfig.recoveryTimeout"},
		{`{"reliableProcessor":{"deadLetterConfig":{"queueName":"dead/letters"}}}`, "reliableProcessor.deadLetterConfig.queueName"},
		{`{"reliableProcessor":{"deadLetterConfig":{"alertThreshold":1001}}}`, "reliableProcessor.deadLetterConfig.alertThreshold"},
		{`{"worker":{"port":70000}}`, "worker.port"},
		{`{"worker":{"port":0}}`, "worker.port"},
		{`{"worker":{"port":"3001"}}`, "worker.port"},
		{`{"worker":{"shutdownTimeout":999}}`, "worker.shutdownTimeout"},
		{`{"storage":{"dataDir":""}}`, "storage.dataDir"},
		{`{"storage":{"batchMaxSize":10001}}`, "storage.batchMaxSize"},
		{`{"storage":{"batchMaxWaitMs":0}}`, "storage.batchMaxWaitMs"},
		{`{"storage":{"partitionsAhead":37}}`, "storage.partitionsAhead"},
		{`{"http":{"address":"localhost"}}`, "http.address"},
		{`{"http":{"address":"localhost:65536"}}`, "http.address"},
		{`{"http":{"address":":http"}}`, "http.address"},
		{`{"http":{"apiKeys":["too-short"]}}`, "http.apiKeys[0]"},
		{`{"http":{"keys":[{"name":"a","key":"0123456789abcdef","role":"root","organizations":["*"]}]}}`, "http.keys[0].role"},
		{`{"http":{"keys":[{"name":"a b","key":"0123456789abcdef","role":"reader","organizations":["*"]}]}}`, "http.keys[0].name"},
		{`{"http":{"keys":[{"name":"a","key":"short","role":"reader","organizations":["*"]}]}}`, "http.keys[0].key"},
		{`{"http":{"keys":[{"name":"a","key":"0123456789abcdef","role":"reader","organizations":[]}]}}`, "http.keys[0].organizations"},
		{`{"http":{"keys":[{"name":"a","key":"0123456789abcdef","role":"reader","organizations":[" org"]}]}}`, "http.keys[0].organizations[0]"},
		{`{"http":{"oidc":{"issuer":"login.example.org","audience":"a"}}}`, "http.oidc.issuer"},
		{`{"http":{"oidc":{"issuer":"https://x","audience":""}}}`, "http.oidc.audience"},
		{`{"http":{"oidc":{"issuer":"https://x","audience":"a","roleMapping":{"g":"god"}}}}`, "http.oidc.roleMapping.g"},
		{`{"http":{"oidc":{"issuer":"https://x","audience":"a","clockSkewMs":700000}}}`, "http.oidc.clockSkewMs"},
		{`{"http":{"rateLimits":{"perPrincipal":{"root":{"requestsPerSecond":1,"burst":1}}}}}`, "http.rateLimits.perPrincipal"},
		{`{"http":{"rateLimits":{"perRole":{"reader":{"requestsPerSecond":-1,"burst":1}}}}}`, "http.rateLimits.perRole.reader.requestsPerSecond"},
		{`{"http":{"rateLimits":{"failedAuthPerAddress":{"requestsPerSecond":1,"burst":0}}}}`, "http.rateLimits.failedAuthPerAddress.burst"},
		{`{"http":{"apiKeys":"0123456789abcdef"}}`, "http.apiKeys"},
		{`{"http":{"maxBodyBytes":1023}}`, "http.maxBodyBytes"},
		{`{"http":{"apiKeys":[" 0123456789abcdef"]}}`, "http.apiKeys[0]"},
		{`{"http":{"apiKeys":["0123456789abcdef","0123456789abcdef\n"]}}`, "http.apiKeys[1]"},
		{`{"http":{"apiKeys":["\t0123456789abcdef\t"]}}`, "http.apiKeys[0]"},
		{`{"http":{"maxInFlightBytes":1048575}}`, "http.maxInFlightBytes"},
		{`{"http":{"maxInFlightBytes":68719476737}}`, "http.maxInFlightBytes"},
		{`{"storage":{"deadLetters":{"maxEntries":-1}}}`, "storage.deadLetters.maxEntries"},
		{`{"storage":{"deadLetters":{"maxEntries":100000001}}}`, "storage.deadLetters.maxEntries"},
		{`{"storage":{"deadLetters":{"maxBytes":-1}}}`, "storage.deadLetters.maxBytes"},
		{`{"storage":{"deadLetters":{"retentionDays":36501}}}`, "storage.deadLetters.retentionDays"},
		{`{"storage":{"deadLetters":{"retentionDays":"30"}}}`, "storage.deadLetters.retentionDays"},
		{`{"validation":{"maxStringLength":0}}`, "validation.maxStringLength"},
		{`{"validation":{"maxCustomFieldDepth":65}}`, "validation.maxCustomFieldDepth"},
		{`{"validation":{"maxFutureSkewMs":-1}}`, "validation.maxFutureSkewMs"},
		{`{"validation":{"maxEventBytes":255}}`, "validation.maxEventBytes"},
		{`{"logging":{"level":"loud"}}`, "logging.level"},
		{`{"logging":{"level":""}}`, "logging.level"},
		{`{"logging":{"format":"xml"}}`, "logging.format"},
		{`{"compliance":{"reportingSchedule":{"frequency":"hourly"}}}`, "compliance.reportingSchedule.frequency"},
		{`{"compliance":{"reportingSchedule":{"recipients":["not an email"]}}}`, "compliance.reportingSchedule.recipients[0]"},
		{`{"compliance":{"maxReportPeriodDays":0}}`, "compliance.maxReportPeriodDays"},
		{`{"compliance":{"maxListedEvents":1000001}}`, "compliance.maxListedEvents"},
		{`{"compliance":{"reports":[{"name":"a b","report":"hipaa","organizations":["o"],"frequency":"daily","destination":"/r"}]}}`, "compliance.reports[0].name"},
		{`{"compliance":{"reports":[{"name":"a","report":"sox","organizations":["o"],"frequency":"daily","destination":"/r"}]}}`, "compliance.reports[0].report"},
		{`{"compliance":{"reports":[{"name":"a","report":"gdpr","organizations":[],"frequency":"daily","destination":"/r"}]}}`, "compliance.reports[0].organizations"},
		{`{"compliance":{"reports":[{"name":"a","report":"gdpr","organizations":["o"],"frequency":"hourly","destination":"/r"}]}}`, "compliance.reports[0].frequency"},
		{`{"compliance":{"reports":[{"name":"a","report":"gdpr","organizations":["o"],"frequency":"daily","format":"xml","destination":"/r"}]}}`, "compliance.reports[0].format"},
		{`{"compliance":{"reports":[{"name":"a","report":"gdpr","organizations":["o"],"frequency":"daily","destination":""}]}}`, "compliance.reports[0].destination"},
		// Production's cross-field rules.
		{`{"environment":"production"}`, "security.encryptionKey"},
		{`{"environment":"production","security":{"encryptionKey":""}}`, "security.encryptionKey"},
		{`{"environment":"production","security":{"encryptionKey":"your-256-bit-encryption-key-here"}}`, "security.encryptionKey"},
		{`{"environment":"production","security":{"encryptionKey":"Your_Secret_Key_Of_At_Least_32_Characters"}}`, "security.encryptionKey"},
		{`{"environment":"production","security":{"encryptionKey":"changeme-changeme-changeme-changeme"}}`, "security.encryptionKey"},
		{`{"environment":"production","security":{"encryptionKey":"this-is-an-EXAMPLE-key-of-32-characters"}}`, "security.encryptionKey"},
		{`{"environment":"production","security":{"encryptionKey":` + key + `},"logging":{"level":"debug"}}`, "logging.level"},
		{`{"environment":"production","security":{"encryptionKey":` + key + `},"enhancedClient":{"connectionString":"postgres://db/audit"}}`, "enhancedClient.connectionString"},
		{`{"environment":"production","security":{"encryptionKey":` + key + `},"enhancedClient":{"connectionString":"postgres://db/audit?sslmode=prefer"}}`, "enhancedClient.connectionString"},
		{`{"environment":"production","security":{"encryptionKey":` + key + `},"enhancedClient":{"connectionString":"postgres://db/audit?sslmode=requires"}}`, "enhancedClient.connectionString"},
	}

	for _, doc := range valid {
		if err := schemaValidate(t, sch, doc); err != nil {
			t.Errorf("schema refuses a valid document %s:\n%v", doc, err)
		}
		if _, err := parse([]byte(doc), testLookup); err != nil {
			t.Errorf("Validate refuses a valid document %s: %v", doc, err)
		}
	}
	for _, tt := range invalid {
		if err := schemaValidate(t, sch, tt.doc); err == nil {
			t.Errorf("schema accepts an invalid document %s", tt.doc)
		} else if !schemaBlames(err, tt.field) {
			t.Errorf("schema refuses %s, but not for %s:\n%v", tt.doc, tt.field, err)
		}
		_, err := parse([]byte(tt.doc), testLookup)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("Validate: %s: err = %v, want a config error", tt.doc, err)
			continue
		}
		if !slices.ContainsFunc(ce.Problems, func(p Problem) bool { return p.Field == tt.field }) {
			t.Errorf("Validate: %s: problems %v, want one on %s", tt.doc, ce.Problems, tt.field)
		}
	}
}

// schemaBlames reports whether one of the schema's errors is about field (a
// dotted path as Validate writes it) or about a missing object on its way.
func schemaBlames(err error, field string) bool {
	want := strings.FieldsFunc(field, func(r rune) bool { return r == '.' || r == '[' || r == ']' })
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return false
	}
	var blames func(e *jsonschema.ValidationError) bool
	blames = func(e *jsonschema.ValidationError) bool {
		if len(e.Causes) > 0 {
			return slices.ContainsFunc(e.Causes, blames)
		}
		loc := e.InstanceLocation
		if r, ok := e.ErrorKind.(*kind.Required); ok {
			return slices.ContainsFunc(r.Missing, func(m string) bool {
				l := append(slices.Clone(loc), m)
				return len(l) <= len(want) && slices.Equal(l, want[:len(l)])
			})
		}
		return slices.Equal(loc, want)
	}
	return blames(ve)
}

// leaves flattens a decoded JSON object into dotted paths (arrays are leaves,
// and objects at the paths where stop says so).
func leaves(v any, path string, out map[string]any, stop func(path string) bool) {
	if m, ok := v.(map[string]any); ok && (path == "" || !stop(path)) {
		for k, e := range m {
			p := k
			if path != "" {
				p = path + "." + k
			}
			leaves(e, p, out, stop)
		}
		return
	}
	out[path] = v
}

// schemaLeaves flattens the schema's properties the same way.
func schemaLeaves(node map[string]any, path string, out map[string]map[string]any) {
	props, ok := node["properties"].(map[string]any)
	if !ok {
		out[path] = node
		return
	}
	for k, e := range props {
		p := k
		if path != "" {
			p = path + "." + k
		}
		schemaLeaves(e.(map[string]any), p, out)
	}
}

func decodeJSON(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The schema describes every field of Config and nothing else, and its
// defaults are the ones Parse applies.
func TestSchemaDescribesEveryFieldWithItsDefault(t *testing.T) {
	// Optional sections (nil until the file has them) are present, empty, so
	// that their fields and defaults are compared too.
	var c Config
	c.fillDefaults()
	if err := json.Unmarshal([]byte(`{"http":{"oidc":{}}}`), &c); err != nil {
		t.Fatal(err)
	}
	c.deriveDefaults()
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	schLeaves := map[string]map[string]any{}
	schemaLeaves(decodeJSON(t, Schema()), "", schLeaves)
	goLeaves := map[string]any{}
	leaves(decodeJSON(t, data), "", goLeaves, func(path string) bool {
		_, isLeaf := schLeaves[path] // a map the schema describes whole
		return isLeaf
	})

	var paths []string
	for p := range goLeaves {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		node, ok := schLeaves[p]
		if !ok {
			t.Errorf("%s: not in the schema", p)
			continue
		}
		if node["description"] == nil || node["type"] == nil {
			t.Errorf("%s: the schema gives no description or type", p)
		}
		goValue := goLeaves[p]
		def, hasDefault := node["default"]
		if !hasDefault {
			if goValue != nil && !reflect.ValueOf(goValue).IsZero() {
				t.Errorf("%s: Go default %v, the schema gives none", p, goValue)
			}
			continue
		}
		if d, ok := def.([]any); ok && len(d) == 0 && goValue == nil {
			goValue = def // an unset list (nil in Go) is the schema's []
		}
		if d, ok := def.(map[string]any); ok && len(d) == 0 && goValue == nil {
			goValue = def // and an unset map the schema's {}
		}
		if !reflect.DeepEqual(def, goValue) {
			t.Errorf("%s: schema default %v, Go default %v", p, def, goValue)
		}
	}
	for p := range schLeaves {
		if _, ok := goLeaves[p]; !ok {
			t.Errorf("%s: in the schema but not a field of Config", p)
		}
	}
}

// The schema's patterns are Validate's expressions, character for character.
func TestSchemaPatternsAreValidates(t *testing.T) {
	var patterns []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && k == "pattern" {
					patterns = append(patterns, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(decodeJSON(t, Schema()))
	for _, expr := range []string{queueNameExpr, postgresURLExpr, redisURLExpr, keyPrefixExpr, apiKeyExpr, clusterNodeExpr,
		listenAddressExpr, tlsSSLModeExpr, placeholderExpr, envRefExpr} {
		if !slices.Contains(patterns, expr) {
			t.Errorf("pattern %s is not in the schema", expr)
		}
	}
}
