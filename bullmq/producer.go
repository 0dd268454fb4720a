package bullmq

import (
	"context"
	"encoding/json"
	"fmt"
)

// NewJob is one job for AddBulk.
type NewJob struct {
	Name string
	// Data is the job data as JSON text (nil means {}).
	Data []byte
	Opts JobOptions
}

// Add stores a job exactly as Node's Queue.add would (same hash fields, lists,
// scores, markers and events) and returns its id. With opts.JobID set and a job of
// that id already present, nothing is stored, a "duplicated" event is written and
// the existing id is returned, which makes adds with a custom id idempotent.
func (q *Queue) Add(ctx context.Context, name string, data []byte, opts JobOptions) (string, error) {
	argv, err := q.addArgs(name, data, opts)
	if err != nil {
		return "", err
	}
	res, err := q.run(ctx, scriptAdd, "add", argv...)
	if err != nil {
		return "", err
	}
	return addResultID(res)
}

// AddBulk adds several jobs in one pipeline (like Node's addBulk: one round trip,
// not one transaction) and returns their ids in order.
func (q *Queue) AddBulk(ctx context.Context, jobs []NewJob) ([]string, error) {
	argvs := make([][]any, len(jobs))
	for i, j := range jobs {
		argv, err := q.addArgs(j.Name, j.Data, j.Opts)
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", i, err)
		}
		argvs[i] = argv
	}
	res, err := q.runPipelined(ctx, scriptAdd, "add bulk", argvs)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(res))
	for i, r := range res {
		if ids[i], err = addResultID(r); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func (q *Queue) addArgs(name string, data []byte, opts JobOptions) ([]any, error) {
	if len(data) == 0 {
		data = []byte("{}")
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("bullmq: add to %s: data is not valid JSON", q.keys.Name)
	}
	if opts.JobID != "" {
		if why := validCustomID(opts.JobID); why != "" {
			return nil, fmt.Errorf("bullmq: add to %s: custom job id %q %s", q.keys.Name, opts.JobID, why)
		}
	}
	if opts.Priority < 0 || opts.Priority > MaxPriority {
		return nil, fmt.Errorf("bullmq: add to %s: priority %d outside 0..%d", q.keys.Name, opts.Priority, MaxPriority)
	}
	if opts.Delay < 0 {
		return nil, fmt.Errorf("bullmq: add to %s: negative delay %s", q.keys.Name, opts.Delay)
	}
	optsJSON, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("bullmq: add to %s: encode opts: %w", q.keys.Name, err)
	}
	lifo := "0"
	if opts.Lifo {
		lifo = "1"
	}
	return []any{opts.JobID, name, string(data), string(optsJSON), q.nowMs(),
		opts.Delay.Milliseconds(), opts.Priority, lifo}, nil
}

func addResultID(res any) (string, error) {
	arr, ok := res.([]any)
	if !ok || len(arr) != 2 {
		return "", fmt.Errorf("bullmq: add: unexpected script reply %T (%v)", res, res)
	}
	id, ok := arr[0].(string)
	if !ok {
		return "", fmt.Errorf("bullmq: add: unexpected job id %T (%v)", arr[0], arr[0])
	}
	return id, nil
}
