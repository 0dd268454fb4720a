package health_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/health"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/postgres"
)

func TestDatabaseCheckOnPostgres(t *testing.T) {
	ctx := context.Background()
	store, err := postgres.Open(ctx, postgres.Config{URL: testenv.PostgresDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := health.NewChecker(health.Options{TTL: -1})
	c.Add("database", health.Database(store))
	r, _ := c.Check(ctx, "database")
	if r.Status != health.StatusOK || r.Details["connected"] != true {
		t.Fatalf("open store: %+v", r)
	}
	store.Close()
	r, _ = c.Check(ctx, "database")
	if r.Status != health.StatusCritical || !strings.HasPrefix(r.Message, "database unreachable: ") {
		t.Errorf("closed store: %+v", r)
	}
}

func TestRedisAndQueueChecksOnRedis(t *testing.T) {
	ctx := context.Background()
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	prefix := testenv.RedisKeyPrefix(t)
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+":*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	q := bullmq.NewQueue(rdb, "audit", bullmq.QueueOptions{Prefix: prefix})
	for range 3 {
		if _, err := q.Add(ctx, "audit", []byte(`{"action":"x"}`), bullmq.JobOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Add(ctx, "audit", []byte(`{"action":"later"}`), bullmq.JobOptions{Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}

	// Nothing listens on port 1: an unreachable Redis.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer down.Close()

	c := health.NewChecker(health.Options{Thresholds: &health.Thresholds{QueueDepth: 3}})
	c.Add("redis", health.Redis(health.PingFunc(func(ctx context.Context) error { return rdb.Ping(ctx).Err() })))
	c.Add("redis-down", health.Redis(health.PingFunc(func(ctx context.Context) error { return down.Ping(ctx).Err() })))
	c.Add("queue", health.Queue(q.Counts, c.Thresholds))
	rep := c.CheckAll(ctx)
	if r := rep.Components["redis"]; r.Status != health.StatusOK {
		t.Errorf("redis: %+v", r)
	}
	if r := rep.Components["redis-down"]; r.Status != health.StatusCritical || !strings.HasPrefix(r.Message, "redis unreachable: ") {
		t.Errorf("unreachable redis: %+v", r)
	}
	r := rep.Components["queue"]
	if r.Status != health.StatusWarning || r.Details["waiting"] != int64(3) || r.Details["delayed"] != int64(1) {
		t.Errorf("queue with 3 waiting, threshold 3: %+v", r)
	}
}
