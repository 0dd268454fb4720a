package bullmq

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults as in BullMQ's worker.
const (
	DefaultLockDuration    = 30 * time.Second
	DefaultStalledInterval = 30 * time.Second
	DefaultMaxStalledCount = 1
)

// ConsumerOptions configures a Consumer. Zero values mean BullMQ's defaults.
type ConsumerOptions struct {
	// WorkerName is written to the job's "pb" field and to the blocking
	// connection's name, so Queue.getWorkers() and bull-board list us.
	WorkerName string
	// LockDuration is the TTL of job locks (default 30 s); renew them with
	// ExtendLocks well within it (BullMQ renews every LockDuration/4).
	LockDuration time.Duration
	// StalledInterval is the minimum time between two stalled checks across all
	// workers of the queue (default 30 s).
	StalledInterval time.Duration
	// MaxStalledCount is how often a job may stall before it gets a deferred
	// failure (default 1). Negative means 0: fail on the first stall.
	MaxStalledCount int
	// RemoveOnComplete / RemoveOnFail apply to jobs whose own opts do not say
	// (unset = keep all, like BullMQ).
	RemoveOnComplete KeepJobs
	RemoveOnFail     KeepJobs
}

// Consumer takes jobs from a queue and moves them through their states. Fetch,
// Complete, Retry, FailFinal, ExtendLocks, CheckStalled and MoveToWait are safe for
// concurrent use; Wait must be called by one goroutine at a time.
type Consumer struct {
	q    *Queue
	opts ConsumerOptions

	tokenBase string
	tokenSeq  atomic.Uint64

	// nextDelayed is the earliest delayed due time (ms) we know of, 0 if none.
	nextDelayed atomic.Int64

	block  *blockingConn
	waitMu sync.Mutex
	// pending receives the result of a BZPOPMIN that outlived its Wait (ctx ended).
	pending chan popResult

	parsedOpts optsCache
}

// NewConsumer returns a consumer of q. It opens one dedicated connection for Wait
// (a connection blocked in BZPOPMIN cannot run scripts); Close releases it.
func NewConsumer(q *Queue, opts ConsumerOptions) (*Consumer, error) {
	if opts.LockDuration <= 0 {
		opts.LockDuration = DefaultLockDuration
	}
	if opts.StalledInterval <= 0 {
		opts.StalledInterval = DefaultStalledInterval
	}
	if opts.MaxStalledCount == 0 {
		opts.MaxStalledCount = DefaultMaxStalledCount
	} else if opts.MaxStalledCount < 0 {
		opts.MaxStalledCount = 0
	}
	if strings.ContainsAny(opts.WorkerName, " \t\r\n") {
		return nil, fmt.Errorf("bullmq: worker name %q: Redis client names cannot contain whitespace", opts.WorkerName)
	}
	// Node names it "<prefix>:<base64(queue)>[:w:<worker>]"; getWorkers() matches that.
	clientName := q.keys.Prefix + ":" + base64.StdEncoding.EncodeToString([]byte(q.keys.Name))
	if opts.WorkerName != "" {
		clientName += ":w:" + opts.WorkerName
	}
	block, err := newBlockingConn(q.rdb, clientName)
	if err != nil {
		return nil, err
	}
	return &Consumer{q: q, opts: opts, tokenBase: newUUID(), block: block}, nil
}

// Close closes the blocking connection (interrupting a Wait in progress).
func (c *Consumer) Close() error {
	err := c.block.close()
	c.waitMu.Lock()
	if c.pending != nil {
		// Closing the connection ended the call; give back a marker it took.
		if r := <-c.pending; r.ok {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = c.q.rdb.ZAdd(rctx, c.q.keys.Key("marker"), redis.Z{Score: r.score, Member: r.member}).Err()
			cancel()
		}
		c.pending = nil
	}
	c.waitMu.Unlock()
	if err != nil {
		return fmt.Errorf("bullmq: close blocking connection: %w", err)
	}
	return nil
}

// newToken returns "<uuid>:<n>", unique per fetch; never the magic "0" that would
// disable lock checks in every script.
func (c *Consumer) newToken() string {
	return c.tokenBase + ":" + strconv.FormatUint(c.tokenSeq.Add(1)-1, 10)
}

// Fetch moves up to n ready jobs to active in one script call, locks them with a
// fresh token and returns them, read back in one pipelined round trip. It
// promotes due delayed jobs first and returns nothing while the queue is paused
// or at its global concurrency. Callers must fail jobs for which
// Job.Unsupported reports a reason, and jobs with a DeferredFailure, without
// retry.
func (c *Consumer) Fetch(ctx context.Context, n int) ([]*Job, error) {
	if n <= 0 {
		return nil, nil
	}
	token := c.newToken()
	res, err := c.q.run(ctx, scriptFetch, "fetch", c.q.nowMs(), token,
		c.opts.LockDuration.Milliseconds(), n, c.opts.WorkerName)
	if err != nil {
		return nil, err
	}
	arr, ok := res.([]any)
	if !ok || len(arr) != 2 {
		return nil, fmt.Errorf("bullmq: fetch: unexpected script reply %T (%v)", res, res)
	}
	next, _ := arr[0].(int64)
	ids, err := asStrings(arr[1])
	if err != nil {
		return nil, fmt.Errorf("bullmq: fetch: %w", err)
	}
	if len(ids) == 0 {
		c.nextDelayed.Store(next)
		return nil, nil
	}
	hashes, err := c.readJobs(ctx, ids)
	if err != nil {
		return nil, err
	}
	jobs := make([]*Job, 0, len(ids))
	for i, id := range ids {
		// A hash removed since the script ran (a forced obliteration) is
		// dropped, as the script drops one it finds gone; our lock on it
		// expires and the stalled check takes the id out of active.
		if len(hashes[i]) == 0 {
			continue
		}
		j := jobFromHash(id, hashes[i], &c.parsedOpts)
		j.Token = token
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// readJobs reads the job hashes of ids in one pipeline. The fetch script has
// already written processedOn, ats and pb, so they read as Node's worker would
// see them.
func (c *Consumer) readJobs(ctx context.Context, ids []string) ([]map[string]string, error) {
	pipe := c.q.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, c.q.keys.Job(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("bullmq: fetch: read %d jobs of queue %s: %w", len(ids), c.q.keys.Name, err)
	}
	hashes := make([]map[string]string, len(ids))
	for i, cmd := range cmds {
		hashes[i] = cmd.Val()
	}
	return hashes, nil
}

// Wait blocks until a job may be ready, the timeout passes or ctx ends. It pops
// the queue's marker on the dedicated connection: marker "0" means ready now,
// marker "1" carries the next delayed due time, which Wait keeps sleeping until
// (and which it also learns from an empty Fetch). It reports whether it was woken
// for work; after a timeout callers should Fetch anyway, since that also promotes
// delayed jobs nobody announced.
func (c *Consumer) Wait(ctx context.Context, timeout time.Duration) (bool, error) {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		block := time.Until(deadline)
		if due := c.nextDelayed.Load(); due > 0 {
			untilDue := time.Duration(due-c.q.nowMs()) * time.Millisecond
			if untilDue <= 0 {
				c.nextDelayed.Store(0)
				return true, nil
			}
			block = min(block, untilDue)
		}
		if block <= 0 {
			return false, nil
		}
		block = max(block, time.Millisecond)
		r, err := c.pop(ctx, block)
		if err != nil {
			return false, err
		}
		switch {
		case !r.ok:
			continue // timeout: re-check the due time and the deadline
		case r.member == "1":
			due := int64(r.score)
			if cur := c.nextDelayed.Load(); cur == 0 || due < cur {
				c.nextDelayed.Store(due)
			}
			continue
		default:
			return true, nil
		}
	}
}

type popResult struct {
	member string
	score  float64
	ok     bool
	err    error
}

// pop runs one BZPOPMIN. go-redis does not interrupt a blocked read when ctx is
// cancelled, so the call runs in a goroutine; if ctx ends first we return at once
// and keep the call's result channel: the next Wait adopts it instead of issuing
// a new BZPOPMIN (the connection is still busy), and Close puts back a marker it
// popped, so no wake-up is lost.
func (c *Consumer) pop(ctx context.Context, block time.Duration) (popResult, error) {
	ch := c.pending
	c.pending = nil
	if ch == nil {
		ch = make(chan popResult, 1)
		go func() { ch <- c.block.bzpopmin(c.q.keys.Key("marker"), block) }()
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return r, fmt.Errorf("bullmq: wait on %s: %w", c.q.keys.Key("marker"), r.err)
		}
		return r, nil
	case <-ctx.Done():
		c.pending = ch
		return popResult{}, ctx.Err()
	}
}

// Complete moves the jobs to completed with their return values (JSON text; nil
// means null) in one script call. The per-job errors (nil on success) wrap
// ErrJobMissing, ErrLockMissing, ErrNotActive or ErrLockMismatch; the second
// result is for the call as a whole.
func (c *Consumer) Complete(ctx context.Context, jobs []*Job, returnValues [][]byte) ([]error, error) {
	if len(returnValues) != len(jobs) {
		return nil, fmt.Errorf("bullmq: complete: %d jobs but %d return values", len(jobs), len(returnValues))
	}
	values := make([]string, len(jobs))
	for i, v := range returnValues {
		if len(v) == 0 {
			values[i] = "null"
		} else {
			values[i] = string(v)
		}
	}
	return c.finish(ctx, "completed", jobs, values)
}

// FailFinal moves the jobs to failed for good (no retry): failedReason, the reason
// appended to stacktrace, removeOnFail, "failed" and, once attempts are used up,
// "retries-exhausted" events.
func (c *Consumer) FailFinal(ctx context.Context, jobs []*Job, reasons []string) ([]error, error) {
	if len(reasons) != len(jobs) {
		return nil, fmt.Errorf("bullmq: fail: %d jobs but %d reasons", len(jobs), len(reasons))
	}
	return c.finish(ctx, "failed", jobs, reasons)
}

func (c *Consumer) finish(ctx context.Context, target string, jobs []*Job, values []string) ([]error, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	op := "complete"
	if target == "failed" {
		op = "fail"
	}
	argv := make([]any, 0, 3+9*len(jobs))
	argv = append(argv, c.q.nowMs(), target, len(jobs))
	for i, j := range jobs {
		keep := j.Opts.RemoveOnComplete
		if !keep.IsSet() {
			keep = c.opts.RemoveOnComplete
		}
		if target == "failed" {
			keep = j.Opts.RemoveOnFail
			if !keep.IsSet() {
				keep = c.opts.RemoveOnFail
			}
		}
		count, age := keep.Limits()
		ageSec := int64(-1)
		if age >= 0 {
			ageSec = int64(age / time.Second)
		}
		stack := "" // only failures append to stacktrace
		if target == "failed" {
			stack = values[i]
		}
		argv = append(argv, j.ID, j.Token, values[i], count, ageSec, stack,
			stackLimit(j), j.Opts.Attempts, j.dedupID)
	}
	res, err := c.q.run(ctx, scriptFinish, op, argv...)
	if err != nil {
		return nil, err
	}
	codes, err := asInt64s(res, len(jobs))
	if err != nil {
		return nil, fmt.Errorf("bullmq: %s: %w", op, err)
	}
	errs := make([]error, len(jobs))
	for i, code := range codes {
		if code == 0 {
			jobs[i].AttemptsMade++ // mirror the script's HINCRBY atm
			continue
		}
		errs[i] = codeError(op, jobs[i].ID, code)
	}
	return errs, nil
}

func stackLimit(j *Job) int {
	if j.Opts.StackTraceLimit == nil {
		return -1
	}
	return max(*j.Opts.StackTraceLimit, 0)
}

// Retry records a failed attempt (failedReason, stacktrace, atm+1) and puts the
// job back: after delay into delayed (the "delayed" event carries the due time),
// or with delay 0 straight into wait/prioritized. Use BackoffDelay to decide.
func (c *Consumer) Retry(ctx context.Context, job *Job, reason string, delay time.Duration) error {
	var (
		res any
		err error
	)
	if delay > 0 {
		res, err = c.q.run(ctx, scriptRetryDelayed, "retry", c.q.nowMs(), job.ID, job.Token,
			delay.Milliseconds(), reason, reason, stackLimit(job))
	} else {
		lifo := "0"
		if job.Opts.Lifo {
			lifo = "1"
		}
		res, err = c.q.run(ctx, scriptRetryNow, "retry", c.q.nowMs(), job.ID, job.Token,
			reason, reason, stackLimit(job), lifo)
	}
	if err != nil {
		return err
	}
	code, ok := res.(int64)
	if !ok {
		return fmt.Errorf("bullmq: retry job %s: unexpected script reply %T (%v)", job.ID, res, res)
	}
	if err := codeError("retry", job.ID, code); err != nil {
		return err
	}
	job.AttemptsMade++
	return nil
}

// ExtendLocks renews the locks of jobs we still own (one call for all) and
// returns the ids whose lock was lost: stop working on those, their results
// would be rejected.
func (c *Consumer) ExtendLocks(ctx context.Context, jobs []*Job) ([]string, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	argv := make([]any, 0, 1+2*len(jobs))
	argv = append(argv, c.opts.LockDuration.Milliseconds())
	for _, j := range jobs {
		argv = append(argv, j.ID, j.Token)
	}
	res, err := c.q.run(ctx, scriptExtendLocks, "extend locks", argv...)
	if err != nil {
		return nil, err
	}
	lost, err := asStrings(res)
	if err != nil {
		return nil, fmt.Errorf("bullmq: extend locks: %w", err)
	}
	return lost, nil
}

// CheckStalled runs the stalled-job check if no worker ran it within the stalled
// interval: active jobs whose lock expired since the previous check go back to
// wait (stc+1; a deferred failure once stc exceeds MaxStalledCount). It returns
// the recovered ids. Call it at start and then every StalledInterval.
func (c *Consumer) CheckStalled(ctx context.Context) ([]string, error) {
	res, err := c.q.run(ctx, scriptStalled, "stalled check", c.q.nowMs(),
		c.opts.MaxStalledCount, c.opts.StalledInterval.Milliseconds())
	if err != nil {
		return nil, err
	}
	ids, err := asStrings(res)
	if err != nil {
		return nil, fmt.Errorf("bullmq: stalled check: %w", err)
	}
	return ids, nil
}

// MoveToWait gives active jobs back (to the consumer end of wait, or ahead of
// their priority peers) without counting an attempt, e.g. at shutdown. The error
// joins the per-job failures.
func (c *Consumer) MoveToWait(ctx context.Context, jobs []*Job) error {
	if len(jobs) == 0 {
		return nil
	}
	argv := make([]any, 0, 1+2*len(jobs))
	argv = append(argv, c.q.nowMs())
	for _, j := range jobs {
		argv = append(argv, j.ID, j.Token)
	}
	res, err := c.q.run(ctx, scriptMoveToWait, "move to wait", argv...)
	if err != nil {
		return err
	}
	codes, err := asInt64s(res, len(jobs))
	if err != nil {
		return fmt.Errorf("bullmq: move to wait: %w", err)
	}
	var errs []error
	for i, code := range codes {
		errs = append(errs, codeError("move to wait", jobs[i].ID, code))
	}
	return errors.Join(errs...)
}

// blockingConn is a one-connection client used only for BZPOPMIN, named so that
// Node's getWorkers() counts us.
type blockingConn struct {
	client redis.UniversalClient
}

func newBlockingConn(rdb redis.UniversalClient, name string) (*blockingConn, error) {
	var client redis.UniversalClient
	switch cl := rdb.(type) {
	case *redis.Client:
		o := cl.Options()
		client = redis.NewClient(&redis.Options{
			Network: o.Network, Addr: o.Addr, Dialer: o.Dialer, Protocol: o.Protocol,
			Username: o.Username, Password: o.Password, CredentialsProvider: o.CredentialsProvider,
			DB: o.DB, TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout,
			ClientName: name, PoolSize: 1, MinIdleConns: 0, MaxRetries: -1,
			// The wait deadline comes from the context (block time + grace), a
			// watchdog for connections that silently died.
			ReadTimeout: -1, ContextTimeoutEnabled: true,
		})
	case *redis.ClusterClient:
		o := cl.Options()
		client = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: o.Addrs, Dialer: o.Dialer, Protocol: o.Protocol,
			Username: o.Username, Password: o.Password, CredentialsProvider: o.CredentialsProvider,
			TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout,
			ClientName: name, PoolSize: 1, MaxRetries: -1,
			ReadTimeout: -1, ContextTimeoutEnabled: true,
			// The shared client's slot-map refresh: after a failover the
			// blocking connection moves to the new master as soon as it does.
			ClusterStateReloadInterval: o.ClusterStateReloadInterval,
		})
	default:
		return nil, fmt.Errorf("bullmq: blocking connection: unsupported client type %T (use *redis.Client or *redis.ClusterClient)", rdb)
	}
	return &blockingConn{client: client}, nil
}

func (b *blockingConn) close() error { return b.client.Close() }

// bzpopmin pops the marker, blocking at most block (fractional seconds, which
// go-redis's BZPopMin helper would round to whole seconds).
func (b *blockingConn) bzpopmin(key string, block time.Duration) popResult {
	ctx, cancel := context.WithTimeout(context.Background(), block+2*time.Second)
	defer cancel()
	secs := strconv.FormatFloat(math.Ceil(block.Seconds()*1000)/1000, 'f', 3, 64)
	vals, err := b.client.Do(ctx, "BZPOPMIN", key, secs).Slice()
	if errors.Is(err, redis.Nil) {
		return popResult{}
	}
	if err != nil {
		return popResult{err: err}
	}
	if len(vals) != 3 {
		return popResult{err: fmt.Errorf("unexpected BZPOPMIN reply %v", vals)}
	}
	member := fmt.Sprint(vals[1])
	var score float64
	switch s := vals[2].(type) {
	case float64:
		score = s
	case int64:
		score = float64(s)
	case string:
		score, err = strconv.ParseFloat(s, 64)
		if err != nil {
			return popResult{err: fmt.Errorf("BZPOPMIN score %q: %w", s, err)}
		}
	}
	return popResult{member: member, score: score, ok: true}
}

// newUUID returns a random version-4 UUID string (the form Node's tokens use).
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("bullmq: crypto/rand: %v", err)) // never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
