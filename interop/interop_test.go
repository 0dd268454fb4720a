package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// bullmqVersion is the npm package version these tests pin (package.json).
const bullmqVersion = "5.58.5"

const npmInstall = "npm ci --prefix interop --no-audit --no-fund"

// nodeTimeout bounds every script run.
const nodeTimeout = 30 * time.Second

// requireNode skips (or, with AUDIT_TEST_REQUIRE_SERVICES=1, fails) when node or
// the installed bullmq package is missing, and checks the installed version.
func requireNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Unavailable(t, "node (with interop/node_modules)", "install Node >= 20, then "+npmInstall, err)
	}
	raw, err := os.ReadFile(filepath.Join("node_modules", "bullmq", "package.json"))
	if err != nil {
		testenv.Unavailable(t, "the bullmq npm package (interop/node_modules)", npmInstall, err)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatalf("node_modules/bullmq/package.json: %v", err)
	}
	if pkg.Version != bullmqVersion {
		t.Fatalf("interop/node_modules has bullmq %s, want %s: run %s", pkg.Version, bullmqVersion, npmInstall)
	}
}

// harness is one subtest's Redis, key prefix and queue name.
type harness struct {
	t        *testing.T
	redisURL string
	rdb      *redis.Client
	prefix   string
	queue    string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	u := testenv.RedisURL(t)
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("parse redis url: %v", err)
	}
	h := &harness{t: t, redisURL: u, rdb: redis.NewClient(opts), prefix: testenv.RedisKeyPrefix(t), queue: "audit-events"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var keys []string
		iter := h.rdb.Scan(ctx, 0, h.prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		err := iter.Err()
		for len(keys) > 0 && err == nil {
			n := min(len(keys), 500)
			err = h.rdb.Del(ctx, keys[:n]...).Err()
			keys = keys[n:]
		}
		if err != nil {
			t.Logf("clean up keys %s:*: %v", h.prefix, err)
		}
		_ = h.rdb.Close()
	})
	return h
}

func (h *harness) goQueue(name string) *bullmq.Queue {
	return bullmq.NewQueue(h.rdb, name, bullmq.QueueOptions{Prefix: h.prefix})
}

func (h *harness) consumer(q *bullmq.Queue, opts bullmq.ConsumerOptions) *bullmq.Consumer {
	h.t.Helper()
	c, err := bullmq.NewConsumer(q, opts)
	if err != nil {
		h.t.Fatalf("new consumer: %v", err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// nodeCmd builds the command running node/<script> for queue (the harness's
// queue when "") with the common arguments.
func (h *harness) nodeCmd(ctx context.Context, script, queue string, args ...string) *exec.Cmd {
	if queue == "" {
		queue = h.queue
	}
	all := append([]string{filepath.Join("node", script), "--redis", h.redisURL, "--prefix", h.prefix, "--queue", queue}, args...)
	cmd := exec.CommandContext(ctx, "node", all...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// node runs a script to its end and decodes its JSON output into out.
func (h *harness) node(out any, script, queue string, args ...string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := h.nodeCmd(ctx, script, queue, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	decodeOutput(h.t, script, err, stdout.Bytes(), stderr.Bytes(), out)
}

// bg is a script running in the background.
type bg struct {
	h              *harness
	script         string
	cmd            *exec.Cmd
	cancel         context.CancelFunc
	stdout, stderr bytes.Buffer
}

func (h *harness) nodeStart(script, queue string, args ...string) *bg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	p := &bg{h: h, script: script, cancel: cancel}
	p.cmd = h.nodeCmd(ctx, script, queue, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		cancel()
		h.t.Fatalf("start %s: %v", script, err)
	}
	h.t.Cleanup(func() { // a no-op when wait already ran
		cancel()
		_ = p.cmd.Wait()
	})
	return p
}

// fail stops the script and fails the test with what it wrote to stderr
// (which is only safe to read once the script has ended).
func (p *bg) fail(t *testing.T, what string) {
	t.Helper()
	p.cancel()
	_ = p.cmd.Wait()
	t.Fatalf("%s; stderr of %s: %s", what, p.script, p.stderr.String())
}

// wait waits for the script to end and decodes its output.
func (p *bg) wait(out any) {
	p.h.t.Helper()
	err := p.cmd.Wait()
	p.cancel()
	decodeOutput(p.h.t, p.script, err, p.stdout.Bytes(), p.stderr.Bytes(), out)
}

func decodeOutput(t *testing.T, script string, err error, stdout, stderr []byte, out any) {
	t.Helper()
	if err != nil {
		t.Fatalf("node %s: %v\nstdout: %s\nstderr: %s", script, err, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	last := lines[len(lines)-1]
	if err := json.Unmarshal([]byte(last), out); err != nil {
		t.Fatalf("node %s: decode output: %v\nstdout: %s\nstderr: %s", script, err, stdout, stderr)
	}
}

// Script outputs.

// produceOne adds one audit event job with Node's Queue.add and opts, and
// returns its id.
func (h *harness) produceOne(t *testing.T, opts map[string]any) string {
	t.Helper()
	var p produced
	h.node(&p, "produce.mjs", "", "--jobs", jsonArg(t, []spec{{Name: h.queue, Data: auditEvent(1), Opts: opts}}))
	return p.IDs[0]
}

type produced struct {
	IDs  []string `json:"ids"`
	Jobs []struct {
		ID        string         `json:"id"`
		Name      string         `json:"name"`
		Data      string         `json:"data"`
		Opts      map[string]any `json:"opts"`
		Timestamp int64          `json:"timestamp"`
	} `json:"jobs"`
}

type nodeJob struct {
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	Data            string          `json:"data"`
	Opts            map[string]any  `json:"opts"`
	Timestamp       int64           `json:"timestamp"`
	Delay           int64           `json:"delay"`
	Priority        int             `json:"priority"`
	AttemptsMade    int             `json:"attemptsMade"`
	AttemptsStarted int             `json:"attemptsStarted"`
	StalledCounter  int             `json:"stalledCounter"`
	ProcessedOn     *int64          `json:"processedOn"`
	FinishedOn      *int64          `json:"finishedOn"`
	ProcessedBy     *string         `json:"processedBy"`
	FailedReason    *string         `json:"failedReason"`
	Stacktrace      []string        `json:"stacktrace"`
	Returnvalue     json.RawMessage `json:"returnvalue"`
	DeferredFailure *string         `json:"deferredFailure"`
	State           string          `json:"state"`
}

type inspected struct {
	Counts  map[string]int      `json:"counts"`
	Paused  bool                `json:"paused"`
	Jobs    map[string]*nodeJob `json:"jobs"`
	Workers []struct {
		Name    string `json:"name"`
		Rawname string `json:"rawname"`
	} `json:"workers"`
}

type observed struct {
	Events []struct {
		Event        string          `json:"event"`
		JobID        string          `json:"jobId"`
		Returnvalue  json.RawMessage `json:"returnvalue"`
		FailedReason string          `json:"failedReason"`
		Prev         string          `json:"prev"`
		Delay        string          `json:"delay"`
		AttemptsMade string          `json:"attemptsMade"`
	} `json:"events"`
	TimedOut bool     `json:"timedOut"`
	Missing  []string `json:"missing"`
}

// named returns the events of one name, per job id.
func (o *observed) named(event string) map[string]int {
	out := map[string]int{}
	for _, e := range o.Events {
		if e.Event == event {
			out[e.JobID]++
		}
	}
	return out
}

type workerRun struct {
	Attempts []struct {
		ID           string         `json:"id"`
		Name         string         `json:"name"`
		Data         string         `json:"data"`
		Opts         map[string]any `json:"opts"`
		AttemptsMade int            `json:"attemptsMade"`
		Timestamp    int64          `json:"timestamp"`
		Delay        int64          `json:"delay"`
		Priority     int            `json:"priority"`
		ProcessedOn  int64          `json:"processedOn"`
		StartedAt    int64          `json:"startedAt"`
	} `json:"attempts"`
	Completed []struct {
		ID          string          `json:"id"`
		Returnvalue json.RawMessage `json:"returnvalue"`
	} `json:"completed"`
	Failed []struct {
		ID           string `json:"id"`
		Reason       string `json:"reason"`
		AttemptsMade int    `json:"attemptsMade"`
	} `json:"failed"`
	TimedOut bool `json:"timedOut"`
}

func (h *harness) inspect(queue string, ids []string, workers bool) *inspected {
	h.t.Helper()
	args := []string{"--ids", strings.Join(ids, ",")}
	if workers {
		args = append(args, "--workers")
	}
	var out inspected
	h.node(&out, "inspect.mjs", queue, args...)
	return &out
}

// Go-side helpers.

// fetchN fetches until n jobs arrived (waiting on the marker in between) or the
// timeout passes, and returns them in fetch order.
func fetchN(t *testing.T, c *bullmq.Consumer, n int, timeout time.Duration) []*bullmq.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []*bullmq.Job
	for len(got) < n {
		jobs, err := c.Fetch(ctx, n-len(got))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		got = append(got, jobs...)
		if len(jobs) > 0 {
			continue
		}
		if ctx.Err() != nil {
			t.Fatalf("fetched %d of %d jobs within %s", len(got), n, timeout)
		}
		if _, err := c.Wait(ctx, 250*time.Millisecond); err != nil && ctx.Err() == nil {
			t.Fatalf("wait: %v", err)
		}
	}
	return got
}

// awaitStalled runs c's stalled check until it recovers something, and
// returns what it recovered.
func awaitStalled(t *testing.T, c *bullmq.Consumer) []string {
	t.Helper()
	var recovered []string
	testenv.Eventually(t, 5*time.Second, "the stalled check to recover a job", func() bool {
		var err error
		if recovered, err = c.CheckStalled(context.Background()); err != nil {
			t.Fatal(err)
		}
		return len(recovered) > 0
	})
	return recovered
}

func jobIDs(jobs []*bullmq.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func mustOK(t *testing.T, what string) func([]error, error) {
	return func(errs []error, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for i, e := range errs {
			if e != nil {
				t.Errorf("%s: job %d: %v", what, i, e)
			}
		}
	}
}

func returnValue(id string) []byte { return []byte(`{"ok":true,"id":"` + id + `"}`) }

// jsonEqual compares two JSON texts by value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("bad JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("bad JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// jobEvents returns the names of the stream events of one job, oldest first.
func (h *harness) jobEvents(queue, id string) []string {
	h.t.Helper()
	msgs, err := h.rdb.XRange(context.Background(), bullmq.NewKeys(h.prefix, queue).Key("events"), "-", "+").Result()
	if err != nil {
		h.t.Fatalf("XRANGE: %v", err)
	}
	var out []string
	for _, m := range msgs {
		if fmt.Sprint(m.Values["jobId"]) == id {
			out = append(out, fmt.Sprint(m.Values["event"]))
		}
	}
	return out
}

// The production options of the Node services.
func prodOpts(critical bool) map[string]any {
	prio := 0
	if critical {
		prio = 1
	}
	return map[string]any{"removeOnComplete": 100, "removeOnFail": false, "attempts": 1, "priority": prio}
}

func jsonArg(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type spec struct {
	Name string         `json:"name"`
	Data any            `json:"data"`
	Opts map[string]any `json:"opts"`
}

func auditEvent(i int) map[string]any {
	return map[string]any{
		"actor":  fmt.Sprintf("user-%d@example.test", i),
		"action": "login",
		"at":     "2026-01-02T03:04:05.678Z",
		"seq":    i,
		"ratio":  1.5,
		"meta":   map[string]any{"tags": []any{"a", "b"}, "note": "h\u00e9llo \u2713 \"quoted\" <tag> \\ /", "none": nil},
	}
}

func TestInterop(t *testing.T) {
	requireNode(t)
	t.Run("NodeAddGoComplete", testNodeAddGoComplete)
	t.Run("RemoveOnComplete100", testRemoveOnComplete)
	t.Run("PriorityOrder", testPriorityOrder)
	t.Run("Delay", testDelay)
	t.Run("RetryExponentialBackoff", testRetryBackoff)
	t.Run("FinalFailureKept", testFinalFailure)
	t.Run("StalledRecovery", testStalledRecovery)
	t.Run("KilledNodeWorkerRecoveredByGo", testKilledNodeWorker)
	t.Run("PausedQueue", testPaused)
	t.Run("GetWorkers", testGetWorkers)
	t.Run("GoProducerNodeWorker", testGoProducerNodeWorker)
	t.Run("GoAddMatchesNodeAdd", testGoAddMatchesNodeAdd)
	t.Run("MixedNodeAndGoWorkers", testMixedWorkers)
	t.Run("DeduplicationReleased", testDeduplication)
}

// Node Queue.add / addBulk with the production options → our consumer → Node sees
// the results exactly as a Node worker would leave them.
func testNodeAddGoComplete(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var specs []spec
	for i := 1; i <= 6; i++ {
		specs = append(specs, spec{Name: h.queue, Data: auditEvent(i), Opts: prodOpts(false)})
	}
	var single, bulk produced
	h.node(&single, "produce.mjs", "", "--jobs", jsonArg(t, specs[:3]))
	h.node(&bulk, "produce.mjs", "", "--jobs", jsonArg(t, specs[3:]), "--bulk")
	all := append(single.Jobs, bulk.Jobs...)
	ids := append(single.IDs, bulk.IDs...)
	if want := []string{"1", "2", "3", "4", "5", "6"}; !slices.Equal(ids, want) {
		t.Fatalf("node ids = %v, want %v", ids, want)
	}

	// The same jobs through a real Node worker, as the reference for the hash.
	ref := h.queue + "-ref"
	var refSingle, refBulk produced
	h.node(&refSingle, "produce.mjs", ref, "--jobs", jsonArg(t, specs[:3]))
	h.node(&refBulk, "produce.mjs", ref, "--jobs", jsonArg(t, specs[3:]), "--bulk")
	var refRun workerRun
	h.node(&refRun, "node-worker.mjs", ref, "--expect", "6", "--name", "go-interop", "--timeout", "15000")
	if refRun.TimedOut || len(refRun.Completed) != 6 {
		t.Fatalf("reference node worker: %+v", refRun)
	}

	obs := h.nodeStart("observe.mjs", "", "--ids", strings.Join(ids, ","), "--events", "completed,failed", "--from-start", "--timeout", "15000")

	q := h.goQueue(h.queue)
	c := h.consumer(q, bullmq.ConsumerOptions{WorkerName: "go-interop"})
	jobs := fetchN(t, c, 6, 10*time.Second)
	if got := jobIDs(jobs); !slices.Equal(got, ids) {
		t.Errorf("fetch order = %v, want %v", got, ids)
	}
	values := make([][]byte, len(jobs))
	for i, j := range jobs {
		stored, err := h.rdb.HGet(ctx, q.Keys().Job(j.ID), "data").Result()
		if err != nil {
			t.Fatal(err)
		}
		if string(j.Data) != stored {
			t.Errorf("job %s: Data = %s, Redis has %s", j.ID, j.Data, stored)
		}
		if string(j.Data) != all[i].Data {
			t.Errorf("job %s: Data = %s, Node's JSON.stringify gave %s", j.ID, j.Data, all[i].Data)
		}
		if j.Name != h.queue || j.Timestamp != all[i].Timestamp {
			t.Errorf("job %s: name %q timestamp %d, Node said %q %d", j.ID, j.Name, j.Timestamp, all[i].Name, all[i].Timestamp)
		}
		if reason, bad := j.Unsupported(); bad {
			t.Errorf("job %s unsupported: %s", j.ID, reason)
		}
		if n, _ := j.Opts.RemoveOnComplete.Limits(); n != 100 {
			t.Errorf("job %s: removeOnComplete keeps %d, want 100", j.ID, n)
		}
		if n, _ := j.Opts.RemoveOnFail.Limits(); n != -1 || !j.Opts.RemoveOnFail.IsSet() {
			t.Errorf("job %s: removeOnFail = %v, want false (keep all)", j.ID, j.Opts.RemoveOnFail)
		}
		if j.Opts.Attempts != 1 || j.Opts.Priority != 0 || j.AttemptsMade != 0 || j.AttemptsStarted != 1 {
			t.Errorf("job %s: attempts %d priority %d atm %d ats %d", j.ID, j.Opts.Attempts, j.Opts.Priority, j.AttemptsMade, j.AttemptsStarted)
		}
		values[i] = returnValue(j.ID)
	}
	mustOK(t, "complete")(c.Complete(ctx, jobs, values))

	var ev observed
	obs.wait(&ev)
	if ev.TimedOut {
		t.Errorf("QueueEvents did not see all jobs finish; missing %v", ev.Missing)
	}
	if got := ev.named("completed"); len(got) != 6 {
		t.Errorf("QueueEvents completed events per job = %v, want one for each of %v", got, ids)
	}
	for _, e := range ev.Events {
		if e.Event != "completed" || e.Prev != "active" || !jsonEqual(t, e.Returnvalue, returnValue(e.JobID)) {
			t.Errorf("QueueEvents event %+v, want completed prev=active returnvalue %s", e, returnValue(e.JobID))
		}
	}

	insp := h.inspect("", ids, false)
	if insp.Counts["completed"] != 6 || insp.Counts["waiting"] != 0 || insp.Counts["active"] != 0 || insp.Counts["failed"] != 0 {
		t.Errorf("getJobCounts = %v, want completed 6 and nothing else", insp.Counts)
	}
	refInsp := h.inspect(ref, append(refSingle.IDs, refBulk.IDs...), false)
	for _, id := range ids {
		got, want := insp.Jobs[id], refInsp.Jobs[id]
		if got == nil || want == nil {
			t.Fatalf("getJob(%s) = %+v (reference %+v)", id, got, want)
		}
		if got.State != "completed" || got.AttemptsMade != 1 || got.AttemptsStarted != 1 || got.FailedReason != nil ||
			len(got.Stacktrace) != 0 || got.ProcessedBy == nil || *got.ProcessedBy != "go-interop" {
			t.Errorf("getJob(%s) = %+v", id, got)
		}
		if !jsonEqual(t, got.Returnvalue, returnValue(id)) || !jsonEqual(t, want.Returnvalue, got.Returnvalue) {
			t.Errorf("getJob(%s).returnvalue = %s, Node worker left %s", id, got.Returnvalue, want.Returnvalue)
		}
		if got.ProcessedOn == nil || got.FinishedOn == nil || *got.ProcessedOn < got.Timestamp || *got.FinishedOn < *got.ProcessedOn {
			t.Errorf("getJob(%s): timestamp %d processedOn %v finishedOn %v", id, got.Timestamp, got.ProcessedOn, got.FinishedOn)
		}
		if got.Data != want.Data || got.Name != want.Name || !reflect.DeepEqual(got.Opts, want.Opts) ||
			got.Delay != want.Delay || got.Priority != want.Priority {
			t.Errorf("getJob(%s) = %+v, Node worker's job %+v", id, got, want)
		}
		// The raw hashes have the same fields; values equal except the times.
		gh := h.rdb.HGetAll(ctx, q.Keys().Job(id)).Val()
		rh := h.rdb.HGetAll(ctx, bullmq.NewKeys(h.prefix, ref).Job(id)).Val()
		for _, f := range []string{"timestamp", "processedOn", "finishedOn"} {
			delete(gh, f)
			delete(rh, f)
		}
		if !reflect.DeepEqual(gh, rh) {
			t.Errorf("job %s hash (times left out):\n ours %v\n node %v", id, gh, rh)
		}
		if g, w := h.jobEvents(h.queue, id), h.jobEvents(ref, id); !slices.Equal(g, w) {
			t.Errorf("job %s events = %v, with a Node worker %v", id, g, w)
		}
	}
}

// removeOnComplete: 100 keeps the newest 100 completed jobs.
func testRemoveOnComplete(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var p produced
	h.node(&p, "produce.mjs", "", "--count", "150", "--opts", jsonArg(t, prodOpts(false)), "--bulk")
	if len(p.IDs) != 150 {
		t.Fatalf("added %d jobs", len(p.IDs))
	}
	q := h.goQueue(h.queue)
	c := h.consumer(q, bullmq.ConsumerOptions{WorkerName: "go-interop"})
	var order []string
	for batch := 0; batch < 3; batch++ {
		jobs := fetchN(t, c, 50, 10*time.Second)
		values := make([][]byte, len(jobs))
		for i, j := range jobs {
			values[i] = returnValue(j.ID)
		}
		mustOK(t, "complete")(c.Complete(ctx, jobs, values))
		order = append(order, jobIDs(jobs)...)
		time.Sleep(3 * time.Millisecond) // the next batch finishes in a later ms
	}
	if !slices.Equal(order, p.IDs) {
		t.Errorf("fetch order = %v, want %v", order, p.IDs)
	}
	insp := h.inspect("", []string{"1", "50", "51", "150"}, false)
	if insp.Counts["completed"] != 100 || insp.Counts["waiting"] != 0 || insp.Counts["active"] != 0 {
		t.Errorf("getJobCounts = %v, want completed 100", insp.Counts)
	}
	for _, id := range []string{"1", "50"} {
		if insp.Jobs[id] != nil {
			t.Errorf("getJob(%s) = %+v, want undefined (removed)", id, insp.Jobs[id])
		}
	}
	for _, id := range []string{"51", "150"} {
		if j := insp.Jobs[id]; j == nil || j.State != "completed" {
			t.Errorf("getJob(%s) = %+v, want a completed job", id, j)
		}
	}
	n, err := h.rdb.ZCard(ctx, q.Keys().Key("completed")).Result()
	if err != nil || n != 100 {
		t.Errorf("ZCARD completed = %d, %v", n, err)
	}
	for i := 1; i <= 50; i++ {
		if h.rdb.Exists(ctx, q.Keys().Job(strconv.Itoa(i))).Val() != 0 {
			t.Errorf("hash of removed job %d still exists", i)
		}
	}
}

// Plain jobs are taken before prioritized ones, each group FIFO, exactly as a Node
// worker takes them.
func testPriorityOrder(t *testing.T) {
	h := newHarness(t)
	crit := []bool{false, true, false, true, false, true, false}
	var specs []spec
	for i, c := range crit {
		specs = append(specs, spec{Name: h.queue, Data: map[string]any{"i": i + 1}, Opts: prodOpts(c)})
	}
	var p, pRef produced
	h.node(&p, "produce.mjs", "", "--jobs", jsonArg(t, specs))
	ref := h.queue + "-ref"
	h.node(&pRef, "produce.mjs", ref, "--jobs", jsonArg(t, specs))
	want := []string{"1", "3", "5", "7", "2", "4", "6"}

	var refRun workerRun
	h.node(&refRun, "node-worker.mjs", ref, "--expect", strconv.Itoa(len(specs)))
	var nodeOrder []string
	for _, a := range refRun.Attempts {
		nodeOrder = append(nodeOrder, a.ID)
	}
	if !slices.Equal(nodeOrder, want) {
		t.Errorf("Node worker order = %v, want %v", nodeOrder, want)
	}

	c := h.consumer(h.goQueue(h.queue), bullmq.ConsumerOptions{})
	var order []string
	for range specs { // one at a time, like a concurrency-1 worker
		jobs := fetchN(t, c, 1, 5*time.Second)
		order = append(order, jobs[0].ID)
		if wantPrio := map[bool]int{false: 0, true: 1}[crit[mustAtoi(t, jobs[0].ID)-1]]; jobs[0].Priority != wantPrio || jobs[0].Opts.Priority != wantPrio {
			t.Errorf("job %s priority %d / opts %d, want %d", jobs[0].ID, jobs[0].Priority, jobs[0].Opts.Priority, wantPrio)
		}
		mustOK(t, "complete")(c.Complete(context.Background(), jobs, [][]byte{returnValue(jobs[0].ID)}))
	}
	if !slices.Equal(order, nodeOrder) {
		t.Errorf("our order = %v, Node worker's %v", order, nodeOrder)
	}
	insp := h.inspect("", nil, false)
	if insp.Counts["completed"] != len(specs) || insp.Counts["prioritized"] != 0 || insp.Counts["waiting"] != 0 {
		t.Errorf("getJobCounts = %v", insp.Counts)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A job added with delay 1000 ms is not fetched before it is due, and is fetched
// (woken by the delayed marker) soon after.
func testDelay(t *testing.T) {
	h := newHarness(t)
	opts := prodOpts(false)
	opts["delay"] = 1000
	var p produced
	h.node(&p, "produce.mjs", "", "--jobs", jsonArg(t, []spec{{Name: h.queue, Data: auditEvent(1), Opts: opts}}))
	id := p.IDs[0]
	due := p.Jobs[0].Timestamp + 1000

	c := h.consumer(h.goQueue(h.queue), bullmq.ConsumerOptions{})
	ctx := context.Background()
	if jobs, err := c.Fetch(ctx, 10); err != nil || len(jobs) != 0 {
		t.Fatalf("fetch right after add = %v, %v; want nothing", jobIDs(jobs), err)
	}
	insp := h.inspect("", []string{id}, false)
	if insp.Counts["delayed"] != 1 || insp.Jobs[id] == nil || insp.Jobs[id].State != "delayed" || insp.Jobs[id].Delay != 1000 {
		t.Errorf("before due: counts %v job %+v", insp.Counts, insp.Jobs[id])
	}
	var jobs []*bullmq.Job
	deadline := time.Now().Add(5 * time.Second)
	for len(jobs) == 0 && time.Now().Before(deadline) {
		var err error
		if jobs, err = c.Fetch(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if len(jobs) > 0 {
			break
		}
		if now := time.Now().UnixMilli(); now > due+2000 {
			t.Fatalf("job not fetched %d ms after it was due", now-due)
		}
		if _, err := c.Wait(ctx, 3*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	fetchedAt := time.Now().UnixMilli()
	if len(jobs) != 1 || jobs[0].ID != id {
		t.Fatalf("fetched %v, want [%s]", jobIDs(jobs), id)
	}
	if jobs[0].ProcessedOn < due || fetchedAt < due {
		t.Errorf("fetched at %d (processedOn %d), before the due time %d", fetchedAt, jobs[0].ProcessedOn, due)
	}
	if late := fetchedAt - due; late > 1500 {
		t.Errorf("fetched %d ms after the due time", late)
	}
	if jobs[0].Opts.Delay != time.Second {
		t.Errorf("opts.delay = %s", jobs[0].Opts.Delay)
	}
	mustOK(t, "complete")(c.Complete(ctx, jobs, [][]byte{returnValue(id)}))
	insp = h.inspect("", []string{id}, false)
	if j := insp.Jobs[id]; j == nil || j.State != "completed" || j.Delay != 0 || *j.ProcessedOn < due {
		t.Errorf("after completion: %+v", j)
	}
}

// attempts 3 with exponential backoff 200: two retries after 200 and 400 ms, then
// the final failure Node sees once.
func testRetryBackoff(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	opts := map[string]any{"attempts": 3, "backoff": map[string]any{"type": "exponential", "delay": 200}, "removeOnComplete": 100, "removeOnFail": false}
	id := h.produceOne(t, opts)
	// The same job failed three times by a Node worker, as the reference.
	ref := h.queue + "-ref"
	h.node(&produced{}, "produce.mjs", ref, "--jobs", jsonArg(t, []spec{{Name: h.queue, Data: map[string]any{"failTimes": 3}, Opts: opts}}))
	var refRun workerRun
	h.node(&refRun, "node-worker.mjs", ref, "--expect", "1", "--name", "go-interop")
	if len(refRun.Failed) != 1 || len(refRun.Attempts) != 3 {
		t.Fatalf("reference node worker: %+v", refRun)
	}
	c := h.consumer(h.goQueue(h.queue), bullmq.ConsumerOptions{WorkerName: "go-interop"})

	wantDelays := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}
	var retriedAt time.Time
	for attempt := 1; attempt <= 3; attempt++ {
		jobs := fetchN(t, c, 1, 5*time.Second)
		j := jobs[0]
		if j.ID != id || j.AttemptsMade != attempt-1 || j.AttemptsStarted != attempt {
			t.Fatalf("attempt %d: job %s atm %d ats %d", attempt, j.ID, j.AttemptsMade, j.AttemptsStarted)
		}
		if attempt > 1 {
			// Due times are whole ms, so allow 1 ms of rounding.
			if gap := time.Since(retriedAt); gap < wantDelays[attempt-2]-time.Millisecond {
				t.Errorf("attempt %d fetched %s after the retry, before its backoff %s", attempt, gap, wantDelays[attempt-2])
			}
		}
		reason := fmt.Sprintf("sink unavailable (attempt %d)", attempt)
		delay, retry := bullmq.BackoffDelay(j)
		if attempt == 3 {
			if retry {
				t.Fatalf("attempt 3: BackoffDelay says retry after %s", delay)
			}
			mustOK(t, "fail")(c.FailFinal(ctx, jobs, []string{reason}))
			break
		}
		if !retry || delay != wantDelays[attempt-1] {
			t.Fatalf("attempt %d: BackoffDelay = %s, %v; want %s, true", attempt, delay, retry, wantDelays[attempt-1])
		}
		retriedAt = time.Now()
		if err := c.Retry(ctx, j, reason, delay); err != nil {
			t.Fatal(err)
		}
		if attempt == 1 {
			insp := h.inspect("", []string{id}, false)
			if nj := insp.Jobs[id]; nj == nil || nj.State != "delayed" || nj.AttemptsMade != 1 || nj.FailedReason == nil || *nj.FailedReason != reason || nj.Delay != 200 {
				t.Errorf("after the first retry, Node sees %+v", nj)
			}
		}
	}

	var ev observed
	h.node(&ev, "observe.mjs", "", "--ids", id, "--from-start", "--events", "failed,delayed,retries-exhausted,completed", "--timeout", "5000")
	if got := ev.named("failed")[id]; got != 1 {
		t.Errorf("QueueEvents saw %d failed events, want 1 (%+v)", got, ev.Events)
	}
	if got := ev.named("delayed")[id]; got != 2 {
		t.Errorf("QueueEvents saw %d delayed events, want 2", got)
	}
	for _, e := range ev.Events {
		switch e.Event {
		case "failed":
			if e.FailedReason != "sink unavailable (attempt 3)" || e.Prev != "active" {
				t.Errorf("failed event %+v", e)
			}
		case "retries-exhausted":
			if e.AttemptsMade != "3" {
				t.Errorf("retries-exhausted event %+v", e)
			}
		case "completed":
			t.Errorf("unexpected completed event %+v", e)
		}
	}
	insp := h.inspect("", []string{id}, false)
	j := insp.Jobs[id]
	if j == nil || j.State != "failed" || j.AttemptsMade != 3 || j.AttemptsStarted != 3 || j.FailedReason == nil ||
		*j.FailedReason != "sink unavailable (attempt 3)" || len(j.Stacktrace) != 3 || j.FinishedOn == nil {
		t.Errorf("getJob = %+v", j)
	}
	if insp.Counts["failed"] != 1 || insp.Counts["delayed"] != 0 || insp.Counts["active"] != 0 {
		t.Errorf("getJobCounts = %v", insp.Counts)
	}
	// Same events and hash fields as with the Node worker (the stack traces and
	// times differ by nature).
	if g, w := h.jobEvents(h.queue, id), h.jobEvents(ref, id); !slices.Equal(g, w) {
		t.Errorf("events = %v, with a Node worker %v", g, w)
	}
	gh := h.rdb.HGetAll(ctx, bullmq.NewKeys(h.prefix, h.queue).Job(id)).Val()
	rh := h.rdb.HGetAll(ctx, bullmq.NewKeys(h.prefix, ref).Job(id)).Val()
	for _, f := range []string{"timestamp", "processedOn", "finishedOn", "stacktrace", "failedReason", "data"} {
		if _, ok := gh[f]; !ok {
			t.Errorf("our failed job has no %q field", f)
		}
		delete(gh, f)
		delete(rh, f)
	}
	if !reflect.DeepEqual(gh, rh) {
		t.Errorf("failed job hash (times, data, reasons left out):\n ours %v\n node %v", gh, rh)
	}
}

// A final failure with removeOnFail: false keeps the job with its reason.
func testFinalFailure(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := h.produceOne(t, prodOpts(true))
	c := h.consumer(h.goQueue(h.queue), bullmq.ConsumerOptions{WorkerName: "go-interop"})
	jobs := fetchN(t, c, 1, 5*time.Second)
	if delay, retry := bullmq.BackoffDelay(jobs[0]); retry {
		t.Fatalf("attempts 1: BackoffDelay = %s, true", delay)
	}
	const reason = "invalid audit event: missing tenant"
	mustOK(t, "fail")(c.FailFinal(ctx, jobs, []string{reason}))

	var ev observed
	h.node(&ev, "observe.mjs", "", "--ids", id, "--from-start", "--events", "failed,completed,retries-exhausted", "--timeout", "5000")
	if ev.TimedOut || ev.named("failed")[id] != 1 || ev.named("completed")[id] != 0 {
		t.Errorf("QueueEvents: %+v", ev)
	}
	insp := h.inspect("", []string{id}, false)
	j := insp.Jobs[id]
	if j == nil {
		t.Fatal("getJob = undefined: the failed job was removed despite removeOnFail: false")
	}
	if j.State != "failed" || j.FailedReason == nil || *j.FailedReason != reason || j.AttemptsMade != 1 ||
		j.FinishedOn == nil || j.Returnvalue != nil && string(j.Returnvalue) != "null" || len(j.Stacktrace) != 1 {
		t.Errorf("getJob = %+v", j)
	}
	if insp.Counts["failed"] != 1 || insp.Counts["completed"] != 0 {
		t.Errorf("getJobCounts = %v", insp.Counts)
	}
}

// A consumer that dies holding a job (no renewal, no completion) loses it to the
// stalled check after its lock expires; another consumer then completes it.
func testStalledRecovery(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := h.produceOne(t, prodOpts(false))
	q := h.goQueue(h.queue)
	const lock = 300 * time.Millisecond
	dead := h.consumer(q, bullmq.ConsumerOptions{WorkerName: "go-dead", LockDuration: lock, StalledInterval: 100 * time.Millisecond})
	alive := h.consumer(q, bullmq.ConsumerOptions{WorkerName: "go-alive", StalledInterval: 100 * time.Millisecond})

	lost := fetchN(t, dead, 1, 5*time.Second)[0] // then "kill -9": never renewed
	if ids, err := alive.CheckStalled(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("first stalled check = %v, %v; want nothing (the lock is held)", ids, err)
	}
	h.recoverAndComplete(t, alive, "go-alive", id)
	// The dead worker's late result is refused.
	errs, err := dead.Complete(ctx, []*bullmq.Job{lost}, [][]byte{[]byte(`"late"`)})
	if err != nil || len(errs) != 1 || !errors.Is(errs[0], bullmq.ErrLockMissing) {
		t.Errorf("late completion by the dead worker = %v, %v; want ErrLockMissing", errs, err)
	}
	if insp := h.inspect("", []string{id}, false); insp.Jobs[id] == nil || insp.Jobs[id].State != "completed" {
		t.Errorf("after the late completion: getJob = %+v, want it completed as before", insp.Jobs[id])
	}
}

// recoverAndComplete runs c's stalled check until it recovers job id, which
// a consumer or worker held and lost, then fetches and completes it with c
// (working as worker), and checks what Node sees: one stalled and one
// completed event, the job completed by worker after two starts.
func (h *harness) recoverAndComplete(t *testing.T, c *bullmq.Consumer, worker, id string) {
	t.Helper()
	if recovered := awaitStalled(t, c); !slices.Equal(recovered, []string{id}) {
		t.Fatalf("stalled check recovered %v, want [%s]", recovered, id)
	}
	jobs := fetchN(t, c, 1, 5*time.Second)
	if j := jobs[0]; j.ID != id || j.StalledCounter != 1 || j.DeferredFailure != "" || j.AttemptsStarted != 2 || j.AttemptsMade != 0 {
		t.Fatalf("refetched job %s stc %d defa %q ats %d atm %d", j.ID, j.StalledCounter, j.DeferredFailure, j.AttemptsStarted, j.AttemptsMade)
	}
	mustOK(t, "complete")(c.Complete(context.Background(), jobs, [][]byte{returnValue(id)}))

	var ev observed
	h.node(&ev, "observe.mjs", "", "--ids", id, "--from-start", "--events", "stalled,completed,failed", "--timeout", "5000")
	if ev.named("stalled")[id] != 1 || ev.named("completed")[id] != 1 || ev.named("failed")[id] != 0 {
		t.Errorf("QueueEvents = %+v, want one stalled and one completed", ev.Events)
	}
	insp := h.inspect("", []string{id}, false)
	nj := insp.Jobs[id]
	if nj == nil || nj.State != "completed" || nj.StalledCounter != 1 || nj.AttemptsMade != 1 || nj.AttemptsStarted != 2 ||
		nj.ProcessedBy == nil || *nj.ProcessedBy != worker || !jsonEqual(t, nj.Returnvalue, returnValue(id)) {
		t.Errorf("getJob = %+v", nj)
	}
	if insp.Counts["completed"] != 1 || insp.Counts["active"] != 0 || insp.Counts["waiting"] != 0 {
		t.Errorf("getJobCounts = %v", insp.Counts)
	}
}

// During the migration: a Node worker killed (SIGKILL) while it holds a job; our
// stalled check recovers the job and our consumer completes it.
func testKilledNodeWorker(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := h.produceOne(t, prodOpts(false))
	q := h.goQueue(h.queue)
	lockKey := q.Keys().Job(id) + ":lock"

	w := h.nodeStart("node-worker.mjs", "", "--hang", "--lock-duration", "400", "--stalled-interval", "200", "--timeout", "20000")
	if !testenv.Until(10*time.Second, func() bool { return h.rdb.Exists(ctx, lockKey).Val() == 1 }) {
		w.fail(t, "the Node worker did not take job "+id)
	}
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = w.cmd.Wait()

	c := h.consumer(q, bullmq.ConsumerOptions{WorkerName: "go-interop", StalledInterval: 100 * time.Millisecond})
	h.recoverAndComplete(t, c, "go-interop", id)
}

// Node's queue.pause() stops our consumer; resume() wakes it.
func testPaused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var p1, p2 produced
	h.node(&p1, "produce.mjs", "", "--count", "2", "--opts", jsonArg(t, prodOpts(false)))
	var pr struct {
		Paused bool `json:"paused"`
	}
	h.node(&pr, "pause.mjs", "", "--action", "pause")
	if !pr.Paused {
		t.Fatal("queue not paused after pause()")
	}
	h.node(&p2, "produce.mjs", "", "--jobs", jsonArg(t, []spec{
		{Name: h.queue, Data: map[string]any{"seq": 3}, Opts: prodOpts(false)},
		{Name: h.queue, Data: map[string]any{"seq": 4}, Opts: prodOpts(true)},
	}))

	c := h.consumer(h.goQueue(h.queue), bullmq.ConsumerOptions{})
	if jobs, err := c.Fetch(ctx, 10); err != nil || len(jobs) != 0 {
		t.Fatalf("fetch while paused = %v, %v; want nothing", jobIDs(jobs), err)
	}
	if woken, err := c.Wait(ctx, 300*time.Millisecond); err != nil || woken {
		t.Errorf("wait while paused = %v, %v; want a timeout", woken, err)
	}
	if jobs, err := c.Fetch(ctx, 10); err != nil || len(jobs) != 0 {
		t.Fatalf("fetch while paused = %v, %v; want nothing", jobIDs(jobs), err)
	}
	insp := h.inspect("", nil, false)
	if !insp.Paused || insp.Counts["paused"] != 3 || insp.Counts["prioritized"] != 1 || insp.Counts["waiting"] != 0 || insp.Counts["active"] != 0 {
		t.Errorf("while paused: paused=%v counts %v", insp.Paused, insp.Counts)
	}

	// Resume while we wait: the marker resume() writes wakes us.
	type waited struct {
		woken bool
		err   error
		after time.Duration
	}
	ch := make(chan waited, 1)
	go func() {
		start := time.Now()
		woken, err := c.Wait(ctx, 5*time.Second)
		ch <- waited{woken, err, time.Since(start)}
	}()
	time.Sleep(100 * time.Millisecond)
	h.node(&pr, "pause.mjs", "", "--action", "resume")
	if pr.Paused {
		t.Fatal("queue still paused after resume()")
	}
	if w := <-ch; w.err != nil || !w.woken {
		t.Errorf("wait across resume = %+v, want woken", w)
	}
	jobs := fetchN(t, c, 4, 5*time.Second)
	if got, want := jobIDs(jobs), []string{"1", "2", "3", "4"}; !slices.Equal(got, want) {
		t.Errorf("fetched %v after resume, want %v", got, want)
	}
	values := make([][]byte, len(jobs))
	for i, j := range jobs {
		values[i] = returnValue(j.ID)
	}
	mustOK(t, "complete")(c.Complete(ctx, jobs, values))
	insp = h.inspect("", nil, false)
	if insp.Paused || insp.Counts["completed"] != 4 || insp.Counts["paused"] != 0 {
		t.Errorf("after resume: paused=%v counts %v", insp.Paused, insp.Counts)
	}
}

// Node's queue.getWorkers() (bull-board's worker list) shows our waiting consumer.
func testGetWorkers(t *testing.T) {
	h := newHarness(t)
	q := h.goQueue(h.queue)
	c, err := bullmq.NewConsumer(q, bullmq.ConsumerOptions{WorkerName: "go-interop-w1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Wait(ctx, 20*time.Second)
		done <- err
	}()
	want := h.prefix + ":" + base64.StdEncoding.EncodeToString([]byte(h.queue)) + ":w:go-interop-w1"
	var insp *inspected
	testenv.Until(5*time.Second, func() bool { // judged below
		insp = h.inspect("", nil, true)
		return len(insp.Workers) > 0
	})
	if len(insp.Workers) != 1 || insp.Workers[0].Rawname != want || insp.Workers[0].Name != h.queue {
		t.Errorf("getWorkers() = %+v, want one worker named %s", insp.Workers, want)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("wait = %v, want context.Canceled", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	testenv.Until(5*time.Second, func() bool { // judged below
		insp = h.inspect("", nil, true)
		return len(insp.Workers) == 0
	})
	if len(insp.Workers) != 0 {
		t.Errorf("getWorkers() after Close = %+v, want none", insp.Workers)
	}
}

// Jobs our Go producer adds are processed by a real Node Worker: same name, data
// bytes and options; priority and delay honoured; failures retried per backoff.
func testGoProducerNodeWorker(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	q := h.goQueue(h.queue)
	prod := bullmq.JobOptions{Attempts: 1, RemoveOnComplete: bullmq.KeepLast(100), RemoveOnFail: bullmq.KeepAll()}
	with := func(f func(o *bullmq.JobOptions)) bullmq.JobOptions {
		o := prod
		f(&o)
		return o
	}
	type goJob struct {
		bullmq.NewJob
		bulk bool
	}
	jobs := []goJob{
		{bullmq.NewJob{Name: "audit.plain", Data: []byte(`{"kind":"plain","n":1,"f":1.25,"s":"héllo ✓ \"q\" \\ /","nested":{"a":[1,2,{"b":null}],"t":true}}`), Opts: prod}, false},
		{bullmq.NewJob{Name: "audit.prio5", Data: []byte(`{"kind":"prio5"}`), Opts: with(func(o *bullmq.JobOptions) { o.Priority = 5 })}, true},
		{bullmq.NewJob{Name: "audit.prio1", Data: []byte(`{"kind":"prio1"}`), Opts: with(func(o *bullmq.JobOptions) { o.Priority = 1 })}, true},
		{bullmq.NewJob{Name: "audit.delayed", Data: []byte(`{"kind":"delayed"}`), Opts: with(func(o *bullmq.JobOptions) { o.Delay = 500 * time.Millisecond })}, true},
		{bullmq.NewJob{Name: "audit.retry-exp", Data: []byte(`{"kind":"retry-exp","failTimes":2}`), Opts: with(func(o *bullmq.JobOptions) {
			o.Attempts = 3
			o.Backoff = &bullmq.Backoff{Type: bullmq.BackoffExponential, Delay: 150}
		})}, false},
		{bullmq.NewJob{Name: "audit.retry-fixed", Data: []byte(`{"kind":"retry-fixed","failTimes":1}`), Opts: with(func(o *bullmq.JobOptions) {
			o.Attempts = 2
			o.Backoff = &bullmq.Backoff{Type: bullmq.BackoffFixed, Delay: 250}
		})}, true},
		{bullmq.NewJob{Name: "audit.custom", Data: []byte(`{"kind":"custom"}`), Opts: with(func(o *bullmq.JobOptions) { o.JobID = "evt-go-1" })}, false},
		{bullmq.NewJob{Name: "audit.fail", Data: []byte(`{"kind":"fail","failTimes":9}`), Opts: with(func(o *bullmq.JobOptions) {
			o.Attempts = 2
			o.Backoff = &bullmq.Backoff{Type: bullmq.BackoffFixed, Delay: 100}
		})}, false},
	}
	byID := map[string]goJob{}
	var ids []string
	for i := 0; i < len(jobs); {
		if !jobs[i].bulk {
			id, err := q.Add(ctx, jobs[i].Name, jobs[i].Data, jobs[i].Opts)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
			byID[id] = jobs[i]
			i++
			continue
		}
		var batch []bullmq.NewJob
		start := i
		for ; i < len(jobs) && jobs[i].bulk; i++ {
			batch = append(batch, jobs[i].NewJob)
		}
		got, err := q.AddBulk(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for k, id := range got {
			ids = append(ids, id)
			byID[id] = jobs[start+k]
		}
	}
	if want := []string{"1", "2", "3", "4", "5", "6", "evt-go-1", "8"}; !slices.Equal(ids, want) {
		t.Fatalf("ids = %v, want %v", ids, want)
	}
	// A second add with the custom id is a no-op.
	if id, err := q.Add(ctx, "audit.custom", []byte(`{"kind":"other"}`), with(func(o *bullmq.JobOptions) { o.JobID = "evt-go-1" })); err != nil || id != "evt-go-1" {
		t.Fatalf("duplicate add = %q, %v", id, err)
	}

	var run workerRun
	h.node(&run, "node-worker.mjs", "", "--expect", strconv.Itoa(len(jobs)), "--timeout", "15000")
	if run.TimedOut {
		t.Fatalf("node worker timed out: %+v", run)
	}

	var firstOrder []string
	seen := map[string][]int{} // id -> indexes into run.Attempts
	for i, a := range run.Attempts {
		g, ok := byID[a.ID]
		if !ok {
			t.Errorf("node processed unknown job %s", a.ID)
			continue
		}
		if len(seen[a.ID]) == 0 && g.Opts.Delay == 0 {
			firstOrder = append(firstOrder, a.ID)
		}
		seen[a.ID] = append(seen[a.ID], i)
		if a.Name != g.Name || a.Data != string(g.Data) {
			t.Errorf("job %s: Node saw name %q data %s, we added %q %s", a.ID, a.Name, a.Data, g.Name, g.Data)
		}
		ours, err := json.Marshal(g.Opts)
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := json.Unmarshal(ours, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a.Opts, want) {
			t.Errorf("job %s: Node's job.opts = %v, we wrote %v", a.ID, a.Opts, want)
		}
		if a.Priority != g.Opts.Priority || a.AttemptsMade != len(seen[a.ID])-1 {
			t.Errorf("job %s attempt %d: priority %d attemptsMade %d", a.ID, len(seen[a.ID]), a.Priority, a.AttemptsMade)
		}
		if a.Timestamp <= 0 || a.ProcessedOn < a.Timestamp+g.Opts.Delay.Milliseconds() {
			t.Errorf("job %s: processedOn %d, timestamp %d + delay %s", a.ID, a.ProcessedOn, a.Timestamp, g.Opts.Delay)
		}
	}
	// First attempts: plain jobs FIFO, then by priority. (The delayed job is due
	// by the time the Node worker has started, so it is checked by its time only.)
	if want := []string{"1", "5", "6", "evt-go-1", "8", "3", "2"}; !slices.Equal(firstOrder, want) {
		t.Errorf("Node worker's first attempts in order %v, want %v", firstOrder, want)
	}
	for id, g := range byID {
		idx := seen[id]
		wantAttempts := 1
		if g.Opts.Attempts > 1 {
			var d struct{ FailTimes int }
			_ = json.Unmarshal(g.Data, &d)
			wantAttempts = min(d.FailTimes+1, g.Opts.Attempts)
		}
		if len(idx) != wantAttempts {
			t.Errorf("job %s: %d attempts, want %d", id, len(idx), wantAttempts)
			continue
		}
		for k := 1; k < len(idx); k++ {
			prev, next := run.Attempts[idx[k-1]], run.Attempts[idx[k]]
			backoff := g.Opts.Backoff.Delay
			if g.Opts.Backoff.Type == bullmq.BackoffExponential {
				backoff <<= k - 1
			}
			if gap := next.ProcessedOn - prev.StartedAt; gap < backoff || gap > backoff+2500 {
				t.Errorf("job %s: attempt %d started %d ms after attempt %d, want the backoff %d ms", id, k+1, gap, k, backoff)
			}
		}
	}
	completed := map[string]json.RawMessage{}
	for _, c := range run.Completed {
		completed[c.ID] = c.Returnvalue
	}
	for _, id := range ids {
		if id == "8" {
			continue
		}
		if rv, ok := completed[id]; !ok || !jsonEqual(t, rv, returnValue(id)) {
			t.Errorf("job %s: completed with %s (%v)", id, rv, ok)
		}
	}
	if len(run.Failed) != 1 || run.Failed[0].ID != "8" || run.Failed[0].Reason != "planned failure 2" || run.Failed[0].AttemptsMade != 2 {
		t.Errorf("final failures = %+v, want job 8 after 2 attempts", run.Failed)
	}
	insp := h.inspect("", ids, false)
	if insp.Counts["completed"] != 7 || insp.Counts["failed"] != 1 || insp.Counts["delayed"] != 0 || insp.Counts["waiting"] != 0 {
		t.Errorf("getJobCounts = %v", insp.Counts)
	}
}

// Our Queue.Add leaves Redis as Node's Queue.add does: the same job hashes, list
// and zset placement, counters, markers and events (times aside).
func testGoAddMatchesNodeAdd(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	limit := 5
	goJobs := []bullmq.NewJob{
		{Name: "plain", Data: []byte(`{"a":1}`), Opts: bullmq.JobOptions{Attempts: 1, RemoveOnComplete: bullmq.KeepLast(100), RemoveOnFail: bullmq.KeepAll()}},
		{Name: "defaults", Data: []byte(`{}`)},
		{Name: "prio3", Data: []byte(`{"p":3}`), Opts: bullmq.JobOptions{Priority: 3}},
		{Name: "prio1", Data: []byte(`{"p":1}`), Opts: bullmq.JobOptions{Priority: 1, Attempts: 1}},
		{Name: "lifo", Data: []byte(`{"l":true}`), Opts: bullmq.JobOptions{Lifo: true}},
		{Name: "delayed", Data: []byte(`{"d":1}`), Opts: bullmq.JobOptions{Delay: time.Minute, Attempts: 2, Backoff: &bullmq.Backoff{Type: bullmq.BackoffFixed, Delay: 500}}},
		{Name: "custom", Data: []byte(`{"c":1}`), Opts: bullmq.JobOptions{JobID: "evt-1", RemoveOnComplete: bullmq.KeepWithin(10, time.Hour), StackTraceLimit: &limit}},
		{Name: "custom", Data: []byte(`{"c":2}`), Opts: bullmq.JobOptions{JobID: "evt-1"}},
		{Name: "jitter", Data: []byte(`[1,"x",null]`), Opts: bullmq.JobOptions{Attempts: 3, Backoff: &bullmq.Backoff{Type: bullmq.BackoffExponential, Delay: 100, Jitter: 0.5}, RemoveOnComplete: bullmq.RemoveAll()}},
	}
	nodeSpecs := []spec{
		{Name: "plain", Data: map[string]any{"a": 1}, Opts: map[string]any{"attempts": 1, "removeOnComplete": 100, "removeOnFail": false}},
		{Name: "defaults", Data: map[string]any{}, Opts: map[string]any{}},
		{Name: "prio3", Data: map[string]any{"p": 3}, Opts: map[string]any{"priority": 3}},
		{Name: "prio1", Data: map[string]any{"p": 1}, Opts: map[string]any{"priority": 1, "attempts": 1}},
		{Name: "lifo", Data: map[string]any{"l": true}, Opts: map[string]any{"lifo": true}},
		{Name: "delayed", Data: map[string]any{"d": 1}, Opts: map[string]any{"delay": 60000, "attempts": 2, "backoff": 500}},
		{Name: "custom", Data: map[string]any{"c": 1}, Opts: map[string]any{"jobId": "evt-1", "removeOnComplete": map[string]any{"count": 10, "age": 3600}, "stackTraceLimit": 5}},
		{Name: "custom", Data: map[string]any{"c": 2}, Opts: map[string]any{"jobId": "evt-1"}},
		{Name: "jitter", Data: []any{1, "x", nil}, Opts: map[string]any{"attempts": 3, "backoff": map[string]any{"type": "exponential", "delay": 100, "jitter": 0.5}, "removeOnComplete": true}},
	}
	nodeQ, goQ := "node-side", "go-side"
	var p produced
	h.node(&p, "produce.mjs", nodeQ, "--jobs", jsonArg(t, nodeSpecs))
	q := h.goQueue(goQ)
	var goIDs []string
	for _, j := range goJobs {
		id, err := q.Add(ctx, j.Name, j.Data, j.Opts)
		if err != nil {
			t.Fatal(err)
		}
		goIDs = append(goIDs, id)
	}
	if !slices.Equal(goIDs, p.IDs) {
		t.Errorf("ids: ours %v, Node's %v", goIDs, p.IDs)
	}
	gk, nk := bullmq.NewKeys(h.prefix, goQ), bullmq.NewKeys(h.prefix, nodeQ)

	// Job hashes; opts compared as JSON values (cjson orders keys at random).
	for _, id := range slices.Compact(slices.Clone(p.IDs)) {
		gh, nh := h.rdb.HGetAll(ctx, gk.Job(id)).Val(), h.rdb.HGetAll(ctx, nk.Job(id)).Val()
		if len(gh) == 0 || len(nh) == 0 {
			t.Errorf("job %s: hash ours %v, Node's %v", id, gh, nh)
			continue
		}
		if !jsonEqual(t, []byte(gh["opts"]), []byte(nh["opts"])) {
			t.Errorf("job %s opts: ours %s, Node's %s", id, gh["opts"], nh["opts"])
		}
		for _, f := range []string{"timestamp", "opts"} {
			delete(gh, f)
			delete(nh, f)
		}
		if !reflect.DeepEqual(gh, nh) {
			t.Errorf("job %s hash (timestamp, opts aside):\n ours %v\n Node %v", id, gh, nh)
		}
	}
	// Placement, counters and markers.
	for _, suffix := range []string{"wait", "paused", "active"} {
		if g, n := h.rdb.LRange(ctx, gk.Key(suffix), 0, -1).Val(), h.rdb.LRange(ctx, nk.Key(suffix), 0, -1).Val(); !slices.Equal(g, n) {
			t.Errorf("%s: ours %v, Node's %v", suffix, g, n)
		}
	}
	for _, suffix := range []string{"prioritized", "delayed", "marker", "completed", "failed"} {
		g, n := h.rdb.ZRangeWithScores(ctx, gk.Key(suffix), 0, -1).Val(), h.rdb.ZRangeWithScores(ctx, nk.Key(suffix), 0, -1).Val()
		if suffix == "delayed" || suffix == "marker" { // scores hold due times
			for i := range g {
				if g[i].Member == "0" {
					continue
				}
				g[i].Score = 0
			}
			for i := range n {
				if n[i].Member == "0" {
					continue
				}
				n[i].Score = 0
			}
		}
		if !reflect.DeepEqual(g, n) {
			t.Errorf("%s: ours %v, Node's %v", suffix, g, n)
		}
	}
	for _, suffix := range []string{"id", "pc"} {
		if g, n := h.rdb.Get(ctx, gk.Key(suffix)).Val(), h.rdb.Get(ctx, nk.Key(suffix)).Val(); g != n {
			t.Errorf("%s: ours %q, Node's %q", suffix, g, n)
		}
	}
	if g, n := h.rdb.HGet(ctx, gk.Key("meta"), "opts.maxLenEvents").Val(), h.rdb.HGet(ctx, nk.Key("meta"), "opts.maxLenEvents").Val(); g != n {
		t.Errorf("meta opts.maxLenEvents: ours %q, Node's %q", g, n)
	}
	// Events, the "delay" field (an absolute due time) aside.
	streamOf := func(k bullmq.Keys) []map[string]any {
		msgs := h.rdb.XRange(ctx, k.Key("events"), "-", "+").Val()
		out := make([]map[string]any, len(msgs))
		for i, m := range msgs {
			out[i] = m.Values
			if _, ok := m.Values["delay"]; ok && m.Values["event"] == "delayed" {
				out[i]["delay"] = "<due>"
			}
		}
		return out
	}
	if g, n := streamOf(gk), streamOf(nk); !reflect.DeepEqual(g, n) {
		t.Errorf("events:\n ours %v\n Node %v", g, n)
	}
}

// Node workers and our consumer on one queue at once (the migration): every job
// is processed exactly once and Node sees each completed once.
func testMixedWorkers(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const n = 200
	w := h.nodeStart("node-worker.mjs", "", "--expect", strconv.Itoa(n), "--timeout", "20000", "--concurrency", "2")
	// Wait until the Node worker blocks on the queue (it is then listed).
	if !testenv.Until(15*time.Second, func() bool { return len(h.inspect("", nil, true).Workers) > 0 }) {
		w.fail(t, "the Node worker did not start")
	}
	c := h.consumer(h.goQueue(h.queue), bullmq.ConsumerOptions{WorkerName: "go-interop"})
	goCtx, stop := context.WithCancel(ctx)
	goDone := make(chan struct{})
	var mine []string // written by the goroutine until goDone is closed
	t.Cleanup(func() { stop(); <-goDone })
	go func() {
		defer close(goDone)
		for goCtx.Err() == nil {
			jobs, err := c.Fetch(goCtx, 3)
			if err != nil {
				return
			}
			if len(jobs) == 0 {
				_, _ = c.Wait(goCtx, 200*time.Millisecond)
				continue
			}
			time.Sleep(2 * time.Millisecond) // "work"
			values := make([][]byte, len(jobs))
			for i, j := range jobs {
				values[i] = returnValue(j.ID)
			}
			errs, err := c.Complete(context.Background(), jobs, values)
			if err != nil {
				t.Errorf("complete: %v", err)
				return
			}
			for i, e := range errs {
				if e != nil {
					t.Errorf("complete %s: %v", jobs[i].ID, e)
				} else {
					mine = append(mine, jobs[i].ID)
				}
			}
		}
	}()
	var p produced
	h.node(&p, "produce.mjs", "", "--count", strconv.Itoa(n), "--opts", jsonArg(t, prodOpts(false)), "--bulk")

	var ev observed
	h.node(&ev, "observe.mjs", "", "--ids", strings.Join(p.IDs, ","), "--from-start", "--events", "completed,failed", "--timeout", "15000")
	stop()
	<-goDone
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var run workerRun
	w.wait(&run)
	if run.TimedOut {
		t.Errorf("the Node worker ran into its timeout")
	}

	count := map[string]int{}
	for _, id := range mine {
		count[id]++
	}
	for _, a := range run.Attempts {
		count[a.ID]++
	}
	for _, id := range p.IDs {
		if count[id] != 1 {
			t.Errorf("job %s processed %d times", id, count[id])
		}
	}
	if got := ev.named("completed"); len(got) != n || ev.TimedOut {
		t.Errorf("QueueEvents saw %d jobs completed (timed out %v, missing %v)", len(got), ev.TimedOut, ev.Missing)
	}
	for id, k := range ev.named("completed") {
		if k != 1 {
			t.Errorf("job %s: %d completed events", id, k)
		}
	}
	t.Logf("Go consumer processed %d jobs, the Node worker %d", len(mine), len(run.Attempts))
	insp := h.inspect("", nil, false)
	if insp.Counts["completed"] != 100 || insp.Counts["waiting"] != 0 || insp.Counts["active"] != 0 {
		t.Errorf("getJobCounts = %v, want completed 100 (removeOnComplete: 100)", insp.Counts)
	}
}

// A job added with a deduplication id and completed by us releases the id, so the
// next add with it creates a new job (as after a Node worker).
func testDeduplication(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	opts := prodOpts(false)
	opts["deduplication"] = map[string]any{"id": "tenant-7-export"}
	jobs := jsonArg(t, []spec{{Name: h.queue, Data: auditEvent(1), Opts: opts}})
	var p1, p2, p3 produced
	h.node(&p1, "produce.mjs", "", "--jobs", jobs)
	h.node(&p2, "produce.mjs", "", "--jobs", jobs)
	if p2.IDs[0] != p1.IDs[0] {
		t.Fatalf("second add while the first is waiting = job %s, want the deduplicated %s", p2.IDs[0], p1.IDs[0])
	}
	c := h.consumer(h.goQueue(h.queue), bullmq.ConsumerOptions{})
	got := fetchN(t, c, 1, 5*time.Second)
	mustOK(t, "complete")(c.Complete(ctx, got, [][]byte{returnValue(got[0].ID)}))
	h.node(&p3, "produce.mjs", "", "--jobs", jobs)
	if p3.IDs[0] == p1.IDs[0] {
		t.Fatalf("add after completion = job %s again: the deduplication id was not released", p3.IDs[0])
	}
	if more, err := c.Fetch(ctx, 5); err != nil || len(more) != 1 || more[0].ID != p3.IDs[0] {
		t.Errorf("fetch after the new add = %v, %v; want [%s]", jobIDs(more), err, p3.IDs[0])
	}
}
