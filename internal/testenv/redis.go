package testenv

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisURL is used when AUDIT_TEST_REDIS_URL is not set.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// RedisURL returns the URL of the test Redis server after checking that it
// answers; when it does not, the test is skipped (or failed, see RequireServices).
func RedisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("AUDIT_TEST_REDIS_URL")
	if u == "" {
		u = DefaultRedisURL
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		tb.Fatalf("parse AUDIT_TEST_REDIS_URL %s: %v", u, err)
	}
	if err, down := redisDown.Load(u); down {
		// Known down since an earlier test of this process: skip at once
		// instead of waiting for the same refusal again.
		Unavailable(tb, "Redis", redisStart, err.(error))
	}
	opts.MaxRetries = -1 // a refused connection is an answer, not a reason to retry
	client := redis.NewClient(opts)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		redisDown.Store(u, err)
		Unavailable(tb, "Redis", redisStart, err)
	}
	return u
}

const redisStart = `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no`

// redisDown remembers, per URL, a Redis that did not answer.
var redisDown sync.Map

// RedisKeyPrefix returns a key prefix unique to this test ("test-<random>"), so
// tests sharing one Redis never see each other's keys.
func RedisKeyPrefix(tb testing.TB) string {
	tb.Helper()
	return "test-" + randomSuffix()
}
