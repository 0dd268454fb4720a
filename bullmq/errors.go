package bullmq

import (
	"errors"
	"fmt"
)

// Errors for the negative codes our scripts return (docs/bullmq-protocol.md). They are wrapped
// with the operation and job id; test them with errors.Is.
var (
	// ErrJobMissing (-1): the job hash does not exist (removed meanwhile).
	ErrJobMissing = errors.New("job does not exist")
	// ErrLockMissing (-2): our lock expired; the job was probably recovered as
	// stalled and may run elsewhere, so our result must be dropped.
	ErrLockMissing = errors.New("job lock is missing")
	// ErrNotActive (-3): the job is not in the active list any more.
	ErrNotActive = errors.New("job is not active")
	// ErrLockMismatch (-6): another worker holds the job's lock now.
	ErrLockMismatch = errors.New("job lock is held by another worker")
)

// codeError maps a script result code to an error; 0 is success.
func codeError(op, id string, code int64) error {
	var base error
	switch code {
	case 0:
		return nil
	case -1:
		base = ErrJobMissing
	case -2:
		base = ErrLockMissing
	case -3:
		base = ErrNotActive
	case -6:
		base = ErrLockMismatch
	default:
		base = fmt.Errorf("unexpected script code %d", code)
	}
	return fmt.Errorf("bullmq: %s job %s: %w", op, id, base)
}
