package monitor

import (
	"container/heap"
	"context"
	"slices"
	"sync"
)

// MemoryState is the State of a single process (the embedded SQLite setup).
type MemoryState struct {
	mu   sync.Mutex
	keys map[string]*memKey
	exp  expiryHeap // every key, soonest expiry first
}

// NewMemoryState returns an empty in-memory State.
func NewMemoryState() *MemoryState {
	return &MemoryState{keys: make(map[string]*memKey)}
}

type memKey struct {
	name     string
	expireAt int64
	index    int                 // position in the heap
	members  map[string]struct{} // built once entries outgrow a linear scan
	entries  []entry             // sorted by score, then member (as Redis orders them)
}

// scanMembers: up to this many entries, a linear scan finds a member faster
// than a map costs to build (most keys hold a few events).
const scanMembers = 16

func (k *memKey) has(member string) bool {
	if k.members != nil {
		_, ok := k.members[member]
		return ok
	}
	for _, e := range k.entries {
		if e.member == member {
			return true
		}
	}
	return false
}

type entry struct {
	score  int64
	member string
}

func entryCmp(a, b entry) int {
	if a.score != b.score {
		if a.score < b.score {
			return -1
		}
		return 1
	}
	switch {
	case a.member < b.member:
		return -1
	case a.member > b.member:
		return 1
	}
	return 0
}

// Len is the number of keys tracked now.
func (s *MemoryState) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

func (s *MemoryState) apply(_ context.Context, now int64, maxKeys int, ops []op) ([]result, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.exp) > 0 && s.exp[0].expireAt <= now {
		s.drop(heap.Pop(&s.exp).(*memKey))
	}
	res := make([]result, len(ops))
	evicted := 0
	var last map[string]evidenceAt
	for i := range ops {
		o := &ops[i]
		k, ok := s.keys[o.key]
		if !ok {
			for len(s.keys) >= maxKeys && len(s.exp) > 0 {
				s.drop(heap.Pop(&s.exp).(*memKey))
				evicted++
			}
			k = &memKey{name: o.key, expireAt: extend(o)}
			s.keys[o.key] = k
			heap.Push(&s.exp, k)
		} else if o.expireAt > k.expireAt {
			k.expireAt = extend(o)
			heap.Fix(&s.exp, k.index)
		}
		if o.window == 0 {
			res[i] = result{added: !ok, count: 1}
			continue
		}
		var lo, hi int64
		res[i], lo, hi = k.add(o, now)
		if res[i].added && res[i].count >= o.threshold {
			if last == nil {
				last = make(map[string]evidenceAt)
			}
			last[o.key] = evidenceAt{k, i, lo, hi}
		}
	}
	// Evidence for the last detection of each key, from the window that made
	// it as the batch left it: a key dropped at the cap later in the batch
	// (and perhaps tracked again, from scratch) keeps the window it had.
	for _, l := range last {
		l.key.evidence(&res[l.res], l.lo, l.hi)
	}
	return res, evicted, nil
}

// evidence fills r with the window [lo, hi] as the key holds it now: its
// oldest and newest event times and its newest members, oldest first.
func (k *memKey) evidence(r *result, lo, hi int64) {
	from, to := k.lowerBound(lo), k.lowerBound(hi+1)
	r.first, r.last = k.entries[from].score, k.entries[to-1].score
	newest := k.entries[max(from, to-maxEvidenceKeys):to]
	r.keys = make([]string, 0, len(newest))
	for _, e := range newest {
		r.keys = append(r.keys, e.member)
	}
}

// evidenceAt is the window of a key's last detection in a batch.
type evidenceAt struct {
	key    *memKey
	res    int
	lo, hi int64
}

func (s *MemoryState) drop(k *memKey) { delete(s.keys, k.name) }

// marked reports whether the state holds the key of a marker that has not
// expired by now.
func (s *MemoryState) marked(key string, now int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[key]
	return ok && k.expireAt > now
}

// extend is the expiry to give a window key that must live until o.expireAt:
// a quarter of the retention more, so an active key moves in the heap every
// few minutes rather than on every event (as RedisState pushes its TTL).
// A marker expires exactly.
func extend(o *op) int64 {
	if o.window == 0 {
		return o.expireAt
	}
	return o.expireAt + (o.expireAt-o.at)/4
}

// add is the window op on one key (see State); lo and hi are the bounds of
// the window counted.
func (k *memKey) add(o *op, now int64) (r result, lo, hi int64) {
	cut := 0
	for cut < len(k.entries) && k.entries[cut].score < now-(o.expireAt-o.at) {
		if k.members != nil {
			delete(k.members, k.entries[cut].member)
		}
		cut++
	}
	if cut > 0 {
		// Dropping the front reslices rather than moves the rest: on a busy
		// key nearly every op trims one, and the window holds thousands.
		// The next append that outgrows the array copies the live ones only.
		clear(k.entries[:cut])
		k.entries = k.entries[cut:]
	}
	if k.has(o.member) {
		return result{}, 0, 0
	}
	e := entry{score: o.at, member: o.member}
	pos, _ := slices.BinarySearchFunc(k.entries, e, entryCmp)
	k.entries = slices.Insert(k.entries, pos, e)
	switch {
	case k.members != nil:
		k.members[o.member] = struct{}{}
	case len(k.entries) > scanMembers:
		k.members = make(map[string]struct{}, 2*len(k.entries))
		for _, e := range k.entries {
			k.members[e.member] = struct{}{}
		}
	}

	at, w, th := o.at, o.window, o.threshold
	// As RedisState: below the threshold, count is the bound around the event.
	total := k.countIn(at-w, at+w)
	count := total
	lo, hi = at-w, at
	if total >= th {
		count = k.countIn(at-w, at)
	}
	if total >= th && count < th {
		if right := k.countIn(at, at+w); right >= th {
			count, lo, hi = right, at, at+w
		} else {
			// Out of order and neither side alone is enough: try every window
			// that starts at a member and still contains the event (fewer than
			// 2·threshold members here).
			from := k.lowerBound(at - w)
			to := k.lowerBound(at + w + 1)
			j := from
			for i := from; i < to && k.entries[i].score <= at; i++ {
				j = max(j, i)
				for j+1 < to && k.entries[j+1].score <= k.entries[i].score+w {
					j++
				}
				if n := j - i + 1; n > count {
					count, lo, hi = n, k.entries[i].score, k.entries[i].score+w
				}
			}
		}
	}
	return result{added: true, count: count}, lo, hi
}

// lowerBound is the index of the first entry with score ≥ score.
func (k *memKey) lowerBound(score int64) int {
	i, _ := slices.BinarySearchFunc(k.entries, score, func(e entry, s int64) int {
		switch {
		case e.score < s:
			return -1
		case e.score > s:
			return 1
		}
		return 0
	})
	return i // BinarySearchFunc returns the first such index
}

// countIn counts the entries with lo ≤ score ≤ hi.
func (k *memKey) countIn(lo, hi int64) int { return k.lowerBound(hi+1) - k.lowerBound(lo) }

// expiryHeap orders keys by expiry, soonest first.
type expiryHeap []*memKey

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expireAt < h[j].expireAt }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	k := x.(*memKey)
	k.index = len(*h)
	*h = append(*h, k)
}
func (h *expiryHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return k
}
