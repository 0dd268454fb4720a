package main

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/config"
)

// monitoring.patternDetection.state picks where the windows live, and a
// running worker keeps the one it started with.
func TestPatternState(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled here
	t.Cleanup(func() { _ = rdb.Close() })
	for _, tt := range []struct {
		state    string
		withRdb  bool
		want     string // the State's type, or "error"
		describe string
	}{
		{"auto", true, "*monitor.RedisState", "auto with Redis shares the windows"},
		{"auto", false, "*monitor.MemoryState", "auto without Redis keeps them in memory"},
		{"memory", true, "*monitor.MemoryState", "memory is honoured even with Redis"},
		{"redis", true, "*monitor.RedisState", "redis"},
		{"redis", false, "error", "redis without Redis is refused"},
	} {
		t.Run(tt.describe, func(t *testing.T) {
			cfg := config.Default()
			cfg.Monitoring.PatternDetection.State = tt.state
			var client redis.UniversalClient
			if tt.withRdb {
				client = rdb
			}
			st, err := patternState(cfg, client)
			got := fmt.Sprintf("%T", st)
			if err != nil {
				got = "error"
			}
			if got != tt.want {
				t.Fatalf("state %q (Redis: %v) gave %s (%v), want %s", tt.state, tt.withRdb, got, err, tt.want)
			}
		})
	}
	if config.EffectOf("monitoring.patternDetection.state") != config.EffectRestart {
		t.Error("monitoring.patternDetection.state is applied on reload; it must wait for a restart")
	}
	if config.EffectOf("monitoring.patternDetection.failedAuthThreshold") != config.EffectNow {
		t.Error("thresholds must stay reloadable")
	}
}
