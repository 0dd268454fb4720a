package monitor

import (
	"testing"
	"time"
)

func TestLogRetentionIsTheLongestWindowsKeep(t *testing.T) {
	c := DefaultConfig()
	// unauthorizedAccess: 2·10 min + 5 min tolerance, plus the slack.
	if got, want := LogRetention(c), 25*time.Minute+logSlack; got != want {
		t.Fatalf("LogRetention(default) = %s, want %s", got, want)
	}
	c.DataVelocity.Window = time.Hour
	if got, want := LogRetention(c), 2*time.Hour+5*time.Minute+logSlack; got != want {
		t.Fatalf("LogRetention(1 h data velocity window) = %s, want %s", got, want)
	}
}
