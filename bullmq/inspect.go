package bullmq

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

var scriptRemove = mustScript("remove")

// Job states as BullMQ names them, for listing and counting.
const (
	StateWaiting     = "wait"
	StatePaused      = "paused"
	StateActive      = "active"
	StatePrioritized = "prioritized"
	StateDelayed     = "delayed"
	StateCompleted   = "completed"
	StateFailed      = "failed"
)

var listStates = []string{StateWaiting, StatePaused, StateActive}
var setStates = []string{StatePrioritized, StateDelayed, StateCompleted, StateFailed}

// Counts returns how many jobs are in each state, with one cheap command per
// state (LLEN or ZCARD) in one pipeline; it never loads jobs.
func (q *Queue) Counts(ctx context.Context) (map[string]int64, error) {
	pipe := q.rdb.Pipeline()
	cmds := map[string]*redis.IntCmd{}
	for _, s := range listStates {
		cmds[s] = pipe.LLen(ctx, q.keys.Key(s))
	}
	for _, s := range setStates {
		cmds[s] = pipe.ZCard(ctx, q.keys.Key(s))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("bullmq: count jobs of queue %s: %w", q.keys.Name, err)
	}
	out := make(map[string]int64, len(cmds))
	for s, c := range cmds {
		out[s] = c.Val()
	}
	return out, nil
}

// JobIDs lists the ids of jobs in a state, at most limit of them starting at
// offset, in processing order for waiting jobs (next first) and score order for
// the sorted states.
func (q *Queue) JobIDs(ctx context.Context, state string, offset, limit int64) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	key := q.keys.Key(state)
	var ids []string
	var err error
	switch {
	case slices.Contains(listStates, state):
		// Consumers take from the right end, so the next job is the last element.
		ids, err = q.rdb.LRange(ctx, key, -offset-limit, -offset-1).Result()
		slices.Reverse(ids)
	case slices.Contains(setStates, state):
		ids, err = q.rdb.ZRange(ctx, key, offset, offset+limit-1).Result()
	default:
		return nil, fmt.Errorf("bullmq: unknown job state %q", state)
	}
	if err != nil {
		return nil, fmt.Errorf("bullmq: list %s jobs of queue %s: %w", state, q.keys.Name, err)
	}
	return ids, nil
}

// GetJob reads one job; the error wraps ErrJobMissing if there is none.
func (q *Queue) GetJob(ctx context.Context, id string) (*Job, error) {
	h, err := q.rdb.HGetAll(ctx, q.keys.Job(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("bullmq: get job %s of queue %s: %w", id, q.keys.Name, err)
	}
	if len(h) == 0 {
		return nil, codeError("get", id, -1)
	}
	return jobFromHash(id, h, nil), nil
}

// Remove deletes jobs that no worker holds, in one script call. The per-job
// errors wrap ErrJobMissing or ErrLockMismatch (the job is being processed).
func (q *Queue) Remove(ctx context.Context, ids []string) ([]error, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	res, err := q.run(ctx, scriptRemove, "remove", args...)
	if err != nil {
		return nil, err
	}
	codes, err := asInt64s(res, len(ids))
	if err != nil {
		return nil, fmt.Errorf("bullmq: remove: %w", err)
	}
	errs := make([]error, len(ids))
	for i, c := range codes {
		errs[i] = codeError("remove", ids[i], c)
	}
	return errs, nil
}
