package config

import (
	"errors"
	"os"
	"path/filepath"
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
		{`{"worker":{"port":"3001"}}`, "worker.port", "must be a int"},
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
