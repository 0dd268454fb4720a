package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Config is the whole configuration file. Sections the original file has and this
// worker does not use yet are accepted and ignored, so existing files keep working.
type Config struct {
	Redis             Redis             `json:"redis"`
	EnhancedClient    EnhancedClient    `json:"enhancedClient"`
	Security          Security          `json:"security"`
	ReliableProcessor ReliableProcessor `json:"reliableProcessor"`
	Worker            Worker            `json:"worker"`

	// Our own sections.
	Storage    Storage    `json:"storage"`
	HTTP       HTTP       `json:"http"`
	Validation Validation `json:"validation"`
	Logging    Logging    `json:"logging"`
}

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
	EncryptionKey string `json:"encryptionKey"`
	Algorithm     string `json:"algorithm"`
}

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
}

// HTTP configures the HTTP server.
type HTTP struct {
	// Address to listen on; default ":<worker.port>", or 127.0.0.1:3001 for the embedded default.
	Address      string   `json:"address"`
	APIKeys      []string `json:"apiKeys"`      // bearer keys for ingest; generated into DataDir when empty
	MaxBodyBytes int64    `json:"maxBodyBytes"` // default 8 MiB
}

// Validation sets the event rules' limits.
type Validation struct {
	MaxStringLength     int `json:"maxStringLength"`
	MaxCustomFieldDepth int `json:"maxCustomFieldDepth"`
	MaxFutureSkewMs     int `json:"maxFutureSkewMs"`
	MaxEventBytes       int `json:"maxEventBytes"`
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

func (c *Config) applyDefaults() {
	rules := audit.DefaultRules()
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setInt(&c.Worker.Port, 3001)
	setInt(&c.Worker.ShutdownTimeout, 10000)
	setInt(&c.EnhancedClient.MaxConnections, 20)
	setInt(&c.Storage.BatchMaxSize, 1000)
	setInt(&c.Storage.BatchMaxWaitMs, 5)
	setInt(&c.Storage.PartitionsAhead, 3)
	setInt(&c.Validation.MaxStringLength, rules.MaxStringLength)
	setInt(&c.Validation.MaxCustomFieldDepth, rules.MaxCustomFieldDepth)
	setInt(&c.Validation.MaxFutureSkewMs, int(rules.MaxFutureSkew/time.Millisecond))
	setInt(&c.Validation.MaxEventBytes, rules.MaxEventBytes)
	setInt(&c.ReliableProcessor.Concurrency, 3)
	setInt(&c.ReliableProcessor.BatchSize, 1000)
	setInt(&c.ReliableProcessor.LockDurationMs, 30000)
	setInt(&c.ReliableProcessor.StalledIntervalMs, 30000)
	if c.ReliableProcessor.MaxStalledCount == nil {
		one := 1
		c.ReliableProcessor.MaxStalledCount = &one
	}
	setInt(&c.ReliableProcessor.CircuitBreakerConfig.FailureThreshold, 5)
	setInt(&c.ReliableProcessor.CircuitBreakerConfig.RecoveryTimeout, 60000)
	setInt(&c.ReliableProcessor.DeadLetterConfig.AlertThreshold, 10)
	if c.Redis.Host != "" {
		setInt(&c.Redis.Port, 6379)
	}
	if c.Redis.KeyPrefix == "" {
		c.Redis.KeyPrefix = "bull"
	}
	if c.ReliableProcessor.QueueName == "" {
		c.ReliableProcessor.QueueName = "audit-events"
	}
	if c.ReliableProcessor.DeadLetterConfig.QueueName == "" {
		c.ReliableProcessor.DeadLetterConfig.QueueName = "audit-events-failed"
	}
	if c.Storage.DataDir == "" {
		c.Storage.DataDir = "audit-data"
	}
	if c.HTTP.Address == "" {
		c.HTTP.Address = ":" + strconv.Itoa(c.Worker.Port)
	}
	if c.HTTP.MaxBodyBytes == 0 {
		c.HTTP.MaxBodyBytes = 8 << 20
	}
	if c.Logging.Level == "" {
		c.Logging.Level = "info"
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
func Parse(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return Config{}, &Error{Problems: []Problem{{Field: typeErr.Field, Rule: "must be a " + typeErr.Type.String()}}}
		}
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Problem is one broken rule: the field (dotted path) and the rule.
type Problem struct {
	Field string
	Rule  string
}

// Error lists every rule a configuration breaks.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Rule
	}
	return "invalid configuration: " + strings.Join(parts, "; ")
}

var queueNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_{}-]+$`)

// Validate checks every field against its rule.
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

	if cs := c.EnhancedClient.ConnectionString; cs != "" {
		u, err := url.Parse(cs)
		check(err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql"),
			"enhancedClient.connectionString", "must be a postgres:// or postgresql:// URL")
	}
	between(c.EnhancedClient.MaxConnections, 1, 100, "enhancedClient.maxConnections")
	if k := c.Security.EncryptionKey; k != "" {
		check(len(k) >= 32, "security.encryptionKey", "must be at least 32 characters")
	}
	between(c.Worker.Port, 1, 65535, "worker.port")
	between(c.Worker.ShutdownTimeout, 1000, 600000, "worker.shutdownTimeout")
	if c.Redis.Host != "" {
		between(c.Redis.Port, 1, 65535, "redis.port")
	}
	between(c.Redis.DB, 0, 1000, "redis.db")
	if c.Redis.URL != "" {
		u, err := url.Parse(c.Redis.URL)
		check(err == nil && (u.Scheme == "redis" || u.Scheme == "rediss"), "redis.url", "must be a redis:// or rediss:// URL")
	}
	for i, n := range c.Redis.ClusterNodes {
		_, _, err := net.SplitHostPort(n)
		check(err == nil, fmt.Sprintf("redis.clusterNodes[%d]", i), "must be host:port")
	}
	check(!strings.ContainsAny(c.Redis.KeyPrefix, " \t\r\n"), "redis.keyPrefix", "must not contain whitespace")
	between(c.ReliableProcessor.Concurrency, 1, 50, "reliableProcessor.concurrency")
	between(c.ReliableProcessor.BatchSize, 1, 10000, "reliableProcessor.batchSize")
	between(c.ReliableProcessor.LockDurationMs, 1000, 600000, "reliableProcessor.lockDurationMs")
	between(c.ReliableProcessor.StalledIntervalMs, 1000, 600000, "reliableProcessor.stalledIntervalMs")
	between(*c.ReliableProcessor.MaxStalledCount, 0, 100, "reliableProcessor.maxStalledCount")
	between(c.ReliableProcessor.CircuitBreakerConfig.FailureThreshold, 1, 100, "reliableProcessor.circuitBreakerConfig.failureThreshold")
	between(c.ReliableProcessor.CircuitBreakerConfig.RecoveryTimeout, 1000, 300000, "reliableProcessor.circuitBreakerConfig.recoveryTimeout")
	between(c.ReliableProcessor.DeadLetterConfig.AlertThreshold, 1, 1000000, "reliableProcessor.deadLetterConfig.alertThreshold")
	check(queueNamePattern.MatchString(c.ReliableProcessor.QueueName), "reliableProcessor.queueName",
		"must match "+queueNamePattern.String())
	check(queueNamePattern.MatchString(c.ReliableProcessor.DeadLetterConfig.QueueName),
		"reliableProcessor.deadLetterConfig.queueName", "must match "+queueNamePattern.String())
	between(c.Storage.BatchMaxSize, 1, 10000, "storage.batchMaxSize")
	between(c.Storage.BatchMaxWaitMs, 1, 10000, "storage.batchMaxWaitMs")
	between(c.Storage.PartitionsAhead, 1, 36, "storage.partitionsAhead")
	if _, _, err := net.SplitHostPort(c.HTTP.Address); err != nil {
		check(false, "http.address", "must be host:port or :port")
	}
	for i, k := range c.HTTP.APIKeys {
		check(len(k) >= 16, fmt.Sprintf("http.apiKeys[%d]", i), "must be at least 16 characters")
	}
	check(c.HTTP.MaxBodyBytes >= 1024 && c.HTTP.MaxBodyBytes <= 1<<30, "http.maxBodyBytes", "must be between 1024 and 1073741824")
	between(c.Validation.MaxStringLength, 1, 1_000_000, "validation.maxStringLength")
	between(c.Validation.MaxCustomFieldDepth, 1, 64, "validation.maxCustomFieldDepth")
	between(c.Validation.MaxFutureSkewMs, 0, 86_400_000, "validation.maxFutureSkewMs")
	between(c.Validation.MaxEventBytes, 256, 16<<20, "validation.maxEventBytes")
	check(int64(c.Validation.MaxEventBytes) <= c.HTTP.MaxBodyBytes, "validation.maxEventBytes", "must not exceed http.maxBodyBytes")
	switch c.Logging.Level {
	case "debug", "info", "warn", "error":
	default:
		check(false, "logging.level", "must be one of debug, info, warn, error")
	}
	switch c.Logging.Format {
	case "", "json", "text":
	default:
		check(false, "logging.format", "must be json or text")
	}
	if len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
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

// BatchMaxWait is how long the first event of a batch may wait for more.
func (c *Config) BatchMaxWait() time.Duration {
	return time.Duration(c.Storage.BatchMaxWaitMs) * time.Millisecond
}
