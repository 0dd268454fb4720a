package main

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/config"
)

// A refused connection does not make go-redis re-read the slot map, so the
// cluster client must re-read it often: with go-redis's default (60 s) the
// worker stalled for a minute after its master failed over.
func TestClusterClientReloadsSlotMapOften(t *testing.T) {
	cfg := config.Default()
	cfg.Redis.ClusterNodes = []string{"127.0.0.1:1", "127.0.0.1:2"}
	rdb, err := newRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	cl, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client is %T, want *redis.ClusterClient", rdb)
	}
	if got := cl.Options().ClusterStateReloadInterval; got != clusterStateReload || got > 5*time.Second {
		t.Errorf("ClusterStateReloadInterval = %s, want %s (at most 5 s)", got, clusterStateReload)
	}
}
