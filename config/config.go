package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // organization time zones resolve on hosts without a zoneinfo database
	"unicode/utf8"

	audit "github.com/smartlogs/audit-worker"
)

// Config is the whole configuration file. Sections the original file has and this
// worker does not use yet are accepted and ignored, so existing files keep working.
type Config struct {
	// Environment is the original's top-level environment: development (default),
	// staging, production or test. Production turns on the stricter cross-field
	// rules of Validate (TLS to the database, a real encryption key, no debug logs).
	Environment string `json:"environment"`

	Redis             Redis             `json:"redis"`
	EnhancedClient    EnhancedClient    `json:"enhancedClient"`
	Security          Security          `json:"security"`
	Monitoring        Monitoring        `json:"monitoring"`
	ReliableProcessor ReliableProcessor `json:"reliableProcessor"`
	Worker            Worker            `json:"worker"`
	Observability     Observability     `json:"observability"`

	// Our own sections.
	Storage    Storage    `json:"storage"`
	HTTP       HTTP       `json:"http"`
	Validation Validation `json:"validation"`
	Logging    Logging    `json:"logging"`
	// ConfigSource tunes how a running worker follows its configuration source.
	ConfigSource ConfigSource `json:"configSource"`
	// Compliance is the original's section: its reportingSchedule and gdpr
	// are read (its other fields are accepted and ignored), plus our
	// scheduled reports and report limits.
	Compliance Compliance `json:"compliance"`
}

// Compliance configures the compliance reports.
type Compliance struct {
	// ReportingSchedule is the original's: HIPAA and GDPR reports of every
	// organisation, each period, kept under storage.dataDir/reports.
	ReportingSchedule ReportingSchedule `json:"reportingSchedule"`
	// Reports are scheduled reports, each to a destination.
	Reports []ScheduledReport `json:"reports"`
	// GDPR is the record of processing activities (Art. 30) the GDPR report prints.
	GDPR GDPRRecord `json:"gdpr"`
	// MaxReportPeriodDays bounds the period of one report (default 400).
	MaxReportPeriodDays int `json:"maxReportPeriodDays"`
	// MaxListedEvents bounds the events a report lists (default 10000).
	MaxListedEvents int `json:"maxListedEvents"`
}

// ReportingSchedule is the original's compliance.reportingSchedule.
type ReportingSchedule struct {
	Enabled    bool     `json:"enabled"`
	Frequency  string   `json:"frequency"` // daily (default), weekly, monthly
	Recipients []string `json:"recipients"`
}

// ScheduledReport is one report made every period and sent to Destination:
// a directory, an s3://bucket/prefix, or an http(s):// webhook (signed with
// Secret, as the alert webhooks are).
type ScheduledReport struct {
	Name          string   `json:"name"`
	Report        string   `json:"report"` // hipaa, gdpr, general, integrity
	Organizations []string `json:"organizations"`
	Frequency     string   `json:"frequency"`
	Cron          string   `json:"cron"`
	TimeZone      string   `json:"timeZone"` // default: the first organisation's zone
	Format        string   `json:"format"`   // pdf (default), json, csv
	Destination   string   `json:"destination"`
	Secret        string   `json:"secret"`
}

// GDPRRecord is the record of processing activities, printed as given.
type GDPRRecord struct {
	Controller             string   `json:"controller"`
	Purposes               []string `json:"purposes"`
	DataSubjectCategories  []string `json:"dataSubjectCategories"`
	PersonalDataCategories []string `json:"personalDataCategories"`
	RecipientCategories    []string `json:"recipientCategories"`
	TransferSafeguards     string   `json:"transferSafeguards"`
	ErasureTimeLimits      string   `json:"erasureTimeLimits"`
	SecurityMeasures       []string `json:"securityMeasures"`
}

// ReportFrequencies and ReportFormats are the accepted values of the
// scheduled reports' fields.
var (
	ReportFrequencies = []string{"daily", "weekly", "monthly"}
	ReportTypes       = []string{"hipaa", "gdpr", "general", "integrity"}
	ReportFormats     = []string{"pdf", "json", "csv"}
)

// Redis is the original's redis section. When host or url is set, the worker
// consumes the BullMQ queue reliableProcessor.queueName.
type Redis struct {
	Host     string  `json:"host"`
	Port     int     `json:"port"`
	Password *string `json:"password"`
	DB       int     `json:"db"`
	// Ours: a redis:// or rediss:// URL instead of host/port/password/db, the
	// nodes of a Redis Cluster, and BullMQ's key prefix (default "bull").
	URL          string   `json:"url"`
	ClusterNodes []string `json:"clusterNodes"`
	KeyPrefix    string   `json:"keyPrefix"`
}

// EnhancedClient is the original's database section. A connectionString selects PostgreSQL.
type EnhancedClient struct {
	ConnectionString string `json:"connectionString"`
	MaxConnections   int    `json:"maxConnections"`
	Partitioning     struct {
		Enabled bool `json:"enabled"` // accepted for compatibility: audit_log is always partitioned
	} `json:"partitioning"`
}

// Security holds the key that HMAC signatures are checked with.
type Security struct {
	EncryptionKey string     `json:"encryptionKey"`
	Algorithm     string     `json:"algorithm"`
	Checkpoint    Checkpoint `json:"checkpoint"`
}

// Checkpoint configures the Merkle tree over the stored rows and its signed
// checkpoints (docs/tamper-evidence.md). Every field applies at start.
type Checkpoint struct {
	Enabled bool `json:"enabled"` // default true
	// Origin is the checkpoint's first line and the signing key's name; ""
	// means audit-worker.local/<hostname>.
	Origin string `json:"origin"`
	// SigningKey is a note private key (PRIVATE+KEY+name+hash+key), a
	// ${NAME} reference to one, or file:<path> of a file holding one; ""
	// means a key created on first start in storage.dataDir/checkpoint.key.
	SigningKey string            `json:"signingKey"`
	IntervalMs int               `json:"intervalMs"`
	MaxRows    int               `json:"maxRows"`
	Publish    CheckpointPublish `json:"publish"`
}

// CheckpointPublish says where checkpoints are published besides the database.
type CheckpointPublish struct {
	// File is appended every checkpoint; "" means storage.dataDir/checkpoints.log.
	File string `json:"file"`
	// S3 is s3://bucket/prefix: one object per checkpoint; "" publishes none.
	S3 string `json:"s3"`
}

// Environments are the values of the top-level environment field.
var Environments = []string{"development", "staging", "production", "test"}

// Monitoring is the original's monitoring section (its other fields, such as
// metricsInterval, are accepted and ignored). Defaults are the original's
// development values (docs/compatibility.md).
type Monitoring struct {
	// Enabled turns the pattern detectors and the system alerts on (default true).
	Enabled         bool            `json:"enabled"`
	AlertThresholds AlertThresholds `json:"alertThresholds"`
	// HealthCheckInterval is how often the system alerts are evaluated, in milliseconds.
	HealthCheckInterval int              `json:"healthCheckInterval"`
	PatternDetection    PatternDetection `json:"patternDetection"`
	Notification        Notification     `json:"notification"`
}

// Notification says where alerts are sent. Webhooks is ours; of the original's
// fields only provider "webhook" (url, credentials.secret) is honoured, as one
// more webhook destination.
type Notification struct {
	Enabled     bool   `json:"enabled"`
	Provider    string `json:"provider"`
	URL         string `json:"url"`
	Credentials struct {
		Secret string `json:"secret"`
	} `json:"credentials"`
	Webhooks []Webhook `json:"webhooks"`
}

// Webhook is one alert destination: alerts at or above MinSeverity (of the
// listed organizations, or all when none are listed) are POSTed to URL, signed
// with HMAC-SHA256 under Secret.
type Webhook struct {
	Name          string   `json:"name"`
	URL           string   `json:"url"`
	Secret        string   `json:"secret"`
	MinSeverity   string   `json:"minSeverity"` // LOW (default), MEDIUM, HIGH or CRITICAL
	Organizations []string `json:"organizations"`
}

// EffectiveWebhooks returns the configured destinations, the original's webhook
// notification included, with defaults applied. Nil when notification is off.
func (n Notification) EffectiveWebhooks() []Webhook {
	if !n.Enabled {
		return nil
	}
	hooks := make([]Webhook, 0, len(n.Webhooks)+1)
	for _, w := range n.Webhooks {
		if w.MinSeverity == "" {
			w.MinSeverity = string(audit.SeverityLow)
		}
		hooks = append(hooks, w)
	}
	if n.Provider == "webhook" && n.URL != "" {
		hooks = append(hooks, Webhook{Name: "notification", URL: n.URL, Secret: n.Credentials.Secret,
			MinSeverity: string(audit.SeverityLow)})
	}
	return hooks
}

// Observability is the original's observability section: tracing, metrics and
// profiling (its dashboard part is accepted and ignored: the dashboard is always served).
type Observability struct {
	Tracing struct {
		Enabled     bool    `json:"enabled"`     // default true
		ServiceName string  `json:"serviceName"` // default audit-worker
		SampleRate  float64 `json:"sampleRate"`  // share of traces exported (0–1); all are kept in memory
		// ExporterType: otlp (default) and jaeger export over OTLP/HTTP to
		// ExporterEndpoint when it is set; console and none keep traces in memory only.
		ExporterType     string            `json:"exporterType"`
		ExporterEndpoint string            `json:"exporterEndpoint"`
		Headers          map[string]string `json:"headers"`  // sent with every export (e.g. an API key)
		MaxSpans         int               `json:"maxSpans"` // in-memory span store size, default 10000
	} `json:"tracing"`
	Metrics struct {
		Enabled bool `json:"enabled"` // default true: /metrics and the dashboard
		// CollectionInterval is how often queue depths are read, in milliseconds (default 5000).
		CollectionInterval int `json:"collectionInterval"`
	} `json:"metrics"`
	Profiling struct {
		Enabled bool `json:"enabled"` // serves net/http/pprof under /debug/pprof/ (behind the API key)
	} `json:"profiling"`
}

// TracingExporters are the accepted values of observability.tracing.exporterType.
var TracingExporters = []string{"otlp", "jaeger", "console", "none"}

// AlertThresholds are the levels above which the worker raises an alert.
type AlertThresholds struct {
	ErrorRate         float64 `json:"errorRate"`         // share of failed events, 0–1
	QueueDepth        int     `json:"queueDepth"`        // waiting jobs
	ProcessingLatency int     `json:"processingLatency"` // milliseconds
	MemoryUsage       float64 `json:"memoryUsage"`       // share of the memory limit, 0.1–1
}

// PatternDetection holds the suspicious-pattern detectors' thresholds (events
// per window) and windows (milliseconds), and the off-hours window in hours of
// the day: [offHoursStart, offHoursEnd), wrapping midnight when start > end.
type PatternDetection struct {
	FailedAuthThreshold          int `json:"failedAuthThreshold"`
	FailedAuthTimeWindow         int `json:"failedAuthTimeWindow"`
	UnauthorizedAccessThreshold  int `json:"unauthorizedAccessThreshold"`
	UnauthorizedAccessTimeWindow int `json:"unauthorizedAccessTimeWindow"`
	DataAccessVelocityThreshold  int `json:"dataAccessVelocityThreshold"`
	DataAccessTimeWindow         int `json:"dataAccessTimeWindow"`
	BulkOperationThreshold       int `json:"bulkOperationThreshold"`
	BulkOperationTimeWindow      int `json:"bulkOperationTimeWindow"`
	OffHoursStart                int `json:"offHoursStart"`
	OffHoursEnd                  int `json:"offHoursEnd"`
	// LateEventToleranceMs: an event whose time is further behind the clock
	// than its window plus this tolerance is not counted (default 300000).
	LateEventToleranceMs int `json:"lateEventToleranceMs"`
	// MaxTrackedKeys caps the principals/organizations tracked per detector (default 100000).
	MaxTrackedKeys int `json:"maxTrackedKeys"`
	// TimeZone is the IANA zone of the off-hours window for organizations not
	// in OrganizationTimeZones (default UTC).
	TimeZone              string            `json:"timeZone"`
	OrganizationTimeZones map[string]string `json:"organizationTimeZones"`
	// State is where the windows live: "redis" (shared by every worker
	// replica), "memory" (this process only: exact with a single worker, and
	// cheaper), or "auto" (default): Redis when the worker uses Redis.
	State string `json:"state"`
}

// PatternStates are the accepted values of monitoring.patternDetection.state.
var PatternStates = []string{"auto", "redis", "memory"}

// ReliableProcessor is the original's queue section.
type ReliableProcessor struct {
	QueueName string `json:"queueName"`
	// Concurrency is how many batches are in flight at once (the original: jobs).
	Concurrency int `json:"concurrency"`
	// BatchSize is how many jobs one fetch takes and one transaction stores (ours).
	BatchSize int `json:"batchSize"`
	// LockDurationMs and StalledIntervalMs are BullMQ's lockDuration and
	// stalledInterval (default 30000 each): a crashed worker's jobs are back in
	// wait within about their sum. MaxStalledCount is BullMQ's (default 1).
	LockDurationMs       int  `json:"lockDurationMs"`
	StalledIntervalMs    int  `json:"stalledIntervalMs"`
	MaxStalledCount      *int `json:"maxStalledCount"` // nil: 1; 0 is allowed
	CircuitBreakerConfig struct {
		FailureThreshold int `json:"failureThreshold"`
		RecoveryTimeout  int `json:"recoveryTimeout"` // milliseconds
	} `json:"circuitBreakerConfig"`
	DeadLetterConfig struct {
		QueueName      string `json:"queueName"`
		AlertThreshold int    `json:"alertThreshold"`
	} `json:"deadLetterConfig"`
}

// Worker is the original's worker section.
type Worker struct {
	Port            int `json:"port"`
	ShutdownTimeout int `json:"shutdownTimeout"` // milliseconds
}

// Storage configures where events are kept and how they are batched.
type Storage struct {
	// DataDir holds the SQLite database (when no PostgreSQL connection string is
	// set) and the generated API key. Default ./audit-data.
	DataDir         string `json:"dataDir"`
	BatchMaxSize    int    `json:"batchMaxSize"`    // events per batch, default 1000
	BatchMaxWaitMs  int    `json:"batchMaxWaitMs"`  // default 5
	PartitionsAhead int    `json:"partitionsAhead"` // PostgreSQL monthly partitions created ahead, default 3
	// DeadLetters bounds the refused events the store keeps.
	DeadLetters DeadLetters `json:"deadLetters"`
}

// DeadLetters is the quota and retention of the store's dead letters: a
// maintenance pass deletes the oldest beyond MaxEntries or MaxBytes (payload
// bytes) and those last refused more than RetentionDays ago. 0 means no limit.
type DeadLetters struct {
	MaxEntries    int   `json:"maxEntries"`    // default 100000
	MaxBytes      int64 `json:"maxBytes"`      // default 256 MiB
	RetentionDays int   `json:"retentionDays"` // default 30
}

// HTTP configures the HTTP server.
type HTTP struct {
	// Address to listen on; default ":<worker.port>", or 127.0.0.1:3001 for the embedded default.
	Address      string   `json:"address"`
	APIKeys      []string `json:"apiKeys"`      // bearer keys for ingest; generated into DataDir when empty
	MaxBodyBytes int64    `json:"maxBodyBytes"` // default 8 MiB
	// MaxInFlightBytes bounds the request bodies that ingest holds at once
	// (default 64 MiB); beyond it a request waits briefly, then gets a 503.
	MaxInFlightBytes int64 `json:"maxInFlightBytes"`
	// Keys are API keys kept in the configuration, each with a role and an
	// organisation scope (keys can also be kept in the store: audit-worker keys).
	Keys []KeyConfig `json:"keys"`
	// OIDC accepts OpenID Connect (JWT) bearer tokens from one issuer; nil: none.
	OIDC *OIDC `json:"oidc,omitempty"`
	// RateLimits bound the requests of each principal, of each role and of
	// failed authentications from each address.
	RateLimits RateLimits `json:"rateLimits"`
}

// KeyConfig is an API key in the configuration. Key may be a ${ENV} reference.
type KeyConfig struct {
	Name          string   `json:"name"`
	Key           string   `json:"key"`
	Role          string   `json:"role"`
	Organizations []string `json:"organizations"`
}

// OIDC says which bearer tokens to accept and how to read a principal from them.
type OIDC struct {
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
	JWKSURL  string `json:"jwksUrl"` // empty: from the issuer's discovery document
	// RoleClaim and OrganizationsClaim name the claims that carry the role
	// and the organisation ids (defaults "roles" and "organizations").
	RoleClaim          string `json:"roleClaim"`
	OrganizationsClaim string `json:"organizationsClaim"`
	// RoleMapping maps claim values to roles (a value that is a role's name
	// needs no entry).
	RoleMapping map[string]string `json:"roleMapping"`
	ClockSkewMs int               `json:"clockSkewMs"` // allowed on exp and nbf; default 60000
}

// RateLimits bound requests: per principal (by its role), per role (all its
// principals together) and failed authentications per client address.
type RateLimits struct {
	PerPrincipal         map[string]Rate `json:"perPrincipal"`
	PerRole              map[string]Rate `json:"perRole"`
	FailedAuthPerAddress Rate            `json:"failedAuthPerAddress"`
}

// Rate is a token bucket: RequestsPerSecond on average (0: no limit), Burst at once.
type Rate struct {
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	Burst             int     `json:"burst"`
}

// Validation sets the event rules' limits.
type Validation struct {
	MaxStringLength     int `json:"maxStringLength"`
	MaxCustomFieldDepth int `json:"maxCustomFieldDepth"`
	MaxFutureSkewMs     int `json:"maxFutureSkewMs"`
	MaxEventBytes       int `json:"maxEventBytes"`
}

// ConfigSource: how often the configuration source is checked for a new
// version (S3 is polled with a conditional GET; files are also watched).
type ConfigSource struct {
	PollIntervalMs int `json:"pollIntervalMs"` // default 30000
}

// Logging sets the log level (debug, info, warn, error) and format (json, text).
type Logging struct {
	Level  string `json:"level"`
	Format string `json:"format"`
}

// Default returns the embedded default: SQLite in ./audit-data, HTTP on 127.0.0.1:3001.
func Default() Config {
	var c Config
	c.applyDefaults()
	c.HTTP.Address = "127.0.0.1:3001"
	return c
}

// applyDefaults fills every zero field with its default.
func (c *Config) applyDefaults() {
	c.fillDefaults()
	c.deriveDefaults()
}

// fillDefaults sets, where the field is zero, every default that does not depend
// on another field. Parse calls it before decoding the file over the result, so
// that a value the file does write — even 0 or "" — is kept and validated as
// written (as the JSON Schema sees it) instead of silently becoming the default.
func (c *Config) fillDefaults() {
	rules := audit.DefaultRules()
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setFloat := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	setString := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setString(&c.Environment, "development")
	setInt(&c.Worker.Port, 3001)
	setInt(&c.Worker.ShutdownTimeout, 10000)
	setInt(&c.EnhancedClient.MaxConnections, 20)
	setInt(&c.Storage.BatchMaxSize, 1000)
	setInt(&c.Storage.BatchMaxWaitMs, 5)
	setInt(&c.ConfigSource.PollIntervalMs, 30000)
	setInt(&c.Storage.PartitionsAhead, 3)
	setInt(&c.Security.Checkpoint.IntervalMs, 5000)
	setInt(&c.Security.Checkpoint.MaxRows, 10000)
	setInt(&c.Validation.MaxStringLength, rules.MaxStringLength)
	setInt(&c.Validation.MaxCustomFieldDepth, rules.MaxCustomFieldDepth)
	setInt(&c.Validation.MaxFutureSkewMs, int(rules.MaxFutureSkew/time.Millisecond))
	setInt(&c.Validation.MaxEventBytes, rules.MaxEventBytes)
	setInt(&c.ReliableProcessor.Concurrency, 3)
	setInt(&c.ReliableProcessor.BatchSize, 1000)
	setInt(&c.ReliableProcessor.LockDurationMs, 30000)
	setInt(&c.ReliableProcessor.StalledIntervalMs, 30000)
	setInt(&c.ReliableProcessor.CircuitBreakerConfig.FailureThreshold, 5)
	setInt(&c.ReliableProcessor.CircuitBreakerConfig.RecoveryTimeout, 60000)
	setInt(&c.ReliableProcessor.DeadLetterConfig.AlertThreshold, 10)
	setString(&c.ReliableProcessor.QueueName, "audit-events")
	setString(&c.ReliableProcessor.DeadLetterConfig.QueueName, "audit-events-failed")
	// The port is set even without a host so that the effective configuration
	// shows what redis.host alone would connect to.
	setInt(&c.Redis.Port, 6379)
	setString(&c.Redis.KeyPrefix, "bull")
	setString(&c.Storage.DataDir, "audit-data")
	if c.HTTP.MaxBodyBytes == 0 {
		c.HTTP.MaxBodyBytes = 8 << 20
	}
	if c.HTTP.MaxInFlightBytes == 0 {
		c.HTTP.MaxInFlightBytes = 64 << 20
	}
	setInt(&c.Storage.DeadLetters.MaxEntries, 100000)
	if c.Storage.DeadLetters.MaxBytes == 0 {
		c.Storage.DeadLetters.MaxBytes = 256 << 20
	}
	setInt(&c.Storage.DeadLetters.RetentionDays, 30)
	setInt(&c.Compliance.MaxReportPeriodDays, 400)
	setInt(&c.Compliance.MaxListedEvents, 10000)
	setString(&c.Compliance.ReportingSchedule.Frequency, "daily")
	setString(&c.Logging.Level, "info")
	if c.HTTP.RateLimits.PerPrincipal == nil {
		// Producers send often; people click. The file's entries are decoded
		// over these, so a role it leaves out keeps its default.
		people := Rate{RequestsPerSecond: 50, Burst: 100}
		c.HTTP.RateLimits.PerPrincipal = map[string]Rate{
			"ingest": {RequestsPerSecond: 2000, Burst: 4000},
			"reader": people, "auditor": people, "operator": people,
			"admin": {RequestsPerSecond: 100, Burst: 200},
		}
	}
	if c.HTTP.RateLimits.FailedAuthPerAddress == (Rate{}) {
		c.HTTP.RateLimits.FailedAuthPerAddress = Rate{RequestsPerSecond: 1, Burst: 20}
	}

	m := &c.Monitoring
	// Booleans whose default is true: fillDefaults only ever runs on a fresh
	// Config, before the file is decoded over it, so a false in the file stays.
	m.Enabled = true
	c.Security.Checkpoint.Enabled = true
	c.Observability.Tracing.Enabled = true
	c.Observability.Metrics.Enabled = true
	setFloat(&m.AlertThresholds.ErrorRate, 0.1)
	setInt(&m.AlertThresholds.QueueDepth, 100)
	setInt(&m.AlertThresholds.ProcessingLatency, 5000)
	setFloat(&m.AlertThresholds.MemoryUsage, 0.8)
	setInt(&m.HealthCheckInterval, 30000)
	p := &m.PatternDetection
	setInt(&p.FailedAuthThreshold, 5)
	setInt(&p.FailedAuthTimeWindow, 300000)
	setInt(&p.UnauthorizedAccessThreshold, 3)
	setInt(&p.UnauthorizedAccessTimeWindow, 600000)
	setInt(&p.DataAccessVelocityThreshold, 50)
	setInt(&p.DataAccessTimeWindow, 60000)
	setInt(&p.BulkOperationThreshold, 100)
	setInt(&p.BulkOperationTimeWindow, 300000)
	setInt(&p.LateEventToleranceMs, 300000)
	setInt(&p.MaxTrackedKeys, 100000)
	setString(&p.TimeZone, "UTC")
	setString(&p.State, "auto")
	o := &c.Observability
	setString(&o.Tracing.ServiceName, "audit-worker")
	setFloat(&o.Tracing.SampleRate, 1)
	setString(&o.Tracing.ExporterType, "otlp")
	setInt(&o.Tracing.MaxSpans, 10000)
	setInt(&o.Metrics.CollectionInterval, 5000)
	// 0 is a valid hour (and a valid error rate), but fillDefaults runs before
	// the file is decoded, so a 0 the file writes is kept.
	if p.OffHoursStart == 0 && p.OffHoursEnd == 0 {
		p.OffHoursStart, p.OffHoursEnd = 22, 6
	}
}

// deriveDefaults sets the defaults that depend on other fields or that an
// explicit JSON null clears; Parse calls it after decoding.
func (c *Config) deriveDefaults() {
	if c.HTTP.Address == "" {
		c.HTTP.Address = ":" + strconv.Itoa(c.Worker.Port)
	}
	if c.ReliableProcessor.MaxStalledCount == nil {
		one := 1
		c.ReliableProcessor.MaxStalledCount = &one
	}
	if o := c.HTTP.OIDC; o != nil {
		if o.RoleClaim == "" {
			o.RoleClaim = "roles"
		}
		if o.OrganizationsClaim == "" {
			o.OrganizationsClaim = "organizations"
		}
		if o.ClockSkewMs == 0 {
			o.ClockSkewMs = 60000
		}
		if o.RoleMapping == nil {
			o.RoleMapping = map[string]string{}
		}
	}
}

// Load reads a configuration file, applies defaults and validates it.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration document, applies defaults and validates it.
// An encrypted document (see DecryptDocument) is decrypted first with the key
// from AUDIT_CONFIG_PASSWORD and AUDIT_CONFIG_SALT; string values that are
// exactly ${NAME} are replaced by the environment variable NAME.
func Parse(data []byte) (Config, error) { return parse(data, os.LookupEnv) }

func parse(data []byte, lookup func(string) (string, bool)) (Config, error) {
	if IsEncrypted(data) {
		password, salt, err := keyMaterial(lookup)
		if err != nil {
			return Config{}, fmt.Errorf("the configuration is encrypted: %w", err)
		}
		if data, err = DecryptDocument(data, password, salt); err != nil {
			return Config{}, err
		}
	}
	doc, probs, err := resolveEnvRefs(data, lookup)
	if err != nil {
		return Config{}, err
	}
	var c Config
	c.fillDefaults()
	if err := json.Unmarshal(doc, &c); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return Config{}, fmt.Errorf("parse config: %w", err)
		}
		// Unmarshal skips the value of the wrong type and decodes the rest, so
		// the other fields are still validated and all problems reported at once.
		probs = append(probs, Problem{Field: typeErr.Field, Rule: "must be " + jsonTypeName(typeErr.Type)})
	}
	c.deriveDefaults()
	if err := c.Validate(); err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			return Config{}, err
		}
		// A field already reported (wrong type, unset variable) still holds its
		// default or the literal ${NAME}; its range errors would only be noise.
		reported := make(map[string]bool, len(probs))
		for _, p := range probs {
			reported[p.Field] = true
		}
		for _, p := range ce.Problems {
			if !reported[p.Field] {
				probs = append(probs, p)
			}
		}
	}
	if len(probs) > 0 {
		return Config{}, &Error{Problems: probs}
	}
	return c, nil
}

// jsonTypeName names a Go field type the way the JSON Schema does.
func jsonTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}

// Problem is one broken rule: the field (dotted path) and the rule.
type Problem struct {
	Field string
	Rule  string
}

func (p Problem) String() string { return p.Field + ": " + p.Rule }

// Error lists every rule a configuration breaks.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid configuration: " + strings.Join(parts, "; ")
}

// The patterns of the string rules. schema.json uses the same expressions (a
// test checks), so the published schema and Validate cannot disagree on them.
const (
	queueNameExpr     = `^[a-zA-Z0-9_{}-]+$`
	postgresURLExpr   = `^postgres(ql)?://`
	redisURLExpr      = `^rediss?://`
	keyPrefixExpr     = `^\S+$`
	apiKeyExpr        = `^\S([\s\S]*\S)?$`
	keyNameExpr       = `^[A-Za-z0-9._-]{1,64}$`
	portExpr          = `([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])`
	clusterNodeExpr   = `^(\[[^\[\]\s]+\]|[^\s:\[\]]+):` + portExpr + `$`
	listenAddressExpr = `^(\[[^\[\]\s]+\]|[^\s:\[\]]*):(0|` + portExpr + `)$`
	tlsSSLModeExpr    = `[?&]sslmode=(require|verify-ca|verify-full)(&|$)`
	httpURLExpr       = `^https?://[^\s/]+`
	emailExpr         = `^[^@\s]+@[^@\s]+$`
	s3URLExpr         = `^s3://[^/\s]+(/.*)?$`
	// placeholderExpr finds the sample values of the original's README and
	// docs (your-256-bit-encryption-key-here, changeme, …) in a key. It spells
	// out case-insensitivity with classes because JSON Schema regexes
	// (ECMA-262) have no (?i).
	placeholderExpr = `[Yy][Oo][Uu][Rr][-_]|[Ee][Xx][Aa][Mm][Pp][Ll][Ee]|[Cc][Hh][Aa][Nn][Gg][Ee][-_]?[Mm][Ee]|[Pp][Ll][Aa][Cc][Ee][Hh][Oo][Ll][Dd][Ee][Rr]|[Rr][Ee][Pp][Ll][Aa][Cc][Ee][-_]?[Mm][Ee]`
)

var (
	queueNamePattern     = regexp.MustCompile(queueNameExpr)
	postgresURLPattern   = regexp.MustCompile(postgresURLExpr)
	redisURLPattern      = regexp.MustCompile(redisURLExpr)
	keyPrefixPattern     = regexp.MustCompile(keyPrefixExpr)
	apiKeyPattern        = regexp.MustCompile(apiKeyExpr)
	keyNamePattern       = regexp.MustCompile(keyNameExpr)
	clusterNodePattern   = regexp.MustCompile(clusterNodeExpr)
	listenAddressPattern = regexp.MustCompile(listenAddressExpr)
	tlsSSLModePattern    = regexp.MustCompile(tlsSSLModeExpr)
	httpURLPattern       = regexp.MustCompile(httpURLExpr)
	emailPattern         = regexp.MustCompile(emailExpr)
	s3URLPattern         = regexp.MustCompile(s3URLExpr)
	placeholderPattern   = regexp.MustCompile(placeholderExpr)
)

// Validate checks every field against its rule, then the cross-field rules,
// and reports every broken rule at once.
func (c *Config) Validate() error {
	var probs []Problem
	check := func(ok bool, field, rule string) {
		if !ok {
			probs = append(probs, Problem{Field: field, Rule: rule})
		}
	}
	between := func(v, lo, hi int, field string) {
		check(v >= lo && v <= hi, field, fmt.Sprintf("must be between %d and %d (is %d)", lo, hi, v))
	}
	between64 := func(v, lo, hi int64, field string) {
		check(v >= lo && v <= hi, field, fmt.Sprintf("must be between %d and %d (is %d)", lo, hi, v))
	}
	betweenFloat := func(v, lo, hi float64, field string) {
		check(v >= lo && v <= hi, field, fmt.Sprintf("must be between %g and %g (is %g)", lo, hi, v))
	}
	atLeast := func(v, lo int, field string) {
		check(v >= lo, field, fmt.Sprintf("must be at least %d (is %d)", lo, v))
	}
	matches := func(re *regexp.Regexp, v, field string) {
		check(re.MatchString(v), field, "must match "+re.String())
	}
	// Lengths count characters, as JSON Schema's minLength does.
	minChars := func(v string, n int, field string) {
		check(utf8.RuneCountInString(v) >= n, field, fmt.Sprintf("must be at least %d characters", n))
	}

	check(slices.Contains(Environments, c.Environment), "environment",
		fmt.Sprintf("must be one of %s (is %q)", strings.Join(Environments, ", "), c.Environment))

	between(c.Redis.Port, 1, 65535, "redis.port")
	between(c.Redis.DB, 0, 1000, "redis.db")
	if c.Redis.URL != "" {
		_, err := url.Parse(c.Redis.URL)
		check(err == nil && redisURLPattern.MatchString(c.Redis.URL), "redis.url", "must be a redis:// or rediss:// URL")
	}
	for i, n := range c.Redis.ClusterNodes {
		check(clusterNodePattern.MatchString(n), fmt.Sprintf("redis.clusterNodes[%d]", i), "must be host:port")
	}
	check(keyPrefixPattern.MatchString(c.Redis.KeyPrefix), "redis.keyPrefix", "must be non-empty without whitespace")

	if cs := c.EnhancedClient.ConnectionString; cs != "" {
		_, err := url.Parse(cs)
		check(err == nil && postgresURLPattern.MatchString(cs),
			"enhancedClient.connectionString", "must be a postgres:// or postgresql:// URL")
	}
	between(c.EnhancedClient.MaxConnections, 1, 100, "enhancedClient.maxConnections")
	if k := c.Security.EncryptionKey; k != "" {
		minChars(k, 32, "security.encryptionKey")
	}

	t := c.Monitoring.AlertThresholds
	betweenFloat(t.ErrorRate, 0, 1, "monitoring.alertThresholds.errorRate")
	atLeast(t.QueueDepth, 1, "monitoring.alertThresholds.queueDepth")
	atLeast(t.ProcessingLatency, 1, "monitoring.alertThresholds.processingLatency")
	betweenFloat(t.MemoryUsage, 0.1, 1, "monitoring.alertThresholds.memoryUsage")
	between(c.Monitoring.HealthCheckInterval, 5000, 300000, "monitoring.healthCheckInterval")
	pd := c.Monitoring.PatternDetection
	for _, d := range []struct {
		threshold, window   int
		thresholdF, windowF string
	}{
		{pd.FailedAuthThreshold, pd.FailedAuthTimeWindow, "failedAuthThreshold", "failedAuthTimeWindow"},
		{pd.UnauthorizedAccessThreshold, pd.UnauthorizedAccessTimeWindow, "unauthorizedAccessThreshold", "unauthorizedAccessTimeWindow"},
		{pd.DataAccessVelocityThreshold, pd.DataAccessTimeWindow, "dataAccessVelocityThreshold", "dataAccessTimeWindow"},
		{pd.BulkOperationThreshold, pd.BulkOperationTimeWindow, "bulkOperationThreshold", "bulkOperationTimeWindow"},
	} {
		between(d.threshold, 1, 1_000_000, "monitoring.patternDetection."+d.thresholdF)
		between(d.window, 1000, 86_400_000, "monitoring.patternDetection."+d.windowF)
	}
	between(pd.OffHoursStart, 0, 23, "monitoring.patternDetection.offHoursStart")
	between(pd.OffHoursEnd, 0, 23, "monitoring.patternDetection.offHoursEnd")
	between(pd.LateEventToleranceMs, 0, 86_400_000, "monitoring.patternDetection.lateEventToleranceMs")
	between(pd.MaxTrackedKeys, 100, 10_000_000, "monitoring.patternDetection.maxTrackedKeys")
	check(slices.Contains(PatternStates, pd.State), "monitoring.patternDetection.state",
		fmt.Sprintf("must be one of %s (is %q)", strings.Join(PatternStates, ", "), pd.State))
	check(pd.State != "redis" || c.UsesRedis(), "monitoring.patternDetection.state",
		"is redis, which needs a Redis (redis.host, redis.url or redis.clusterNodes)")
	_, err := time.LoadLocation(pd.TimeZone)
	check(err == nil && pd.TimeZone != "", "monitoring.patternDetection.timeZone", "must be an IANA time zone such as UTC or Europe/Berlin")
	for _, org := range slices.Sorted(maps.Keys(pd.OrganizationTimeZones)) {
		_, err := time.LoadLocation(pd.OrganizationTimeZones[org])
		check(err == nil && pd.OrganizationTimeZones[org] != "", "monitoring.patternDetection.organizationTimeZones."+org,
			"must be an IANA time zone such as UTC or Europe/Berlin")
	}
	for i, w := range c.Monitoring.Notification.Webhooks {
		field := fmt.Sprintf("monitoring.notification.webhooks[%d]", i)
		check(w.Name != "", field+".name", "must not be empty")
		check(httpURLPattern.MatchString(w.URL), field+".url", "must be an http:// or https:// URL")
		minChars(w.Secret, 16, field+".secret")
		check(w.MinSeverity == "" || audit.Severity(w.MinSeverity).Rank() > 0, field+".minSeverity",
			"must be LOW, MEDIUM, HIGH or CRITICAL")
	}
	if n := c.Monitoring.Notification; n.Enabled && n.Provider == "webhook" {
		check(httpURLPattern.MatchString(n.URL), "monitoring.notification.url", "must be an http:// or https:// URL")
		minChars(n.Credentials.Secret, 16, "monitoring.notification.credentials.secret")
	}

	tr := c.Observability.Tracing
	betweenFloat(tr.SampleRate, 0, 1, "observability.tracing.sampleRate")
	check(slices.Contains(TracingExporters, tr.ExporterType), "observability.tracing.exporterType",
		fmt.Sprintf("must be one of %s (is %q)", strings.Join(TracingExporters, ", "), tr.ExporterType))
	check(tr.ExporterEndpoint == "" || httpURLPattern.MatchString(tr.ExporterEndpoint),
		"observability.tracing.exporterEndpoint", "must be an http:// or https:// URL (OTLP/HTTP)")
	between(tr.MaxSpans, 100, 1_000_000, "observability.tracing.maxSpans")
	between(c.Observability.Metrics.CollectionInterval, 1000, 300000, "observability.metrics.collectionInterval")

	between(c.ReliableProcessor.Concurrency, 1, 50, "reliableProcessor.concurrency")
	between(c.ReliableProcessor.BatchSize, 1, 10000, "reliableProcessor.batchSize")
	between(c.ReliableProcessor.LockDurationMs, 1000, 600000, "reliableProcessor.lockDurationMs")
	between(c.ReliableProcessor.StalledIntervalMs, 1000, 600000, "reliableProcessor.stalledIntervalMs")
	if c.ReliableProcessor.MaxStalledCount != nil {
		between(*c.ReliableProcessor.MaxStalledCount, 0, 100, "reliableProcessor.maxStalledCount")
	}
	// The circuit breaker's and the dead-letter queue's ranges are the original validator's.
	between(c.ReliableProcessor.CircuitBreakerConfig.FailureThreshold, 1, 100, "reliableProcessor.circuitBreakerConfig.failureThreshold")
	between(c.ReliableProcessor.CircuitBreakerConfig.RecoveryTimeout, 1000, 300000, "reliableProcessor.circuitBreakerConfig.recoveryTimeout")
	between(c.ReliableProcessor.DeadLetterConfig.AlertThreshold, 1, 1000, "reliableProcessor.deadLetterConfig.alertThreshold")
	matches(queueNamePattern, c.ReliableProcessor.QueueName, "reliableProcessor.queueName")
	matches(queueNamePattern, c.ReliableProcessor.DeadLetterConfig.QueueName, "reliableProcessor.deadLetterConfig.queueName")

	between(c.Worker.Port, 1, 65535, "worker.port")
	between(c.Worker.ShutdownTimeout, 1000, 600000, "worker.shutdownTimeout")

	check(c.Storage.DataDir != "", "storage.dataDir", "must not be empty")
	between(c.Storage.BatchMaxSize, 1, 10000, "storage.batchMaxSize")
	between(c.Storage.BatchMaxWaitMs, 1, 10000, "storage.batchMaxWaitMs")
	between(c.ConfigSource.PollIntervalMs, 1000, 3600000, "configSource.pollIntervalMs")
	between(c.Storage.PartitionsAhead, 1, 36, "storage.partitionsAhead")
	cp := c.Security.Checkpoint
	between(cp.IntervalMs, 100, 3600000, "security.checkpoint.intervalMs")
	between(cp.MaxRows, 1, 1000000, "security.checkpoint.maxRows")
	check(cp.Origin == "" || (!strings.ContainsAny(cp.Origin, "+ \t\n") && utf8.ValidString(cp.Origin)),
		"security.checkpoint.origin", "must be a name without spaces or '+'")
	check(cp.Publish.S3 == "" || strings.HasPrefix(cp.Publish.S3, "s3://") && len(cp.Publish.S3) > len("s3://"),
		"security.checkpoint.publish.s3", "must be s3://bucket/prefix")
	check(listenAddressPattern.MatchString(c.HTTP.Address), "http.address", "must be host:port or :port")
	for i, k := range c.HTTP.APIKeys {
		field := fmt.Sprintf("http.apiKeys[%d]", i)
		minChars(k, 16, field)
		// Clients never send the whitespace (HTTP trims header values), so
		// such a key could never match.
		check(k == "" || (apiKeyPattern.MatchString(k) && strings.TrimSpace(k) == k), field,
			"must not begin or end with whitespace")
	}
	names := map[string]bool{}
	for i, k := range c.HTTP.Keys {
		field := fmt.Sprintf("http.keys[%d]", i)
		check(keyNamePattern.MatchString(k.Name), field+".name", "must be 1 to 64 letters, digits, '.', '_' or '-'")
		check(!names[k.Name], field+".name", fmt.Sprintf("%q names two keys", k.Name))
		names[k.Name] = true
		minChars(k.Key, 16, field+".key")
		check(k.Key == "" || (apiKeyPattern.MatchString(k.Key) && strings.TrimSpace(k.Key) == k.Key), field+".key",
			"must not begin or end with whitespace")
		_, err := audit.ParseRole(k.Role)
		check(err == nil, field+".role", "must be one of "+strings.Join(roleNames(), ", "))
		check(len(k.Organizations) > 0, field+".organizations", `must name at least one organisation, or "*" for all`)
		for j, o := range k.Organizations {
			check(o != "" && len(o) <= 255 && apiKeyPattern.MatchString(o), fmt.Sprintf("%s.organizations[%d]", field, j),
				"must be 1 to 255 bytes without leading or trailing whitespace")
			check(o != audit.AllOrganizations || len(k.Organizations) == 1, fmt.Sprintf("%s.organizations[%d]", field, j),
				`"*" covers every organisation and stands alone`)
		}
	}
	if o := c.HTTP.OIDC; o != nil {
		check(httpURLPattern.MatchString(o.Issuer), "http.oidc.issuer", "must be an http:// or https:// URL")
		check(o.Audience != "", "http.oidc.audience", "must not be empty")
		check(o.JWKSURL == "" || httpURLPattern.MatchString(o.JWKSURL), "http.oidc.jwksUrl", "must be an http:// or https:// URL")
		for _, v := range slices.Sorted(maps.Keys(o.RoleMapping)) {
			_, err := audit.ParseRole(o.RoleMapping[v])
			check(err == nil, "http.oidc.roleMapping."+v, "must be one of "+strings.Join(roleNames(), ", "))
		}
		between(o.ClockSkewMs, 0, 600000, "http.oidc.clockSkewMs")
	}
	rl := c.HTTP.RateLimits
	for _, group := range []struct {
		name  string
		rates map[string]Rate
	}{{"perPrincipal", rl.PerPrincipal}, {"perRole", rl.PerRole}} {
		for _, role := range slices.Sorted(maps.Keys(group.rates)) {
			field := "http.rateLimits." + group.name + "." + role
			_, err := audit.ParseRole(role)
			check(err == nil, "http.rateLimits."+group.name, fmt.Sprintf("%q is not a role: one of %s", role, strings.Join(roleNames(), ", ")))
			checkRate(group.rates[role], field, check)
		}
	}
	checkRate(rl.FailedAuthPerAddress, "http.rateLimits.failedAuthPerAddress", check)
	check(c.HTTP.MaxBodyBytes >= 1024 && c.HTTP.MaxBodyBytes <= 1<<30, "http.maxBodyBytes",
		fmt.Sprintf("must be between 1024 and 1073741824 (is %d)", c.HTTP.MaxBodyBytes))
	between64(c.HTTP.MaxInFlightBytes, 1<<20, 1<<36, "http.maxInFlightBytes")
	check(c.HTTP.MaxInFlightBytes >= c.HTTP.MaxBodyBytes, "http.maxInFlightBytes",
		fmt.Sprintf("must be at least http.maxBodyBytes (%d), or no request of that size could be taken", c.HTTP.MaxBodyBytes))
	dl := c.Storage.DeadLetters
	between(dl.MaxEntries, 0, 100_000_000, "storage.deadLetters.maxEntries")
	between64(dl.MaxBytes, 0, 1<<40, "storage.deadLetters.maxBytes")
	between(dl.RetentionDays, 0, 36500, "storage.deadLetters.retentionDays")
	between(c.Validation.MaxStringLength, 1, 1_000_000, "validation.maxStringLength")
	between(c.Validation.MaxCustomFieldDepth, 1, 64, "validation.maxCustomFieldDepth")
	between(c.Validation.MaxFutureSkewMs, 0, 86_400_000, "validation.maxFutureSkewMs")
	between(c.Validation.MaxEventBytes, 256, 16<<20, "validation.maxEventBytes")
	check(int64(c.Validation.MaxEventBytes) <= c.HTTP.MaxBodyBytes, "validation.maxEventBytes", "must not exceed http.maxBodyBytes")
	check(slices.Contains(logLevels, c.Logging.Level), "logging.level",
		fmt.Sprintf("must be one of %s (is %q)", strings.Join(logLevels, ", "), c.Logging.Level))
	check(c.Logging.Format == "" || c.Logging.Format == "json" || c.Logging.Format == "text", "logging.format", "must be json or text")

	probs = append(probs, c.Compliance.problems()...)
	if c.Environment == "production" {
		probs = append(probs, c.productionProblems()...)
	}
	if len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
}

var logLevels = []string{"debug", "info", "warn", "error"}

// checkRate checks one token bucket: a non-negative rate and a burst of at
// least 1 when the rate limits anything.
func checkRate(r Rate, field string, check func(ok bool, field, rule string)) {
	check(r.RequestsPerSecond >= 0 && r.RequestsPerSecond <= 1e6, field+".requestsPerSecond",
		fmt.Sprintf("must be between 0 (no limit) and 1000000 (is %g)", r.RequestsPerSecond))
	check(r.RequestsPerSecond == 0 || (r.Burst >= 1 && r.Burst <= 1e7), field+".burst",
		fmt.Sprintf("must be between 1 and 10000000 when requestsPerSecond limits (is %d)", r.Burst))
}

func roleNames() []string {
	names := make([]string, len(audit.Roles))
	for i, r := range audit.Roles {
		names[i] = string(r)
	}
	return names
}

// productionProblems are the rules that only production has (the original
// required database TLS and no debug logging there; we also refuse the README's
// sample key, which the original accepted anywhere).
func (c *Config) productionProblems() []Problem {
	var probs []Problem
	if cs := c.EnhancedClient.ConnectionString; cs != "" && !requiresTLS(cs) {
		probs = append(probs, Problem{"enhancedClient.connectionString",
			"must require TLS in production (sslmode=require, verify-ca or verify-full)"})
	}
	switch k := c.Security.EncryptionKey; {
	case k == "":
		// Without it producer signatures are not verified at all.
		probs = append(probs, Problem{"security.encryptionKey", "must be set in production"})
	case placeholderPattern.MatchString(k):
		probs = append(probs, Problem{"security.encryptionKey",
			"must not be a placeholder in production (no your-…, example, changeme, placeholder or replace-me)"})
	}
	if c.Logging.Level == "debug" {
		// Debug logs may carry event contents.
		probs = append(probs, Problem{"logging.level", "must not be debug in production"})
	}
	return probs
}

// requiresTLS reports whether a PostgreSQL URL makes the client insist on TLS.
// Every sslmode given must be a TLS one: pgx reads only the first, and a later
// sslmode=disable next to a require is a mistake worth refusing.
func requiresTLS(connString string) bool {
	u, err := url.Parse(connString)
	if err != nil || !tlsSSLModePattern.MatchString(connString) {
		return false
	}
	for _, mode := range u.Query()["sslmode"] {
		if mode != "require" && mode != "verify-ca" && mode != "verify-full" {
			return false
		}
	}
	return true
}

// UsesRedis reports whether the worker consumes the BullMQ queue on Redis.
func (c *Config) UsesRedis() bool {
	return c.Redis.Host != "" || c.Redis.URL != "" || len(c.Redis.ClusterNodes) > 0
}

// RecoveryTimeout is how long the circuit breaker stays open before a probe.
func (c *Config) RecoveryTimeout() time.Duration {
	return time.Duration(c.ReliableProcessor.CircuitBreakerConfig.RecoveryTimeout) * time.Millisecond
}

// UsesPostgres reports whether events go to PostgreSQL (else to the embedded SQLite store).
func (c *Config) UsesPostgres() bool { return c.EnhancedClient.ConnectionString != "" }

// SQLitePath is the embedded store's database file.
func (c *Config) SQLitePath() string { return filepath.Join(c.Storage.DataDir, "audit.db") }

// Rules are the validation rules this configuration asks for.
func (c *Config) Rules() audit.Rules {
	r := audit.DefaultRules()
	r.MaxStringLength = c.Validation.MaxStringLength
	r.MaxCustomFieldDepth = c.Validation.MaxCustomFieldDepth
	r.MaxFutureSkew = time.Duration(c.Validation.MaxFutureSkewMs) * time.Millisecond
	r.MaxEventBytes = c.Validation.MaxEventBytes
	return r
}

// ShutdownTimeout is how long a graceful shutdown may take.
func (c *Config) ShutdownTimeout() time.Duration {
	return time.Duration(c.Worker.ShutdownTimeout) * time.Millisecond
}

// PollInterval is how often the configuration source is checked.
func (c *Config) PollInterval() time.Duration {
	return time.Duration(c.ConfigSource.PollIntervalMs) * time.Millisecond
}

// DeadLetterRetention is how long a dead letter is kept after its last
// refusal; 0 keeps it until the quota needs the room.
func (c *Config) DeadLetterRetention() time.Duration {
	return time.Duration(c.Storage.DeadLetters.RetentionDays) * 24 * time.Hour
}

// BatchMaxWait is how long the first event of a batch may wait for more.
func (c *Config) BatchMaxWait() time.Duration {
	return time.Duration(c.Storage.BatchMaxWaitMs) * time.Millisecond
}
