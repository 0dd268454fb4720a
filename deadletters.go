package audit

import (
	"context"
	"time"

	"github.com/smartlogs/audit-worker/internal/jsontext"
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
	// DeleteDeadLetter removes one dead letter (after a redrive stored its
	// event); CodeNotFound if there is none with this id.
	DeleteDeadLetter(ctx context.Context, id int64) error
}

// GetDeadLetter reads the dead letter with this id from a store
// (CodeNotFound if none).
func GetDeadLetter(ctx context.Context, s EventStore, id int64) (StoredDeadLetter, error) {
	if id < 1 {
		return StoredDeadLetter{}, Errorf(CodeNotFound, "dead letter %d: no such dead letter", id)
	}
	dls, err := s.ListDeadLetters(ctx, id-1, 1)
	if err != nil {
		return StoredDeadLetter{}, err
	}
	if len(dls) == 0 || dls[0].ID != id {
		return StoredDeadLetter{}, Errorf(CodeNotFound, "dead letter %d: no such dead letter", id)
	}
	return dls[0], nil
}

// OrganizationID is the organizationId the refused payload names, when it is
// a JSON object that has one as a string; "" otherwise.
func (d *DeadLetter) OrganizationID() string {
	members, err := jsontext.SplitObject(d.Payload, nil)
	if err != nil {
		return ""
	}
	for i := range members {
		if members[i].Key == "organizationId" && len(members[i].Raw) > 0 && members[i].Raw[0] == '"' {
			org, _ := members[i].StringValue()
			return org
		}
	}
	return ""
}
