package monitor

import "context"

// maxEvidenceKeys caps the idempotency keys an alert carries as evidence.
const maxEvidenceKeys = 20

// State keeps the detectors' sliding windows and off-hours markers. Its two
// implementations, MemoryState and RedisState (a MemoryState in each process,
// shared through a log), have the same semantics:
//
// A window op adds its event (member = idempotency key, score = event time) to
// the key's window, ordered as a sorted set orders (score, then member bytes),
// unless the member is already there; only an added event
// is evaluated. Its count is the largest number of members in one window of the
// detector's length that contains the event (for events arriving in time order
// simply those in [t−window, t]), so an event arriving late but inside the
// tolerance still completes the burst it belongs to. Members older than
// now − 2·window − tolerance (the retention) can never be counted again: they
// are trimmed, and a key expires once all its members are that old (plus a
// quarter of the retention, so an active key's expiry moves every few minutes
// rather than on every event).
//
// A once op sets a marker that expires at its expireAt; only the first is added.
//
// The number of keys is capped: a new key when the cap is reached first drops
// the key that expires soonest. (RedisState applies the cap in each process's
// memory, which holds every window of the shared log.)
type State interface {
	apply(ctx context.Context, now int64, maxKeys int, ops []op) (res []result, evicted int, err error)
}

// result is what a State did with one op.
type result struct {
	added bool // false: the event was already counted (or the marker set)
	// count is the window count when it reaches the threshold (below it, only
	// a bound: the events within a window either side of this one). On the batch's last op of a key whose count
	// reached the threshold, first, last and keys describe that window (as it
	// is at the end of the batch): its oldest and newest event times and its
	// newest idempotency keys (at most maxEvidenceKeys, oldest first).
	count       int
	first, last int64
	keys        []string
}
