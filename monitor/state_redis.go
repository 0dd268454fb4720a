package monitor

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
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
	// Group the ops by key, in the order keys first appear (event-time order
	// within a key is kept): the script then works key by key. Keys are
	// independent of each other (the cap is applied before any op), so this
	// gives the results op-by-op evaluation would.
	type group struct{ head, tail, n int }
	groupOf := make(map[string]int, len(ops))
	groups := make([]group, 0, len(ops))
	next := make([]int, len(ops))
	for i := range ops {
		next[i] = -1
		g, ok := groupOf[ops[i].key]
		if !ok {
			groupOf[ops[i].key] = len(groups)
			groups = append(groups, group{head: i, tail: i, n: 1})
			continue
		}
		next[groups[g].tail] = i
		groups[g].tail = i
		groups[g].n++
	}

	// Every number the script hands to Redis is sent as a decimal string (see
	// state.lua): formatting is cheap here and slow there.
	// A key's ops share its rule (the key names the detector), so the script
	// gets the few distinct rules once and a rule number per key.
	type rule struct{ threshold, window, retention int64 }
	var rules []rule
	ruleArgs := make([]any, 0, 16)
	ruleOf := func(o *op) uint32 {
		r := rule{int64(o.threshold), o.window, o.expireAt - o.at}
		if o.window == 0 {
			r = rule{} // a once marker: nothing else matters
		}
		i := slices.Index(rules, r)
		if i < 0 {
			i = len(rules)
			rules = append(rules, r)
			ruleArgs = append(ruleArgs, r.threshold, r.window, r.retention/4, "("+strconv.FormatInt(now-r.retention, 10))
		}
		return uint32(i + 1)
	}

	keys := make([]string, 1, len(groups)+1)
	keys[0] = s.index
	body := msgpackBody{buf: make([]byte, 0, 64*len(ops))}
	sent := make([]int, 0, len(ops)) // the op of each result the script returns
	for _, g := range groups {
		o := &ops[g.head]
		keys = append(keys, s.base+o.key)
		need := o.expireAt
		for i := g.head; i >= 0; i = next[i] {
			need = max(need, ops[i].expireAt)
		}
		expiry := need
		if o.window > 0 {
			expiry = need + (o.expireAt-o.at)/4 // as MemoryState's extend
		}
		body.uint(ruleOf(o))
		body.uint(uint32(g.n))
		body.decimal(expiry)
		body.decimal(max(expiry-now, 1))
		if o.window == 0 {
			// Of a key's markers only the first can be set.
			body.str(o.member)
			sent = append(sent, g.head)
			continue
		}
		for i := g.head; i >= 0; i = next[i] {
			o := &ops[i]
			body.str(o.member)
			body.decimal(o.at)
			body.decimal(o.at - o.window)
			body.decimal(o.at + o.window)
			sent = append(sent, i)
		}
	}
	argv := make([]any, 0, 5+len(ruleArgs))
	argv = append(argv, strconv.FormatInt(now, 10), maxKeys, maxEvidenceKeys, len(rules))
	argv = append(argv, ruleArgs...)
	argv = append(argv, body.bytes())

	raw, err := stateScript.Run(ctx, s.rdb, keys, argv...).Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("monitor: redis windows (%d ops): %w", len(ops), err)
	}
	if len(raw) < len(sent)+1 {
		return nil, 0, fmt.Errorf("monitor: redis windows: %d results for %d ops", len(raw)-1, len(sent))
	}
	evicted, _ := raw[0].(int64)
	res := make([]result, len(ops)) // ops not sent: a later marker of a key, not added
	for j, r := range raw[1 : len(sent)+1] {
		if c := asInt(r); c > 0 {
			res[sent[j]] = result{added: true, count: int(c)}
		}
	}
	// Evidence: the op's position among the results, first, last, n, n keys.
	for ev := raw[len(sent)+1:]; len(ev) > 0; {
		if len(ev) < 4 {
			return nil, 0, fmt.Errorf("monitor: redis windows: malformed evidence %v", ev)
		}
		pos, n := asInt(ev[0])-1, int(asInt(ev[3])) // pos is 1-based
		if pos < 0 || pos >= int64(len(sent)) || n < 0 || len(ev) < 4+n {
			return nil, 0, fmt.Errorf("monitor: redis windows: malformed evidence %v", ev)
		}
		r := &res[sent[pos]]
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
