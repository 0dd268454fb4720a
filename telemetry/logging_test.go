package telemetry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, level, err := NewLogger(&buf, "warn", "")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line (a buffer is not a terminal): %q", buf.String())
	}
	if line["msg"] != "shown" || line["k"] != float64(1) {
		t.Errorf("line = %v", line)
	}
	buf.Reset()
	if err := SetLevel(level, "debug"); err != nil {
		t.Fatal(err)
	}
	log.Debug("now shown")
	if !strings.Contains(buf.String(), "now shown") {
		t.Errorf("level change not applied: %q", buf.String())
	}
	buf.Reset()
	text, _, _ := NewLogger(&buf, "info", "text")
	text.Info("hello")
	if !strings.Contains(buf.String(), "msg=hello") {
		t.Errorf("text format: %q", buf.String())
	}
	if _, _, err := NewLogger(&buf, "loud", ""); err == nil {
		t.Error("bad level accepted")
	}
	if _, _, err := NewLogger(&buf, "info", "xml"); err == nil {
		t.Error("bad format accepted")
	}
}
