package monitor

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisState is the State shared by every worker process: each process keeps
// the windows in memory (a MemoryState, its replica) and the processes share
// them through a log in Redis, one stream per detector.
//
// A batch appends its ops to its detectors' streams and, in the same MULTI,
// reads the entries other workers appended since this process's previous
// batch. It applies those to the replica first, then its own. So every
// process applies the same ops in each stream's order, and counts an event
// as one process holding all the windows would: an event another worker
// logged first (a redelivery) is already in the window and not counted
// again, and five failed logins split across two workers reach five in
// whichever worker logs the fifth.
//
// Redis does a handful of commands per batch, none per event. A stream is
// trimmed (by its entries' ids, Redis's clock) once its entries can no longer
// be counted: after the longest keep of its ops (the window's retention; an
// off-hours marker's night and tolerance) and logSlack; a stream no process
// appends to any more expires after as long. A process that starts
// reads its detectors' streams from the beginning before its first batch.
// Applying an entry twice changes nothing (members and markers are added
// once), so an entry whose reply was lost is simply applied with the next
// batch.
type RedisState struct {
	rdb     redis.Cmdable
	base    string // every key starts with it; it holds the one hash tag
	replica *MemoryState
	// slack is how much longer than its ops' keep a stream keeps entries.
	slack time.Duration

	// turn lets one batch of this process at a time log and apply: the
	// replica must see the entries in the streams' order.
	turn chan struct{}
	// Guarded by turn: per stream the id of the last entry applied, and
	// Redis's clock (ms) as the newest id gave it.
	cursor        map[string]string
	serverMs      int64
	legacyDropped bool // the keys of the previous layout were unlinked

	replayed, malformed atomic.Int64 // see LogStats
}

// logSlack covers event clocks ahead of the worker's (validation allows five
// minutes by default) and clocks that differ between workers and Redis.
const logSlack = 10 * time.Minute

// LogRetention is how long the shared log keeps a window op under c: the
// longest window's retention (2·window + late tolerance) and logSlack. Redis
// memory for the log levels off once the worker has run this long at a steady
// rate. (Off-hours markers are kept until their night ends, but a marker is
// logged once per principal and night.)
func LogRetention(c Config) time.Duration {
	longest := max(c.FailedAuth.Window, c.UnauthorizedAccess.Window, c.DataVelocity.Window, c.BulkOperation.Window)
	return 2*longest + c.LateTolerance + logSlack
}

// replayChunk bounds the entries one reply brings (an entry is a batch's ops).
const replayChunk = 100

// opsField names the one field of a log entry.
const opsField = "o"

// NewRedisState keeps the log under keys starting with prefix (e.g.
// "audit:"), all in one Redis Cluster slot.
func NewRedisState(rdb redis.Cmdable, prefix string) (*RedisState, error) {
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("monitor: redis key prefix %q: must not contain braces (the keys carry their own hash tag)", prefix)
	}
	return &RedisState{rdb: rdb, base: "{" + prefix + "monitor}:", replica: NewMemoryState(),
		slack: logSlack, turn: make(chan struct{}, 1), cursor: make(map[string]string)}, nil
}

// LogStats reports the ops of other workers this process applied, and the
// log entries it could not read (and skipped).
func (s *RedisState) LogStats() (replayed, malformed int64) {
	return s.replayed.Load(), s.malformed.Load()
}

// Len is the number of keys the replica tracks now.
func (s *RedisState) Len() int { return s.replica.Len() }

// stream is the log of one detector's ops within a batch.
type stream struct {
	pattern string
	ops     []int // positions in the batch
	keep    int64 // ms: the longest keep of its ops
}

// patternOf is a state key's first part: its detector, whose log it goes to,
// so that each log is trimmed after its own retention.
func patternOf(key string) string {
	pattern, _, _ := strings.Cut(key, ":")
	return pattern
}

// logOf names the log of a detector (a pattern).
func (s *RedisState) logOf(pattern string) string { return s.base + "log:" + pattern }

// streamOf names the log of a state key.
func (s *RedisState) streamOf(key string) string { return s.logOf(patternOf(key)) }

func (s *RedisState) apply(ctx context.Context, now int64, maxKeys int, ops []op) ([]result, int, error) {
	if len(ops) == 0 {
		return nil, 0, nil
	}
	var streams []stream
	for i := range ops {
		if ops[i].window == 0 && s.replica.marked(ops[i].key, now) {
			// A marker this process holds already (an off-hours night
			// noticed): the op changes nothing anywhere, and logging every
			// such event would keep a whole night of them in Redis.
			continue
		}
		pattern := patternOf(ops[i].key)
		j := 0
		for j < len(streams) && streams[j].pattern != pattern {
			j++
		}
		if j == len(streams) {
			streams = append(streams, stream{pattern: pattern})
		}
		streams[j].ops = append(streams[j].ops, i)
		streams[j].keep = max(streams[j].keep, ops[i].keep)
	}
	names := make([]string, len(streams))
	for j, st := range streams {
		names[j] = s.logOf(st.pattern)
	}

	select {
	case s.turn <- struct{}{}:
		defer func() { <-s.turn }()
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("monitor: shared log (%d ops): waiting for this process's previous batch: %w", len(ops), ctx.Err())
	}
	if len(streams) == 0 {
		return s.replica.apply(ctx, now, maxKeys, ops)
	}

	backlogs, ids, err := s.log(ctx, ops, streams, names)
	if err != nil {
		return nil, 0, err
	}
	evicted := 0
	for i, name := range names {
		n, err := s.catchUp(ctx, name, backlogs[i], ids[i], now, maxKeys)
		evicted += n
		if err != nil {
			// This batch's entries are applied with the next one, as another worker's.
			return nil, 0, err
		}
	}
	res, n, err := s.replica.apply(ctx, now, maxKeys, ops)
	// Only now are this batch's entries applied: the cursors move past them.
	for i, name := range names {
		s.cursor[name] = ids[i]
		if ms, _, ok := strings.Cut(ids[i], "-"); ok {
			if v, err := strconv.ParseInt(ms, 10, 64); err == nil {
				s.serverMs = max(s.serverMs, v)
			}
		}
	}
	return res, evicted + n, err
}

// log appends the batch's ops to their streams in one MULTI, which reads
// first, per stream, the entries since this process's last (up to
// replayChunk): nothing can come between the two. It returns those entries
// and the ids of the batch's own.
func (s *RedisState) log(ctx context.Context, ops []op, streams []stream, names []string) ([][]redis.XMessage, []string, error) {
	pipe := s.rdb.TxPipeline()
	if !s.legacyDropped {
		pipe.Unlink(ctx, s.base+"index", s.base+"small", s.base+"version", s.base+"lock")
	}
	ranges := make([]*redis.XMessageSliceCmd, len(streams))
	adds := make([]*redis.StringCmd, len(streams))
	for i, st := range streams {
		ranges[i] = pipe.XRangeN(ctx, names[i], s.after(names[i]), "+", replayChunk)
		add := &redis.XAddArgs{Stream: names[i], Values: []any{opsField, encodeOps(ops, st.ops)}}
		if s.serverMs > 0 {
			add.MinID = strconv.FormatInt(s.serverMs-st.keep-s.slack.Milliseconds(), 10)
			add.Approx = true
		}
		adds[i] = pipe.XAdd(ctx, add)
		// A stream no worker writes any more (all stopped) goes when its
		// newest entry can no longer be counted.
		pipe.PExpire(ctx, names[i], time.Duration(st.keep)*time.Millisecond+s.slack)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, fmt.Errorf("monitor: shared log: append %d ops: %w", len(ops), err)
	}
	s.legacyDropped = true
	backlogs := make([][]redis.XMessage, len(streams))
	ids := make([]string, len(streams))
	for i := range streams {
		backlogs[i], ids[i] = ranges[i].Val(), adds[i].Val()
	}
	return backlogs, ids, nil
}

// catchUp applies the entries of one stream that precede this batch's entry
// (id): those the MULTI brought, then, when it brought a full chunk, the rest
// in chunks. It returns the keys dropped at the cap.
func (s *RedisState) catchUp(ctx context.Context, name string, msgs []redis.XMessage, id string, now int64, maxKeys int) (int, error) {
	evicted := 0
	for {
		evicted += s.replay(ctx, msgs, now, maxKeys)
		if len(msgs) < replayChunk {
			return evicted, nil
		}
		from := msgs[len(msgs)-1].ID
		s.cursor[name] = from
		var err error
		if msgs, err = s.rdb.XRangeN(ctx, name, "("+from, "("+id, replayChunk).Result(); err != nil {
			return evicted, fmt.Errorf("monitor: shared log: read %s: %w", name, err)
		}
	}
}

// after is the XRANGE start past the last entry applied from the stream.
func (s *RedisState) after(name string) string {
	if c, ok := s.cursor[name]; ok {
		return "(" + c
	}
	return "-"
}

// replay applies other workers' entries to the replica; it returns the keys
// dropped at the cap.
func (s *RedisState) replay(ctx context.Context, msgs []redis.XMessage, now int64, maxKeys int) int {
	var ops []op
	for _, m := range msgs {
		raw, _ := m.Values[opsField].(string)
		var err error
		if ops, err = decodeOps(ops, []byte(raw)); err != nil {
			s.malformed.Add(1)
		}
	}
	if len(ops) == 0 {
		return 0
	}
	s.replayed.Add(int64(len(ops)))
	_, evicted, _ := s.replica.apply(ctx, now, maxKeys, ops)
	return evicted
}
