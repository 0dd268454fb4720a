package monitor

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

//go:embed state.lua
var stateLua string

// stateScript runs with EVALSHA, falling back to EVAL on NOSCRIPT.
var stateScript = redis.NewScript(stateLua)

// RedisState is the State shared by every worker process: one script call per
// batch adds and counts all of the batch's ops atomically, so of two workers
// exactly one sees a given event complete a burst.
type RedisState struct {
	rdb   redis.Scripter
	base  string // every key starts with it; it holds the one hash tag
	index string
}

// NewRedisState keeps the windows under keys starting with prefix (e.g.
// "audit:"), all in one Redis Cluster slot.
func NewRedisState(rdb redis.Scripter, prefix string) (*RedisState, error) {
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("monitor: redis key prefix %q: must not contain braces (the keys carry their own hash tag)", prefix)
	}
	base := "{" + prefix + "monitor}:"
	return &RedisState{rdb: rdb, base: base, index: base + "index"}, nil
}

func (s *RedisState) apply(ctx context.Context, now int64, maxKeys int, ops []op) ([]result, int, error) {
	if len(ops) == 0 {
		return nil, 0, nil
	}
	keys := make([]string, 1, len(ops)+1)
	keys[0] = s.index
	slot := make(map[string]int, len(ops))
	argv := make([]any, 0, 3+6*len(ops))
	argv = append(argv, now, maxKeys, maxEvidenceKeys)
	for i := range ops {
		o := &ops[i]
		k, ok := slot[o.key]
		if !ok {
			keys = append(keys, s.base+o.key)
			k = len(keys) // Lua's KEYS are 1-based
			slot[o.key] = k
		}
		argv = append(argv, k, o.member, o.at, o.window, o.threshold, o.expireAt)
	}
	raw, err := stateScript.Run(ctx, s.rdb, keys, argv...).Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("monitor: redis windows (%d ops): %w", len(ops), err)
	}
	if len(raw) != len(ops)+1 {
		return nil, 0, fmt.Errorf("monitor: redis windows: %d results for %d ops", len(raw)-1, len(ops))
	}
	evicted, _ := raw[0].(int64)
	res := make([]result, len(ops))
	for i, r := range raw[1:] {
		fields, ok := r.([]any)
		if !ok || len(fields) < 2 {
			return nil, 0, fmt.Errorf("monitor: redis windows: malformed result %v", r)
		}
		res[i].added = asInt(fields[0]) == 1
		res[i].count = int(asInt(fields[1]))
		if len(fields) >= 4 {
			res[i].first, res[i].last = asInt(fields[2]), asInt(fields[3])
			for _, k := range fields[4:] {
				if s, ok := k.(string); ok {
					res[i].keys = append(res[i].keys, s)
				}
			}
		}
	}
	return res, int(evicted), nil
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}
