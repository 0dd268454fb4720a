package monitor

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed state.lua
var stateLua string

// stateScript runs with EVALSHA, falling back to EVAL on NOSCRIPT.
var stateScript = redis.NewScript(stateLua)

// RedisState is the State shared by every worker process.
//
// Most windows are small (a principal acts a few times in a window), and
// Redis runs Lua without a JIT: a command per event from a script costs more
// than the work itself. So a small window is one field of a hash, read for
// the whole batch in one round trip, counted here exactly as MemoryState
// counts, and written back by one script call. Workers take turns: the read
// takes a short lock, the write releases it, and the write also checks that
// no other worker wrote in between (a version counter every write raises;
// the lock may have expired) — if one did, the batch is read and counted
// again. A window that outgrows smallMax members becomes a sorted set of its
// own, counted by the script event by event. A once marker is only its entry
// in the index of tracked keys (key -> expiry), which also drives expiry and
// the cap.
type RedisState struct {
	rdb     redis.Cmdable
	base    string // every key starts with it; it holds the one hash tag
	index   string // zset: tracked key -> expiry (Unix ms)
	small   string // hash: key -> its window (encodeWindow) while it is small
	version string // counter raised by every write
	lock    string // held from a batch's read to its write
	// smallMax is the most members a window keeps in the hash.
	smallMax int

	// turn lets one batch of this process at a time count: the others would
	// only find the Redis lock taken and send their reads again.
	turn chan struct{}

	waits, recounts atomic.Int64 // see Contention
}

// Contention reports how often a batch waited for another worker's lock, and
// how often one was read and counted again because another worker wrote
// first. Both rise with the number of workers; steady growth of recounts
// means the lock expires before batches finish (a slow or overloaded worker).
func (s *RedisState) Contention() (waits, recounts int64) {
	return s.waits.Load(), s.recounts.Load()
}

// defaultSmallMax: more members than nearly any principal's window holds,
// and few enough that reading and rewriting one costs less than the
// per-event commands of a sorted set.
const defaultSmallMax = 64

// maxAttempts bounds how often a batch is counted again because another
// worker wrote first.
const maxAttempts = 8

// lockTTL bounds how long a worker killed mid-batch holds the others up: well
// within their state timeout (1 s by default), so they wait rather than skip
// a batch. A slow worker's write after it expired is caught by the version
// check and counted again.
const lockTTL = 250 * time.Millisecond

var (
	// errConcurrentWrite: another worker wrote the windows after this batch read them.
	errConcurrentWrite = errors.New("monitor: redis windows changed since read")
	// errBusy: another worker holds the lock.
	errBusy = errors.New("monitor: redis windows locked by another worker")
)

// unlockScript releases the lock if it is still this batch's.
var unlockScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// NewRedisState keeps the windows under keys starting with prefix (e.g.
// "audit:"), all in one Redis Cluster slot.
func NewRedisState(rdb redis.Cmdable, prefix string) (*RedisState, error) {
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("monitor: redis key prefix %q: must not contain braces (the keys carry their own hash tag)", prefix)
	}
	base := "{" + prefix + "monitor}:"
	return &RedisState{rdb: rdb, base: base, index: base + "index", small: base + "small",
		version: base + "version", lock: base + "lock", smallMax: defaultSmallMax,
		turn: make(chan struct{}, 1)}, nil
}

// opGroup is the ops of one key: a linked list through next, in event-time order.
type opGroup struct{ head, tail, n int }

func (s *RedisState) apply(ctx context.Context, now int64, maxKeys int, ops []op) ([]result, int, error) {
	if len(ops) == 0 {
		return nil, 0, nil
	}
	// Group the ops by key, in the order keys first appear (event-time order
	// within a key is kept). Keys are independent of each other (the cap is
	// applied before any op), so this gives the results op-by-op evaluation would.
	groupOf := make(map[string]int, len(ops))
	groups := make([]opGroup, 0, len(ops))
	next := make([]int, len(ops))
	for i := range ops {
		next[i] = -1
		g, ok := groupOf[ops[i].key]
		if !ok {
			groupOf[ops[i].key] = len(groups)
			groups = append(groups, opGroup{head: i, tail: i, n: 1})
			continue
		}
		next[groups[g].tail] = i
		groups[g].tail = i
		groups[g].n++
	}
	names := make([]string, len(groups)) // each key's full Redis name
	for g, grp := range groups {
		names[g] = s.base + ops[grp.head].key
	}
	select {
	case s.turn <- struct{}{}:
		defer func() { <-s.turn }()
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("monitor: redis windows (%d ops): waiting for this process's previous batch: %w", len(ops), ctx.Err())
	}
	wait := 200 * time.Microsecond
	for attempt := 1; ; {
		res, evicted, err := s.try(ctx, now, maxKeys, ops, groups, next, names)
		switch {
		case errors.Is(err, errBusy):
			// Another worker's batch is between its read and its write
			// (about a millisecond): wait a little, longer each time, jittered.
			s.waits.Add(1)
			t := time.NewTimer(wait/2 + rand.N(wait))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, 0, fmt.Errorf("monitor: redis windows (%d ops): waiting for another worker: %w", len(ops), ctx.Err())
			}
			wait = min(2*wait, 20*time.Millisecond)
		case errors.Is(err, errConcurrentWrite):
			s.recounts.Add(1)
			if attempt == maxAttempts {
				return nil, 0, fmt.Errorf("monitor: redis windows (%d ops): written by other workers during %d attempts", len(ops), attempt)
			}
			attempt++
		default:
			return res, evicted, err
		}
	}
}

// snapshot is what one attempt read: the lock's token, the version, and
// per group its recorded expiry (0: untracked) and, for a window, its value
// in the hash ("" when none).
type snapshot struct {
	token, version string
	expiry         []int64
	small          []string
}

// read takes the lock and reads, in one round trip, everything the batch's
// keys hold. It returns errBusy when another worker holds the lock.
func (s *RedisState) read(ctx context.Context, names []string, isWindow func(g int) bool) (snapshot, error) {
	windows := make([]string, 0, len(names))
	for g, name := range names {
		if isWindow(g) {
			windows = append(windows, name)
		}
	}
	snap := snapshot{token: strconv.FormatUint(rand.Uint64(), 36)}
	pipe := s.rdb.Pipeline()
	lockCmd := pipe.SetNX(ctx, s.lock, snap.token, lockTTL)
	versionCmd := pipe.Get(ctx, s.version)
	scoresCmd := pipe.ZMScore(ctx, s.index, names...)
	var smallCmd *redis.SliceCmd
	if len(windows) > 0 {
		smallCmd = pipe.HMGet(ctx, s.small, windows...)
	}
	_, err := pipe.Exec(ctx)
	if err == nil || errors.Is(err, redis.Nil) { // Nil: no version yet
		err = nil
		if !lockCmd.Val() {
			return snap, errBusy
		}
	}
	if err == nil {
		snap.version, err = versionCmd.Result()
		if errors.Is(err, redis.Nil) {
			err = nil
		}
	}
	var vals []any
	if err == nil && smallCmd != nil {
		vals = smallCmd.Val()
	}
	scores := scoresCmd.Val()
	if err == nil && (len(scores) != len(names) || len(vals) != len(windows)) {
		err = fmt.Errorf("%d scores and %d windows for %d and %d keys", len(scores), len(vals), len(names), len(windows))
	}
	if err != nil {
		s.unlock(snap.token)
		return snap, fmt.Errorf("monitor: redis windows: read %d keys: %w", len(names), err)
	}
	snap.expiry = make([]int64, len(names))
	snap.small = make([]string, len(names))
	for g := range names {
		snap.expiry[g] = int64(scores[g])
		if isWindow(g) {
			snap.small[g], _ = vals[0].(string)
			vals = vals[1:]
		}
	}
	return snap, nil
}

// try counts the batch once: it reads the windows, counts the small ones
// here and has the script write them and count the large ones, unless
// another worker wrote first (errConcurrentWrite).
func (s *RedisState) try(ctx context.Context, now int64, maxKeys int, ops []op, groups []opGroup, next []int, names []string) ([]result, int, error) {
	snap, err := s.read(ctx, names, func(g int) bool { return ops[groups[g].head].window > 0 })
	if err != nil {
		return nil, 0, err
	}

	res := make([]result, len(ops))
	w := scriptArgs{now: now, version: snap.version, token: snap.token}
	for g, grp := range groups {
		o := &ops[grp.head]
		name := names[g]
		recorded := snap.expiry[g]
		live := recorded > now // an expired entry the cleanup has not reached counts as none
		switch {
		case recorded == 0:
			w.fresh++
		case live:
			w.tracked = append(w.tracked, name)
		default:
			w.tracked = append(w.tracked, name)
			w.expired = append(w.expired, name)
		}
		need := o.expireAt
		for i := grp.head; i >= 0; i = next[i] {
			need = max(need, ops[i].expireAt)
		}
		if o.window == 0 {
			// Of a key's markers only the first can be set, and only when
			// the index does not hold it.
			if !live {
				res[grp.head] = result{added: true, count: 1}
				w.track(need, name)
			}
			continue
		}
		raw := snap.small[g]
		slack := (o.expireAt - o.at) / 4 // as MemoryState's extend
		expiry := need + slack
		ttl := max(expiry-now, 1)
		if !live || expiry-slack > recorded {
			w.track(expiry, name)
		}
		if live && raw == "" {
			w.sorted(ops, grp, next, name, ttl, expiry-slack > recorded)
			continue
		}
		k := &memKey{name: name}
		if live {
			if entries, ok := decodeWindow([]byte(raw)); ok {
				k.entries = entries
			}
		}
		last, lo, hi := -1, int64(0), int64(0)
		for i := grp.head; i >= 0; i = next[i] {
			r, lo2, hi2 := k.add(&ops[i], now)
			res[i] = r
			if r.added && r.count >= ops[i].threshold {
				last, lo, hi = i, lo2, hi2
			}
		}
		if last >= 0 {
			k.evidence(&res[last], lo, hi)
		}
		if len(k.entries) > s.smallMax {
			w.promote(name, ttl, k.entries)
		} else {
			w.hset = append(w.hset, name, encodeWindow(nil, k.entries))
			w.smallTTL = max(w.smallTTL, ttl)
		}
	}

	keys, argv := w.build(s, maxKeys)
	raw, err := stateScript.Run(ctx, s.rdb, keys, argv...).Slice()
	if err != nil {
		s.unlock(snap.token)
		return nil, 0, fmt.Errorf("monitor: redis windows (%d ops): %w", len(ops), err)
	}
	if len(raw) == 1 && asInt(raw[0]) == 0 {
		return nil, 0, errConcurrentWrite
	}
	if len(raw) < len(w.sent)+2 {
		return nil, 0, fmt.Errorf("monitor: redis windows: %d results for %d ops", len(raw)-2, len(w.sent))
	}
	evicted := asInt(raw[1])
	for j, r := range raw[2 : len(w.sent)+2] {
		if c := asInt(r); c > 0 {
			res[w.sent[j]] = result{added: true, count: int(c)}
		}
	}
	// Evidence of sorted sets: the op's position among their results, first, last, n, n keys.
	for ev := raw[len(w.sent)+2:]; len(ev) > 0; {
		if len(ev) < 4 {
			return nil, 0, fmt.Errorf("monitor: redis windows: malformed evidence %v", ev)
		}
		pos, n := asInt(ev[0])-1, int(asInt(ev[3])) // pos is 1-based
		if pos < 0 || pos >= int64(len(w.sent)) || n < 0 || len(ev) < 4+n {
			return nil, 0, fmt.Errorf("monitor: redis windows: malformed evidence %v", ev)
		}
		r := &res[w.sent[pos]]
		r.first, r.last = asInt(ev[1]), asInt(ev[2])
		for _, k := range ev[4 : 4+n] {
			if s, ok := k.(string); ok {
				r.keys = append(r.keys, s)
			}
		}
		ev = ev[4+n:]
	}
	return res, int(evicted), nil
}

// unlock releases the lock on a path where the script, which releases it,
// did not run; best effort: it expires anyway.
func (s *RedisState) unlock(token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = unlockScript.Run(ctx, s.rdb, []string{s.lock}, token).Err()
}

// scriptArgs gathers one script call's work (see state.lua for the layout).
type scriptArgs struct {
	now      int64
	version  string
	token    string
	fresh    int      // batch keys the index does not hold
	tracked  []string // batch keys it holds: never dropped by the cap
	expired  []string // of those, the ones past their expiry when read
	hset     []any    // small windows: key, encoded window, ...
	smallTTL int64
	index    []any // index updates: expiry, key, ...

	promoted    []string // windows that became sorted sets
	promoteArgs []any    // per promoted key: ttl, 2·n, then score, member, ...

	// Sorted sets counted by the script: their keys, their rules and a
	// MessagePack body (per key: rule number, op count, housekeeping TTL or
	// "" for none; per op: member, at, at − window, at + window).
	sortedKeys []string
	rules      []sortedRule
	body       msgpackBody
	sent       []int // the op of each result the script returns
}

type sortedRule struct{ threshold, window, retention int64 }

func (w *scriptArgs) track(expiry int64, name string) {
	w.index = append(w.index, strconv.FormatInt(expiry, 10), name)
}

func (w *scriptArgs) promote(name string, ttl int64, entries []entry) {
	w.promoted = append(w.promoted, name)
	w.promoteArgs = append(w.promoteArgs, strconv.FormatInt(ttl, 10), 2*len(entries))
	for _, e := range entries {
		w.promoteArgs = append(w.promoteArgs, strconv.FormatInt(e.score, 10), e.member)
	}
}

// sorted hands the ops of one key kept as a sorted set to the script.
func (w *scriptArgs) sorted(ops []op, grp opGroup, next []int, name string, ttl int64, housekeeping bool) {
	o := &ops[grp.head]
	r := sortedRule{int64(o.threshold), o.window, o.expireAt - o.at}
	ri := slices.Index(w.rules, r)
	if ri < 0 {
		ri = len(w.rules)
		w.rules = append(w.rules, r)
	}
	w.sortedKeys = append(w.sortedKeys, name)
	w.body.uint(uint32(ri + 1))
	w.body.uint(uint32(grp.n))
	if housekeeping {
		w.body.decimal(ttl)
	} else {
		w.body.str("")
	}
	for i := grp.head; i >= 0; i = next[i] {
		o := &ops[i]
		w.body.str(o.member)
		w.body.decimal(o.at)
		w.body.decimal(o.at - o.window)
		w.body.decimal(o.at + o.window)
		w.sent = append(w.sent, i)
	}
}

// build lays the work out as the script reads it.
func (w *scriptArgs) build(s *RedisState, maxKeys int) ([]string, []any) {
	keys := make([]string, 0, 4+len(w.sortedKeys)+len(w.promoted))
	keys = append(keys, s.index, s.small, s.version, s.lock)
	keys = append(keys, w.sortedKeys...)
	keys = append(keys, w.promoted...)
	nkeys := len(w.tracked) + len(w.hset)/2 + len(w.index)/2
	argv := make([]any, 0, 16+len(w.tracked)+len(w.expired)+len(w.hset)+len(w.promoteArgs)+len(w.index)+3*len(w.rules))
	argv = append(argv, w.version, strconv.FormatInt(w.now, 10), maxKeys, w.fresh,
		// The cleanup's limit grows with the batch: each batch can bring as
		// many new keys as it has keys.
		1000+2*nkeys, w.smallTTL, len(w.sortedKeys), len(w.promoted), maxEvidenceKeys, w.token)
	argv = append(argv, len(w.tracked))
	for _, k := range w.tracked {
		argv = append(argv, k)
	}
	argv = append(argv, len(w.expired))
	for _, k := range w.expired {
		argv = append(argv, k)
	}
	argv = append(argv, len(w.hset))
	argv = append(argv, w.hset...)
	argv = append(argv, w.promoteArgs...)
	argv = append(argv, len(w.index))
	argv = append(argv, w.index...)
	argv = append(argv, len(w.rules))
	for _, r := range w.rules {
		argv = append(argv, r.threshold, r.window, "("+strconv.FormatInt(w.now-r.retention, 10))
	}
	if len(w.sortedKeys) > 0 {
		argv = append(argv, w.body.bytes())
	} else {
		argv = append(argv, "")
	}
	return keys, argv
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
