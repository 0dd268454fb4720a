package testenv

import (
	"context"
	"os"
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
	client := redis.NewClient(opts)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		Unavailable(tb, "Redis", `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no`, err)
	}
	return u
}

// RedisKeyPrefix returns a key prefix unique to this test ("test-<random>"), so
// tests sharing one Redis never see each other's keys.
func RedisKeyPrefix(tb testing.TB) string {
	tb.Helper()
	return "test-" + randomSuffix()
}
