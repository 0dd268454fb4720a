package monitor

import (
	"slices"
	"sync"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// folder spares the alert store a write per batch while a condition persists.
// Once this process has written a key, repeats of it within the interval are
// folded into one pending condition (occurrences added up, the latest evidence
// kept, the highest severity) that is written when the interval has passed. A
// key not written recently is written at once, so an alert still opens, and is
// notified, with the batch whose events crossed the threshold.
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
	written time.Time             // when this process last wrote the key
	pending *audit.AlertCondition // repeats folded since; nil when none
}

func newFolder(every time.Duration) *folder {
	return &folder{every: every, keys: make(map[string]*foldedKey)}
}

// hold folds c into its key's pending condition when the key was written less
// than an interval ago. Otherwise it returns c, with anything still pending for
// the key folded in, to be written now.
func (f *folder) hold(c audit.AlertCondition, now time.Time) (audit.AlertCondition, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[c.DedupKey]
	if k == nil {
		return c, false
	}
	if now.Sub(k.written) < f.every {
		k.pending = foldInto(k.pending, c)
		return c, true
	}
	if k.pending != nil {
		c = *foldInto(k.pending, c)
		k.pending = nil
	}
	return c, false
}

// wrote records that key was just written.
func (f *folder) wrote(key string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[key] = &foldedKey{written: now}
}

// due takes the pending conditions whose interval has passed (all of them when
// all is set) and forgets keys that have been quiet for an interval, so the
// map holds only the keys of conditions that persist.
func (f *folder) due(now time.Time, all bool) []audit.AlertCondition {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []audit.AlertCondition
	for key, k := range f.keys {
		if !all && now.Sub(k.written) < f.every {
			continue
		}
		if k.pending != nil {
			out = append(out, *k.pending)
		}
		delete(f.keys, key)
	}
	return out
}

// foldInto adds c to p (nil: nothing pending yet) and returns the result.
func foldInto(p *audit.AlertCondition, c audit.AlertCondition) *audit.AlertCondition {
	n := max(c.Occurrences, 1)
	if p == nil {
		c.Occurrences = n
		c.Tags = slices.Clone(c.Tags)
		return &c
	}
	total := max(p.Occurrences, 1) + n
	severity := p.Severity
	if c.Severity.Rank() > severity.Rank() {
		severity = c.Severity
	}
	tags := p.Tags
	for _, t := range c.Tags {
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	if !c.ObservedAt.Before(p.ObservedAt) { // the latest observation's evidence wins
		*p = c
	}
	p.Occurrences, p.Severity, p.Tags = total, severity, tags
	return p
}
