package bullmq

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The blocking connection of a cluster re-reads the slot map as often as the
// shared client, so that both follow a failover at the same time.
func TestBlockingConnKeepsClusterReloadInterval(t *testing.T) {
	shared := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{"127.0.0.1:1"}, ClusterStateReloadInterval: 2 * time.Second,
	})
	defer shared.Close()
	b, err := newBlockingConn(shared, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if got := b.client.(*redis.ClusterClient).Options().ClusterStateReloadInterval; got != 2*time.Second {
		t.Errorf("blocking connection's ClusterStateReloadInterval = %s, want 2s", got)
	}
}
