package bullmq

import (
	"context"
	"errors"
	"testing"
)

func TestCountsListGetRemove(t *testing.T) {
	e := newEnv(t)
	q := e.queue("inspect")
	ctx := context.Background()
	ids := addJobs(t, q, 3, JobOptions{Attempts: 1})
	prio, _ := q.Add(ctx, "inspect", []byte(`{}`), JobOptions{Priority: 2})
	c := e.consumer(q, ConsumerOptions{})
	fetched, err := c.Fetch(ctx, 1)
	if err != nil || len(fetched) != 1 || fetched[0].ID != ids[0] {
		t.Fatalf("fetch: %v %v", fetched, err)
	}
	counts, err := q.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[StateWaiting] != 2 || counts[StateActive] != 1 || counts[StatePrioritized] != 1 || counts[StateFailed] != 0 {
		t.Errorf("counts = %v", counts)
	}
	waiting, err := q.JobIDs(ctx, StateWaiting, 0, 10)
	if err != nil || len(waiting) != 2 || waiting[0] != ids[1] || waiting[1] != ids[2] {
		t.Errorf("waiting ids = %v, %v; want %v next first", waiting, err, ids[1:])
	}
	if page, _ := q.JobIDs(ctx, StateWaiting, 1, 10); len(page) != 1 || page[0] != ids[2] {
		t.Errorf("second page = %v", page)
	}
	job, err := q.GetJob(ctx, ids[1])
	if err != nil || string(job.Data) != `{"n":1}` {
		t.Errorf("GetJob = %+v, %v", job, err)
	}
	if _, err := q.GetJob(ctx, "nope"); !errors.Is(err, ErrJobMissing) {
		t.Errorf("GetJob of a missing job: %v", err)
	}
	errs, err := q.Remove(ctx, []string{ids[1], prio, ids[0], "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrLockMismatch) || !errors.Is(errs[3], ErrJobMissing) {
		t.Errorf("remove errors = %v", errs)
	}
	counts, _ = q.Counts(ctx)
	if counts[StateWaiting] != 1 || counts[StatePrioritized] != 0 || counts[StateActive] != 1 {
		t.Errorf("counts after remove = %v", counts)
	}
	if n := e.rdb.Exists(ctx, q.Keys().Job(ids[1])).Val(); n != 0 {
		t.Error("removed job's hash still exists")
	}
	last := e.rdb.XRevRangeN(ctx, q.Keys().Key("events"), "+", "-", 1).Val()
	if len(last) != 1 || last[0].Values["event"] != "removed" {
		t.Errorf("last event = %v", last)
	}
}
