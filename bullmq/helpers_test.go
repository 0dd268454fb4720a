package bullmq

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// env is one test's Redis client and key prefix; every key the test creates is
// deleted when it ends.
type env struct {
	t      testing.TB
	rdb    *redis.Client
	prefix string
	clock  *testenv.Clock
}

func newEnv(t testing.TB) *env {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatalf("parse redis url: %v", err)
	}
	e := &env{t: t, rdb: redis.NewClient(opts), prefix: testenv.RedisKeyPrefix(t),
		clock: testenv.NewClock(time.UnixMilli(1795696026823))}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		keys, err := e.rdb.Keys(ctx, e.prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = e.rdb.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Logf("clean up keys %s*: %v", e.prefix, err)
		}
		_ = e.rdb.Close()
	})
	return e
}

// queue uses the fake clock, so timestamps and due times are deterministic.
func (e *env) queue(name string) *Queue {
	return NewQueue(e.rdb, name, QueueOptions{Prefix: e.prefix, Now: e.clock.Now})
}

// realQueue uses the wall clock (for tests that block in Wait).
func (e *env) realQueue(name string) *Queue {
	return NewQueue(e.rdb, name, QueueOptions{Prefix: e.prefix})
}

func (e *env) consumer(q *Queue, opts ConsumerOptions) *Consumer {
	e.t.Helper()
	c, err := NewConsumer(q, opts)
	if err != nil {
		e.t.Fatalf("new consumer: %v", err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Small Redis readers that fail the test on error.

func hgetall(t testing.TB, rdb *redis.Client, key string) map[string]string {
	t.Helper()
	h, err := rdb.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	return h
}

func lrange(t testing.TB, rdb *redis.Client, key string) []string {
	t.Helper()
	l, err := rdb.LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatalf("LRANGE %s: %v", key, err)
	}
	return l
}

func zrange(t testing.TB, rdb *redis.Client, key string) []redis.Z {
	t.Helper()
	z, err := rdb.ZRangeWithScores(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatalf("ZRANGE %s: %v", key, err)
	}
	return z
}

func zscore(t testing.TB, rdb *redis.Client, key, member string) (float64, bool) {
	t.Helper()
	s, err := rdb.ZScore(context.Background(), key, member).Result()
	if err == redis.Nil {
		return 0, false
	}
	if err != nil {
		t.Fatalf("ZSCORE %s %s: %v", key, member, err)
	}
	return s, true
}

func exists(t testing.TB, rdb *redis.Client, key string) bool {
	t.Helper()
	n, err := rdb.Exists(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}

// events returns the field maps of the queue's events stream, oldest first.
func events(t testing.TB, rdb *redis.Client, q *Queue) []map[string]string {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), q.Keys().Key("events"), "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE events: %v", err)
	}
	out := make([]map[string]string, len(msgs))
	for i, m := range msgs {
		out[i] = map[string]string{}
		for k, v := range m.Values {
			out[i][k] = fmt.Sprint(v)
		}
	}
	return out
}

// eventsNamed filters events by their "event" field.
func eventsNamed(t testing.TB, rdb *redis.Client, q *Queue, name string) []map[string]string {
	var out []map[string]string
	for _, ev := range events(t, rdb, q) {
		if ev["event"] == name {
			out = append(out, ev)
		}
	}
	return out
}

func lastEvents(t testing.TB, rdb *redis.Client, q *Queue, n int) []map[string]string {
	all := events(t, rdb, q)
	if len(all) < n {
		return all
	}
	return all[len(all)-n:]
}

// dump renders every key of a queue (relative to its base) with its type and
// content, normalising what legitimately differs between two runs: lock tokens
// and stream entry ids. Stream entries keep their field order.
func dump(t testing.TB, rdb *redis.Client, k Keys) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, k.Base()+"*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	out := map[string]string{}
	for _, key := range keys {
		rel := strings.TrimPrefix(key, k.Base())
		typ, err := rdb.Type(ctx, key).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", key, err)
		}
		var val string
		switch typ {
		case "string":
			val = rdb.Get(ctx, key).Val()
			if strings.HasSuffix(rel, ":lock") {
				val = "<token>"
			}
		case "list":
			val = fmt.Sprint(rdb.LRange(ctx, key, 0, -1).Val())
		case "set":
			m := rdb.SMembers(ctx, key).Val()
			sort.Strings(m)
			val = fmt.Sprint(m)
		case "zset":
			val = fmt.Sprint(rdb.ZRangeWithScores(ctx, key, 0, -1).Val())
		case "hash":
			h := rdb.HGetAll(ctx, key).Val()
			fields := make([]string, 0, len(h))
			for f, v := range h {
				fields = append(fields, f+"="+v)
			}
			sort.Strings(fields)
			val = strings.Join(fields, " ")
		case "stream":
			var parts []string
			for _, m := range rdb.XRange(ctx, key, "-", "+").Val() {
				fields := make([]string, 0, len(m.Values))
				for f, v := range m.Values {
					fields = append(fields, fmt.Sprintf("%s=%v", f, v))
				}
				sort.Strings(fields)
				parts = append(parts, "{"+strings.Join(fields, " ")+"}")
			}
			val = strings.Join(parts, "\n")
		default:
			val = "?"
		}
		out[rel] = typ + ": " + val
	}
	return out
}

func mustAdd(t testing.TB, q *Queue, name, data string, opts JobOptions) string {
	t.Helper()
	id, err := q.Add(context.Background(), name, []byte(data), opts)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	return id
}

// mustAddBulk adds n jobs named name with data {} and opts in one AddBulk.
func mustAddBulk(t testing.TB, q *Queue, n int, name string, opts JobOptions) {
	t.Helper()
	jobs := make([]NewJob, n)
	for i := range jobs {
		jobs[i] = NewJob{Name: name, Data: []byte(`{}`), Opts: opts}
	}
	if _, err := q.AddBulk(context.Background(), jobs); err != nil {
		t.Fatalf("add bulk: %v", err)
	}
}

func mustFetch(t testing.TB, c *Consumer, n int) []*Job {
	t.Helper()
	jobs, err := c.Fetch(context.Background(), n)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return jobs
}

func ids(jobs []*Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func wantEqual[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantFields(t testing.TB, what string, got map[string]string, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s = %v, want exactly %v", what, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s[%s] = %q, want %q (all: %v)", what, k, got[k], v, got)
		}
	}
}

// noErrs checks the ([]error, error) of Complete/FailFinal: noErrs(t)(c.Complete(...)).
func noErrs(t testing.TB) func([]error, error) {
	return func(errs []error, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range errs {
			if e != nil {
				t.Errorf("job %d: %v", i, e)
			}
		}
	}
}
