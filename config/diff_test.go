package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEffectOf(t *testing.T) {
	for path, want := range map[string]Effect{
		"logging.level":  EffectNow,
		"logging.format": EffectRestart,
		"monitoring.patternDetection.failedAuthThreshold": EffectNow,
		"monitoring.patternDetection.state":               EffectRestart,
		"monitoring.enabled":                              EffectRestart,
		"http.apiKeys":                                    EffectNow,
		"http.apiKeys[1]":                                 EffectNow,
		"http.address":                                    EffectRestart,
		"reliableProcessor.circuitBreakerConfig.recoveryTimeout": EffectNow,
		"reliableProcessor.deadLetterConfig.queueName":           EffectRestart,
		"enhancedClient.connectionString":                        EffectRestart,
		"validation.maxStringLength":                             EffectNow,
		"storage.dataDir":                                        EffectRestart,
	} {
		if got := EffectOf(path); got != want {
			t.Errorf("EffectOf(%q) = %s, want %s", path, got, want)
		}
	}
}

func TestDiff(t *testing.T) {
	old := Default()
	old.HTTP.APIKeys = []string{"first-key-0123456789"}
	old.EnhancedClient.ConnectionString = "postgres://audit:old-db-pw@db/audit?sslpassword=old-ssl-pw"
	newer := old
	newer.HTTP.APIKeys = []string{"second-key-0123456789", "third-key-0123456789"}
	newer.EnhancedClient.ConnectionString = "postgres://audit:new-db-pw@db2/audit?sslpassword=new-ssl-pw"
	newer.Logging.Level = "debug"
	newer.Worker.Port = 3002
	newer.Monitoring.PatternDetection.State = "memory"

	got := Diff(old, newer)
	want := []Change{
		{Path: "enhancedClient.connectionString",
			Old: `"postgres://audit:***@db/audit?sslpassword=***"`, New: `"postgres://audit:***@db2/audit?sslpassword=***"`, Effect: EffectRestart},
		{Path: "http.apiKeys", Old: "1 items", New: "2 items", Effect: EffectNow},
		{Path: "http.apiKeys[0]", Old: "***", New: "*** (changed)", Effect: EffectNow},
		{Path: "http.apiKeys[1]", Old: "", New: `"***"`, Effect: EffectNow},
		{Path: "logging.level", Old: `"info"`, New: `"debug"`, Effect: EffectNow},
		{Path: "monitoring.patternDetection.state", Old: `"auto"`, New: `"memory"`, Effect: EffectRestart},
		{Path: "worker.port", Old: "3001", New: "3002", Effect: EffectRestart},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Diff:\n got %+v\nwant %+v", got, want)
	}
	text, _ := json.Marshal(got)
	for _, secret := range []string{"db-pw", "ssl-pw", "key-0123456789"} {
		if strings.Contains(string(text), secret) {
			t.Errorf("Diff shows %s: %s", secret, text)
		}
	}
	if d := Diff(old, old); len(d) != 0 {
		t.Errorf("Diff of a configuration with itself = %+v", d)
	}
	if !got[0].NeedsRestart() || got[1].NeedsRestart() {
		t.Error("NeedsRestart disagrees with Effect")
	}
}

// The embedded default's status has only a source and the pending fields; a
// followed source adds its state. Both keep the field names clients read.
func TestReloadStatusJSON(t *testing.T) {
	embedded, _ := json.Marshal(ReloadStatus{Source: "embedded default", PendingRestart: []string{}})
	if string(embedded) != `{"source":"embedded default","pendingRestart":[]}` {
		t.Errorf("embedded: %s", embedded)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	followed, _ := json.Marshal(ReloadStatus{Source: "file.json", PendingRestart: []string{"worker.port"},
		SourceStatus: &SourceStatus{Version: "v1", LoadedAt: at, LastCheck: at, WatchMode: "poll"}})
	var fields map[string]any
	if err := json.Unmarshal(followed, &fields); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"source", "pendingRestart", "version", "loadedAt", "fromCache", "degraded",
		"lastCheck", "lastError", "rejected", "watchMode"} {
		if _, ok := fields[name]; !ok {
			t.Errorf("followed source: no %q in %s", name, followed)
		}
	}
	if _, ok := fields["lastReload"]; ok {
		t.Errorf("lastReload before any reload: %s", followed)
	}
}
