package telemetry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "warn", "")
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
	text, _ := NewLogger(&buf, "info", "text")
	text.Info("hello")
	if !strings.Contains(buf.String(), "msg=hello") {
		t.Errorf("text format: %q", buf.String())
	}
	if _, err := NewLogger(&buf, "loud", ""); err == nil {
		t.Error("bad level accepted")
	}
	if _, err := NewLogger(&buf, "info", "xml"); err == nil {
		t.Error("bad format accepted")
	}
}
