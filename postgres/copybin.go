package postgres

import (
	"context"
	"encoding/binary"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
)

// Records go to COPY in PostgreSQL's binary format, encoded here rather than
// by pgx.CopyFrom: pgx plans and encodes each of the 27 values of a row through
// its type map, which costs 14 % of the worker's CPU in a drain.
// Every column is one of four types, so the encoding is a few appends per
// value (see "Binary Format" under COPY in PostgreSQL's documentation).

// copyBinarySignature opens a binary COPY stream; flags and the header
// extension length (both 0) follow it.
const copyBinarySignature = "PGCOPY\n\xff\r\n\x00"

// pgEpochMicros is 2000-01-01 UTC, where timestamptz counts from, in Unix µs.
var pgEpochMicros = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// recordColumns is how many values a record row holds: a leading bigint (the
// id, or the staging table's ord) and the record's 26 columns.
const recordColumns = 1 + 26

// copySQL is the COPY statement for table with columns, in binary format.
func copySQL(table string, columns []string) string {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	return "COPY " + pgx.Identifier{table}.Sanitize() + " (" + strings.Join(quoted, ", ") + ") FROM STDIN (FORMAT binary)"
}

// copyRecords COPYs recs with the statement sql, whose columns are a bigint
// (lead(i) for record i) followed by the record's columns in auditLogColumns
// order. Optional strings that are empty go as NULL, as insertIntoSQL's
// NULLIF would make them: an absent value is stored as NULL.
func copyRecords(ctx context.Context, tx pgx.Tx, sql string, recs []audit.Record, lead func(i int) int64) error {
	bp := streamBuffers.Get().(*[]byte)
	src := &recordStream{recs: recs, lead: lead, buf: (*bp)[:0]}
	src.buf = append(src.buf, copyBinarySignature...)
	src.buf = binary.BigEndian.AppendUint32(src.buf, 0) // flags
	src.buf = binary.BigEndian.AppendUint32(src.buf, 0) // header extension length
	_, err := tx.Conn().PgConn().CopyFrom(ctx, src, sql)
	// On some connection failures pgconn returns while its goroutine may still
	// be reading src: only a COPY that succeeded surely has let go of buf.
	if err == nil && cap(src.buf) <= maxPooledStreamBuffer {
		*bp = src.buf
		streamBuffers.Put(bp)
	}
	return err
}

// streamBuffers are recordStream buffers, reused from batch to batch. A
// buffer holds one read of COPY's (64 KiB) and a row; one that grew for a
// large event is left to the garbage collector.
var streamBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 96<<10); return &b }}

const maxPooledStreamBuffer = 1 << 20

// recordStream encodes rows as COPY reads them, so that a batch never sits
// in memory twice: it holds at most one read's worth of encoded rows.
type recordStream struct {
	recs []audit.Record
	lead func(i int) int64
	next int    // the next record to encode
	buf  []byte // encoded, not yet read
	off  int    // buf[:off] was read
}

func (s *recordStream) Read(p []byte) (int, error) {
	for len(s.buf)-s.off < len(p) && s.next <= len(s.recs) {
		if s.off > 0 { // keep buf from growing beyond a read and a row
			s.buf = s.buf[:copy(s.buf, s.buf[s.off:])]
			s.off = 0
		}
		if s.next == len(s.recs) {
			s.buf = binary.BigEndian.AppendUint16(s.buf, 0xffff) // trailer: -1
		} else {
			s.buf = appendRecordRow(s.buf, s.lead(s.next), &s.recs[s.next])
		}
		s.next++
	}
	if s.off == len(s.buf) {
		return 0, io.EOF
	}
	n := copy(p, s.buf[s.off:])
	s.off += n
	return n, nil
}

// appendRecordRow appends one row: lead, then r's columns in auditLogColumns
// order.
func appendRecordRow(b []byte, lead int64, r *audit.Record) []byte {
	b = binary.BigEndian.AppendUint16(b, recordColumns)
	b = appendInt8(b, lead)
	b = appendTimestamptz(b, r.Time)
	b = appendText(b, r.Timestamp)
	b = appendOptional(b, r.TTL)
	b = appendOptional(b, r.PrincipalID)
	b = appendOptional(b, r.OrganizationID)
	b = appendText(b, r.Action)
	b = appendOptional(b, r.TargetResourceType)
	b = appendOptional(b, r.TargetResourceID)
	b = appendText(b, string(r.Status))
	b = appendOptional(b, r.OutcomeDescription)
	b = appendOptional(b, r.Hash)
	b = appendOptional(b, r.HashAlgorithm)
	b = appendOptional(b, r.Signature)
	b = appendOptional(b, r.SignatureAlgorithm)
	b = appendOptional(b, r.EventVersion)
	b = appendOptional(b, r.CorrelationID)
	b = appendOptional(b, string(r.DataClassification))
	b = appendOptional(b, r.RetentionPolicy)
	if r.ProcessingLatency == nil {
		b = appendNull(b)
	} else {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(*r.ProcessingLatency))
	}
	if len(r.Details) == 0 {
		b = appendNull(b)
	} else { // json's binary form is its text: the producer's bytes as they are
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Details)))
		b = append(b, r.Details...)
	}
	b = appendText(b, r.IdempotencyKey)
	b = appendText(b, r.Source)
	b = appendText(b, r.HashStatus)
	b = appendText(b, r.SignatureStatus)
	b = appendText(b, r.RecordHash)
	return appendTimestamptz(b, r.ReceivedAt)
}

func appendNull(b []byte) []byte { return binary.BigEndian.AppendUint32(b, math.MaxUint32) } // length -1

// appendOptional appends s, or NULL if it is empty (an absent value).
func appendOptional(b []byte, s string) []byte {
	if s == "" {
		return appendNull(b)
	}
	return appendText(b, s)
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendInt8(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

// appendTimestamptz sends t in µs since 2000-01-01 UTC, truncating below the
// µs as pgx does.
func appendTimestamptz(b []byte, t time.Time) []byte {
	return appendInt8(b, t.UnixMicro()-pgEpochMicros)
}
