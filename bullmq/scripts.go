package bullmq

import (
	"context"
	"embed"
	"fmt"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFS embed.FS

// scripts holds every transition, each compiled once with lua/common.lua in front.
// redis.Script.Run uses EVALSHA and falls back to EVAL on NOSCRIPT, so a Redis
// restart or SCRIPT FLUSH costs one extra round trip, nothing more.
var (
	scriptAdd          = mustScript("add")
	scriptFetch        = mustScript("fetch")
	scriptFinish       = mustScript("finish")
	scriptRetryDelayed = mustScript("retry_delayed")
	scriptRetryNow     = mustScript("retry_now")
	scriptExtendLocks  = mustScript("extend_locks")
	scriptStalled      = mustScript("stalled")
	scriptMoveToWait   = mustScript("move_to_wait")
)

func mustScript(name string) *redis.Script {
	common, err := luaFS.ReadFile("lua/common.lua")
	if err != nil {
		panic(fmt.Sprintf("bullmq: embedded lua/common.lua: %v", err))
	}
	body, err := luaFS.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic(fmt.Sprintf("bullmq: embedded lua/%s.lua: %v", name, err))
	}
	return redis.NewScript(string(common) + "\n" + string(body))
}

// run executes script s for the queue: KEYS are all queue keys (so a cluster
// client routes to the queue's slot), ARGV[1] the job key prefix.
func (q *Queue) run(ctx context.Context, s *redis.Script, op string, args ...any) (any, error) {
	argv := make([]any, 0, len(args)+1)
	argv = append(argv, q.keys.Base())
	argv = append(argv, args...)
	res, err := s.Run(ctx, q.rdb, q.keys.scriptKeys(), argv...).Result()
	if err != nil {
		return nil, fmt.Errorf("bullmq: %s on queue %s: %w", op, q.keys.Name, err)
	}
	return res, nil
}

// runPipelined runs several calls of s in one pipeline. EVALSHA inside a pipeline
// cannot fall back per command, so calls that fail with NOSCRIPT are loaded and
// re-sent once; they did not execute, so re-sending them is safe.
func (q *Queue) runPipelined(ctx context.Context, s *redis.Script, op string, argvs [][]any) ([]any, error) {
	keys := q.keys.scriptKeys()
	build := func(pipe redis.Pipeliner, idx []int) []*redis.Cmd {
		cmds := make([]*redis.Cmd, len(idx))
		for i, j := range idx {
			argv := append([]any{q.keys.Base()}, argvs[j]...)
			cmds[i] = s.EvalSha(ctx, pipe, keys, argv...)
		}
		return cmds
	}
	all := make([]int, len(argvs))
	for i := range all {
		all[i] = i
	}
	out := make([]any, len(argvs))
	pending := all
	for attempt := 0; attempt < 2 && len(pending) > 0; attempt++ {
		if attempt > 0 {
			if err := s.Load(ctx, q.rdb).Err(); err != nil {
				return nil, fmt.Errorf("bullmq: %s on queue %s: load script: %w", op, q.keys.Name, err)
			}
		}
		pipe := q.rdb.Pipeline()
		cmds := build(pipe, pending)
		_, _ = pipe.Exec(ctx) // per-command errors are inspected below
		var retry []int
		for i, cmd := range cmds {
			res, err := cmd.Result()
			switch {
			case err == nil:
				out[pending[i]] = res
			case isNoScript(err) && attempt == 0:
				retry = append(retry, pending[i])
			default:
				return nil, fmt.Errorf("bullmq: %s on queue %s: %w", op, q.keys.Name, err)
			}
		}
		pending = retry
	}
	return out, nil
}

func isNoScript(err error) bool { return redis.HasErrorPrefix(err, "NOSCRIPT") }

// asInt64s converts a script's array-of-integers reply.
func asInt64s(res any, want int) ([]int64, error) {
	arr, ok := res.([]any)
	if !ok || len(arr) != want {
		return nil, fmt.Errorf("unexpected script reply %T (%v)", res, res)
	}
	out := make([]int64, len(arr))
	for i, v := range arr {
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("unexpected script reply element %T (%v)", v, v)
		}
		out[i] = n
	}
	return out, nil
}

func asStrings(res any) ([]string, error) {
	arr, ok := res.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected script reply %T (%v)", res, res)
	}
	out := make([]string, len(arr))
	for i, v := range arr {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected script reply element %T (%v)", v, v)
		}
		out[i] = s
	}
	return out, nil
}
