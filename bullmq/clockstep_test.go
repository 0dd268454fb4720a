package bullmq

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// The worker host's wall clock steps an hour forward and then two back while
// one consumer holds jobs and renews their locks and another has died. Locks
// are Redis TTLs (SET PX) and the stalled check compares lock existence, not
// timestamps, so neither step loses or steals a live lock, and the dead
// consumer's jobs are still recovered. Only the timestamps written to the job
// hashes (processedOn, finishedOn) follow the stepped client clock.
func TestClockStepKeepsLocksAndRecoversStalledJobs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue("clock-step")
	k := q.Keys()
	for range 4 {
		mustAdd(t, q, "a", `{}`, JobOptions{})
	}
	alive := e.consumer(q, ConsumerOptions{LockDuration: 5 * time.Second, StalledInterval: 50 * time.Millisecond})
	dead := e.consumer(q, ConsumerOptions{LockDuration: 200 * time.Millisecond, StalledInterval: 50 * time.Millisecond})
	held := mustFetch(t, alive, 2)
	orphaned := mustFetch(t, dead, 2)
	check := func(what string) []string {
		t.Helper()
		var rec []string
		// The guard key lives StalledInterval (a Redis TTL): poll past it.
		testenv.Eventually(t, 5*time.Second, what, func() bool {
			var err error
			rec, err = alive.CheckStalled(ctx)
			return err == nil && exists(t, e.rdb, k.Key("stalled-check"))
		})
		slices.Sort(rec)
		return rec
	}
	renew := func(what string) {
		t.Helper()
		lost, err := alive.ExtendLocks(ctx, held)
		if err != nil || len(lost) != 0 {
			t.Fatalf("%s: renewal lost %v (err %v), want none", what, lost, err)
		}
	}

	wantEqual(t, "first check (every job locked)", fmt.Sprint(check("first stalled check")), "[]")
	e.clock.Add(time.Hour)
	renew("after +1 h")
	// The dead consumer's locks expire by their Redis TTL, whatever the clock says.
	testenv.Eventually(t, 5*time.Second, "the dead consumer's locks expire", func() bool {
		return !exists(t, e.rdb, k.Job(orphaned[0].ID)+":lock") && !exists(t, e.rdb, k.Job(orphaned[1].ID)+":lock")
	})
	e.rdb.Del(ctx, k.Key("stalled-check"))
	rec := check("stalled check after +1 h")
	want := []string{orphaned[0].ID, orphaned[1].ID}
	slices.Sort(want)
	wantEqual(t, "recovered after +1 h", fmt.Sprint(rec), fmt.Sprint(want))

	e.clock.Add(-2 * time.Hour)
	renew("after -1 h")
	e.rdb.Del(ctx, k.Key("stalled-check"))
	wantEqual(t, "recovered after -1 h (renewed locks are not stalled)", fmt.Sprint(check("stalled check after -1 h")), "[]")

	errs, err := alive.Complete(ctx, held, make([][]byte, len(held)))
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("complete held job %s: %v (its lock was lost or stolen)", held[i].ID, err)
		}
	}
	again := mustFetch(t, alive, 4)
	got := ids(again)
	slices.Sort(got)
	wantEqual(t, "recovered jobs fetched again", fmt.Sprint(got), fmt.Sprint(want))
	noErrs(t)(alive.Complete(ctx, again, make([][]byte, len(again))))
	wantEqual(t, "completed once each", e.rdb.ZCard(ctx, k.Key("completed")).Val(), int64(4))
	finished := hgetall(t, e.rdb, k.Job(held[0].ID))["finishedOn"]
	wantEqual(t, "finishedOn follows the client clock", finished, strconv.FormatInt(e.clock.Now().UnixMilli(), 10))
}

// A delayed job's due time is a client timestamp (BullMQ's protocol, shared
// with Node producers): a step back of the worker's clock after the job was
// delayed postpones it by the size of the step. This is the one place a
// wall-clock step changes what the queue does; the test pins it down.
func TestClockStepBackPostponesDelayedJobs(t *testing.T) {
	e := newEnv(t)
	q := e.queue("clock-step-delayed")
	id := mustAdd(t, q, "a", `{}`, JobOptions{Delay: time.Second})
	c := e.consumer(q, ConsumerOptions{})
	e.clock.Add(-time.Hour)
	e.clock.Add(2 * time.Second)
	if jobs := mustFetch(t, c, 1); len(jobs) != 0 {
		t.Fatalf("fetched %v 1 s after its due time on the stepped-back clock, want it held", ids(jobs))
	}
	e.clock.Add(time.Hour)
	jobs := mustFetch(t, c, 1)
	wantEqual(t, "fetched once the clock is past the due time again", fmt.Sprint(ids(jobs)), "["+id+"]")
}
