package audit

import (
	"context"
	"time"
)

// DeadLetterLimits bound the dead letters a store keeps. A zero field sets no
// bound.
type DeadLetterLimits struct {
	MaxEntries int64
	MaxBytes   int64         // payload bytes
	Retention  time.Duration // counted from a dead letter's last refusal
}

// DeadLetterUsage is how many dead letters a store keeps, and their payload bytes.
type DeadLetterUsage struct {
	Entries int64
	Bytes   int64
}

// DeadLetterPruning is what one maintenance pass deleted, and what it left.
type DeadLetterPruning struct {
	ByRetention int64 // last refused longer ago than the retention
	ByQuota     int64 // the oldest beyond MaxEntries or MaxBytes
	Left        DeadLetterUsage
}

// DeadLetterMaintainer is a store that bounds its dead letters; both stores
// implement it.
type DeadLetterMaintainer interface {
	// PruneDeadLetters deletes the dead letters last refused before
	// now − Retention, then the oldest (by first refusal) until at most
	// MaxEntries and MaxBytes are left, and reports what it did.
	PruneDeadLetters(ctx context.Context, limits DeadLetterLimits, now time.Time) (DeadLetterPruning, error)
	// DeadLetterUsage counts the dead letters kept and their payload bytes.
	DeadLetterUsage(ctx context.Context) (DeadLetterUsage, error)
}
