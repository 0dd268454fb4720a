package queueworker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/smartlogs/audit-worker/bullmq"
)

// DeadLetterEntry is one waiting entry of the dead-letter queue.
type DeadLetterEntry struct {
	JobID     string
	Timestamp int64 // when it was dead-lettered (ms)
	Payload   DeadLetterPayload
}

// ListDeadLetters returns up to limit waiting dead-letter entries, oldest first,
// optionally only those with the given reason code.
func ListDeadLetters(ctx context.Context, dlq *bullmq.Queue, reason string, limit int) ([]DeadLetterEntry, error) {
	var out []DeadLetterEntry
	const page = 500
	for offset := int64(0); limit <= 0 || len(out) < limit; offset += page {
		ids, err := dlq.JobIDs(ctx, bullmq.StateWaiting, offset, page)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			e, err := GetDeadLetter(ctx, dlq, id)
			if errors.Is(err, bullmq.ErrJobMissing) {
				continue // taken meanwhile
			}
			if err != nil {
				return nil, err
			}
			if reason != "" && e.Payload.ReasonCode != reason {
				continue
			}
			out = append(out, e)
			if limit > 0 && len(out) == limit {
				break
			}
		}
		if len(ids) < page {
			break
		}
	}
	return out, nil
}

// GetDeadLetter reads one dead-letter entry.
func GetDeadLetter(ctx context.Context, dlq *bullmq.Queue, id string) (DeadLetterEntry, error) {
	j, err := dlq.GetJob(ctx, id)
	if err != nil {
		return DeadLetterEntry{}, err
	}
	e := DeadLetterEntry{JobID: j.ID, Timestamp: j.Timestamp}
	if err := json.Unmarshal(j.Data, &e.Payload); err != nil {
		return DeadLetterEntry{}, fmt.Errorf("dead letter %s: not a dead-letter payload: %w", id, err)
	}
	return e, nil
}

// Redrive moves dead-letter entries back to the main queue (after the producer
// or the configuration was fixed): each original event is re-added exactly as it
// was, under a job id derived from its first idempotency key, then the entry is
// removed. Running it twice, or crashing between the two steps, never stores an
// event twice: the derived id makes the second add a no-op while the job exists,
// and the store deduplicates on the derived key after that.
func Redrive(ctx context.Context, dlq, main *bullmq.Queue, entries []DeadLetterEntry) (int, error) {
	moved := 0
	for _, e := range entries {
		var asText string
		if json.Unmarshal(e.Payload.OriginalEvent, &asText) == nil {
			// The original was not JSON at all: re-sending it cannot succeed.
			continue
		}
		opts := bullmq.JobOptions{
			Attempts: 1, JobID: redriveJobID(e.Payload.IdempotencyKey),
			RemoveOnComplete: bullmq.KeepLast(100), RemoveOnFail: bullmq.KeepAll(),
		}
		if _, err := main.Add(ctx, main.Name(), e.Payload.OriginalEvent, opts); err != nil {
			return moved, fmt.Errorf("redrive %s: %w", e.JobID, err)
		}
		errs, err := dlq.Remove(ctx, []string{e.JobID})
		if err == nil {
			err = errs[0]
		}
		if err != nil && !errors.Is(err, bullmq.ErrJobMissing) {
			return moved, fmt.Errorf("redrive %s: re-queued, but the entry stays: %w", e.JobID, err)
		}
		moved++
	}
	return moved, nil
}

func redriveJobID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "redrive-" + hex.EncodeToString(sum[:20])
}
