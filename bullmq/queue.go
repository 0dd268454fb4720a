package bullmq

import (
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is BullMQ's default key prefix.
const DefaultPrefix = "bull"

// Keys builds the Redis keys of one queue. All keys are prefix + ":" + name + ":" +
// suffix, exactly as BullMQ builds them, so a hash tag in the prefix ("{bull}") or
// in the name ("{audit-events}") keeps every key of the queue in one cluster slot.
type Keys struct {
	Prefix string
	Name   string
}

// NewKeys returns the keys of queue name under prefix ("" means DefaultPrefix).
func NewKeys(prefix, name string) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Keys{Prefix: prefix, Name: name}
}

// Base is the job key prefix "<prefix>:<name>:"; a job's hash is Base()+id.
func (k Keys) Base() string { return k.Prefix + ":" + k.Name + ":" }

// Key returns the queue-level key with the given suffix ("wait", "events", ...).
func (k Keys) Key(suffix string) string { return k.Base() + suffix }

// Job returns the hash key of job id.
func (k Keys) Job(id string) string { return k.Base() + id }

// scriptKeySuffixes is the KEYS layout every script expects (see lua/common.lua).
var scriptKeySuffixes = []string{
	"wait", "active", "paused", "prioritized", "pc", "delayed", "completed", "failed",
	"stalled", "stalled-check", "meta", "events", "marker", "id",
}

func (k Keys) scriptKeys() []string {
	keys := make([]string, len(scriptKeySuffixes))
	for i, s := range scriptKeySuffixes {
		keys[i] = k.Key(s)
	}
	return keys
}

// QueueOptions configures a Queue.
type QueueOptions struct {
	// Prefix of all keys; "" means DefaultPrefix ("bull").
	Prefix string
	// Now is the clock used for timestamps written to Redis (processedOn,
	// finishedOn, delayed due times). BullMQ uses the client's clock, not Redis
	// TIME, so Node and Go hosts must agree. Nil means time.Now.
	Now func() time.Time
}

// Queue is one BullMQ queue on a Redis client. It is safe for concurrent use.
type Queue struct {
	rdb  redis.UniversalClient
	keys Keys
	now  func() time.Time
}

// NewQueue returns the queue name on rdb. rdb may be a *redis.Client or a
// *redis.ClusterClient (the queue's keys must then share a hash tag).
func NewQueue(rdb redis.UniversalClient, name string, opts QueueOptions) *Queue {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Queue{rdb: rdb, keys: NewKeys(opts.Prefix, name), now: now}
}

// Keys returns the key builder of the queue.
func (q *Queue) Keys() Keys { return q.keys }

// Name returns the queue name.
func (q *Queue) Name() string { return q.keys.Name }

func (q *Queue) nowMs() int64 { return q.now().UnixMilli() }

// validCustomID mirrors the checks Node's Job does before adding with opts.jobId.
func validCustomID(id string) string {
	switch {
	case id == "0" || strings.HasPrefix(id, "0:"):
		return "must not be 0 or start with 0:"
	case strings.Contains(id, ":"):
		return "must not contain ':'"
	case isIntegerText(id):
		return "must not be an integer (it would collide with generated ids)"
	}
	return ""
}

func isIntegerText(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
