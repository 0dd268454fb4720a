package monitor

import (
	"strings"
	"sync"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// folder spares the alert store a write per batch while a condition persists.
// Once this process has written a key, repeats of it within the interval are
// folded into one pending detection (occurrences added up, the latest
// evidence kept) that is written when the interval has passed. A key not
// written recently is written at once, so an alert still opens, and is
// notified, with the batch whose events crossed the threshold.
//
// A repeat is folded as the detection it is: its condition (description,
// evidence as JSON) is built only when it is written. Under a sustained burst
// nearly every detection is folded, and building the conditions only to
// drop them cost more than counting the events.
//
// The price: a continuing alert's count and last-seen time lag by up to one
// interval, and a crash loses the repeats folded since the last write (the
// events themselves are stored and counted in the windows; only the alert's
// occurrence count misses them).
type folder struct {
	every time.Duration

	mu   sync.Mutex
	keys map[string]*foldedKey
}

type foldedKey struct {
	written time.Time  // when this process last wrote the key
	pending *detection // the latest repeat folded since; nil when none
	repeats int64      // the repeats folded since
}

func newFolder(every time.Duration) *folder {
	return &folder{every: every, keys: make(map[string]*foldedKey)}
}

// hold folds d into its key's pending detection when the key was written
// less than an interval ago (held). Otherwise it returns the detection to
// write now, d or a later one still pending, and the occurrences it stands
// for (d and the repeats pending).
func (f *folder) hold(d *detection, now time.Time) (write *detection, occurrences int64, held bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[d.op.dedupKey]
	if k == nil {
		return d, 1, false
	}
	if now.Sub(k.written) < f.every {
		switch {
		case k.pending == nil:
			k.pending = new(detection)
			d.detachInto(k.pending)
		case !d.observed.Before(k.pending.observed): // the latest observation's evidence wins
			d.detachInto(k.pending)
		}
		k.repeats++
		return nil, 0, true
	}
	write, occurrences = d, 1
	if k.pending != nil {
		if k.pending.observed.After(d.observed) {
			write = k.pending
		}
		occurrences += k.repeats
		k.pending, k.repeats = nil, 0
	}
	return write, occurrences, false
}

// wrote records that key was just written.
func (f *folder) wrote(key string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[key] = &foldedKey{written: now}
}

// due takes the conditions of the pending repeats whose interval has passed
// (all of them when all is set) and forgets keys that have been quiet for an
// interval, so the map holds only the keys of conditions that persist.
func (f *folder) due(now time.Time, all bool) []audit.AlertCondition {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []audit.AlertCondition
	for key, k := range f.keys {
		if !all && now.Sub(k.written) < f.every {
			continue
		}
		if k.pending != nil {
			c := condition(k.pending)
			c.Occurrences = k.repeats
			out = append(out, c)
		}
		delete(f.keys, key)
	}
	return out
}

// detachInto copies d to p so that p shares no memory with d's batch: the
// event's strings share one buffer with the whole event, which a pending
// repeat must not keep alive. Strings p already holds with the same value
// (a key's principal, mostly its organization) are kept, not cloned again.
func (d *detection) detachInto(p *detection) {
	value, org, action := p.op.value, p.org, p.action
	*p = *d
	p.op.ev = nil
	p.op.value, p.org, p.action = cloneUnlessEqual(value, d.op.value), cloneUnlessEqual(org, d.org), cloneUnlessEqual(action, d.action)
	p.correlation = strings.Clone(d.correlation)
}

// cloneUnlessEqual returns have when it equals s, else a copy of s.
func cloneUnlessEqual(have, s string) string {
	if have == s {
		return have
	}
	return strings.Clone(s)
}
