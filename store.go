package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Record is an accepted event as it is stored: the event exactly as sent, plus
// what the worker adds (idempotency key, where it came from, what verification
// found, when it arrived, and a hash over all of it).
type Record struct {
	Event
	// IdempotencyKey identifies the delivery: a second record with the same key
	// and the same event timestamp is a duplicate and is not stored again.
	IdempotencyKey  string
	Source          string // e.g. "http", "bullmq:audit-events"
	HashStatus      string // HashVerified or HashAbsent
	SignatureStatus string // SignatureVerified, SignatureAbsent or SignatureUnverified
	ReceivedAt      time.Time
	// RecordHash is the SHA-256 (hex) of the stored content, see ComputeRecordHash.
	RecordHash string
	// Payload is the event exactly as received. It is not stored with the
	// record (the columns and Details hold its content); a store that refuses
	// the record keeps it in the record's dead letter, so that nothing is lost.
	Payload []byte
}

// NewRecord builds the record for a verified event and computes its record hash.
func NewRecord(e Event, key, source string, integrity IntegrityResult, receivedAt time.Time) Record {
	r := Record{
		Event: e, IdempotencyKey: key, Source: source,
		HashStatus: integrity.HashStatus, SignatureStatus: integrity.SignatureStatus,
		ReceivedAt: receivedAt.UTC().Truncate(time.Microsecond),
	}
	r.RecordHash = r.ComputeRecordHash()
	return r
}

// ComputeRecordHash hashes the record's stored content: every event field as sent
// (Details byte for byte) and the idempotency key and source. Each value is
// length-prefixed so that no two different records share an encoding. Stores keep
// all of these exactly, so the hash can be recomputed from a stored row; tamper-
// evident checkpoints chain these hashes in sequence order.
func (r *Record) ComputeRecordHash() string {
	latency := ""
	if r.ProcessingLatency != nil {
		latency = strconv.FormatFloat(*r.ProcessingLatency, 'g', -1, 64)
	}
	fields := [...]string{"audit-record-v1",
		r.IdempotencyKey, r.Source, r.Timestamp, r.TTL, r.PrincipalID, r.OrganizationID,
		r.Action, r.TargetResourceType, r.TargetResourceID, string(r.Status),
		r.OutcomeDescription, r.Hash, r.HashAlgorithm, r.Signature, r.SignatureAlgorithm,
		r.EventVersion, r.CorrelationID, string(r.DataClassification), r.RetentionPolicy,
		latency, string(r.Details),
	}
	// One buffer hashed at once: writing each field to a hash.Hash would copy
	// every string to the heap first (21 allocations per record). The buffer
	// is reused from record to record.
	bp := recordHashBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, f := range fields {
		buf = binary.AppendUvarint(buf, uint64(len(f)))
		buf = append(buf, f...)
	}
	sum := sha256.Sum256(buf)
	*bp = buf
	recordHashBuffers.Put(bp)
	return hex.EncodeToString(sum[:])
}

var recordHashBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// RecordHashSum is ComputeRecordHash as 32 bytes, for verifying many rows:
// it writes the fields straight into buf (returned grown, for the next call)
// and allocates nothing. Its encoding must stay ComputeRecordHash's, which a
// test checks on generated and edge-case records.
func (r *Record) RecordHashSum(buf []byte) ([32]byte, []byte) {
	buf = appendHashField(buf[:0], "audit-record-v1")
	for _, f := range [...]string{r.IdempotencyKey, r.Source, r.Timestamp, r.TTL, r.PrincipalID, r.OrganizationID,
		r.Action, r.TargetResourceType, r.TargetResourceID, string(r.Status),
		r.OutcomeDescription, r.Hash, r.HashAlgorithm, r.Signature, r.SignatureAlgorithm,
		r.EventVersion, r.CorrelationID, string(r.DataClassification), r.RetentionPolicy} {
		buf = appendHashField(buf, f)
	}
	if r.ProcessingLatency == nil {
		buf = binary.AppendUvarint(buf, 0)
	} else {
		// The text's length comes first: format it at the end of buf, then
		// move it behind its length.
		at := len(buf)
		buf = strconv.AppendFloat(buf, *r.ProcessingLatency, 'g', -1, 64)
		n := len(buf) - at
		var tmp [32]byte // a float64's shortest text is at most 24 bytes
		copy(tmp[:], buf[at:])
		buf = binary.AppendUvarint(buf[:at], uint64(n))
		buf = append(buf, tmp[:n]...)
	}
	buf = binary.AppendUvarint(buf, uint64(len(r.Details)))
	buf = append(buf, r.Details...)
	return sha256.Sum256(buf), buf
}

func appendHashField(buf []byte, f string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(f)))
	return append(buf, f...)
}

// Reasons an event is dead-lettered instead of stored.
const (
	ReasonValidation         = "validation_failed"
	ReasonIntegrityViolation = "integrity_violation"
	// ReasonStoreRefused: the database refused the record itself (a
	// constraint, a value it does not take); the message is the database's.
	ReasonStoreRefused = "store_refused"
	// ReasonProcessingFailed: the worker kept failing on the event with an
	// error that is not transient (or a panic) and gave up on it.
	ReasonProcessingFailed = "processing_failed"
	// ReasonForbiddenOrganization: the credentials the event came with may
	// not send events of its organisation.
	ReasonForbiddenOrganization = "forbidden_organization"
)

// DeadLetter is an event that was refused, kept with the reason so that nothing
// is lost: it can be inspected, fixed at the producer and sent again.
type DeadLetter struct {
	IdempotencyKey string
	Source         string
	Reason         string       // one of the Reason constants
	Message        string       // human-readable summary
	Errors         []FieldError // the rules broken, for validation failures
	Payload        []byte       // the event exactly as received
	ReceivedAt     time.Time
}

// RefusedDeadLetter is the dead letter of a record the store refused. reason
// is the database's message, made valid UTF-8 without NUL (which a text column
// refuses): a dead letter must never be refused itself.
func (r *Record) RefusedDeadLetter(reason string) DeadLetter {
	if !utf8.ValidString(reason) || strings.ContainsRune(reason, 0) {
		reason = strings.ReplaceAll(strings.ToValidUTF8(reason, "\uFFFD"), "\x00", "\uFFFD")
	}
	return DeadLetter{
		IdempotencyKey: r.IdempotencyKey, Source: r.Source, Reason: ReasonStoreRefused,
		Message: reason, Payload: r.Payload, ReceivedAt: r.ReceivedAt,
	}
}

// Batch is what a store writes in one transaction. Idempotency keys are distinct
// within Records and within DeadLetters.
type Batch struct {
	Records     []Record
	DeadLetters []DeadLetter
}

// StoreResult is the outcome for one record of a batch.
type StoreResult struct {
	Seq       int64 // sequence number of the stored row; 0 for a duplicate or a refused record
	Duplicate bool  // the key was stored before, nothing was written
	// Refused, when not empty, is the database's reason for refusing this
	// record: it is not stored, and the store wrote its dead letter
	// (ReasonStoreRefused, with the record's Payload) in the same transaction.
	Refused string
}

// WithDeadLetters returns the batch's dead letters followed by those of more
// whose key the batch does not hold yet: a key is written once per batch.
func (b Batch) WithDeadLetters(more []DeadLetter) []DeadLetter {
	if len(more) == 0 {
		return b.DeadLetters
	}
	out := make([]DeadLetter, 0, len(b.DeadLetters)+len(more))
	out = append(out, b.DeadLetters...)
	seen := make(map[string]bool, cap(out))
	for i := range b.DeadLetters {
		seen[b.DeadLetters[i].IdempotencyKey] = true
	}
	for _, d := range more {
		if !seen[d.IdempotencyKey] {
			seen[d.IdempotencyKey] = true
			out = append(out, d)
		}
	}
	return out
}

// StoredEvent is a record read back from a store.
type StoredEvent struct {
	Record
	Seq      int64
	StoredAt time.Time
}

// StoredDeadLetter is a dead letter read back from a store.
type StoredDeadLetter struct {
	DeadLetter
	ID       int64
	Count    int // how many times this key was refused
	StoredAt time.Time
}

// EventStore keeps audit records durably. Implementations: postgres, sqlite.
type EventStore interface {
	// StoreBatch writes the batch in one transaction: all of it or none of it.
	// results[i] belongs to b.Records[i]. A record whose (idempotency key, event
	// time) is already stored is reported as a duplicate; a dead letter whose key
	// is already stored only has its count raised. A record the database itself
	// refuses (a constraint or data error that belongs to that record) does not
	// fail the batch: it is reported Refused and dead-lettered with
	// ReasonStoreRefused, and the rest of the batch is stored. Errors are
	// transient (CodeUnavailable) unless the batch itself is malformed.
	StoreBatch(ctx context.Context, b Batch) ([]StoreResult, error)
	// GetEvent returns the newest record with this idempotency key (CodeNotFound if none).
	GetEvent(ctx context.Context, idempotencyKey string) (StoredEvent, error)
	// ListEvents returns up to limit records with Seq > afterSeq, in Seq order.
	ListEvents(ctx context.Context, afterSeq int64, limit int) ([]StoredEvent, error)
	// ListDeadLetters returns up to limit dead letters with ID > afterID, in ID order.
	ListDeadLetters(ctx context.Context, afterID int64, limit int) ([]StoredDeadLetter, error)
	// Ping checks that the store can be reached.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}
