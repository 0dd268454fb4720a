package postgres

import (
	"context"
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	audit "github.com/smartlogs/audit-worker"
)

// Verification reads every row of the log, so LeafEvents decodes pages
// itself from PostgreSQL's binary result format instead of scanning values
// through pgx, which allocates and copies each of a row's 28 values: a page's
// text values are gathered into one buffer that becomes one string, and each
// field is a substring of it. A page then costs a handful of allocations,
// whatever its size (see docs/BENCHMARKS.md, tamper evidence).

// leafEventColumns are the columns of a leaf's row, in the order
// decodeLeafRow reads them. NULL comes as a nil value and is read as "".
const leafEventColumns = `id, "timestamp", timestamp_raw, ttl, principal_id, organization_id, action,
	target_resource_type, target_resource_id, status, outcome_description, hash, hash_algorithm, signature,
	signature_algorithm, event_version, correlation_id, data_classification, retention_policy,
	processing_latency, details, idempotency_key, source, hash_status, signature_status, record_hash,
	received_at, ingested_at`

const leafEventColumnCount = 28

// binaryResults asks for every result column in binary format.
var binaryResults = []int16{1}

// int8Params encodes bigint parameters in binary.
func int8Params(vs ...int64) (values [][]byte, oids []uint32, formats []int16) {
	for _, v := range vs {
		values = append(values, binary.BigEndian.AppendUint64(nil, uint64(v)))
		oids = append(oids, 20) // int8
	}
	return values, oids, []int16{1}
}

// LeafEvents returns leaves from index from on, each with its row. The rows
// are read by ranges of id (leaf order is nearly id order): an index range
// scan per run of close ids, where a join would probe every partition for
// every leaf. A row counts only if its event time is the leaf's too: (id,
// "timestamp") is the row's key. The events' strings share one string per
// page, and SessionContext is left undecoded (nothing checks it apart from
// Details, which holds it).
func (s *Store) LeafEvents(ctx context.Context, from int64, limit int) ([]audit.LeafEvent, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, wrapErr("read leaves", err)
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()
	values, oids, formats := int8Params(from, int64(limit))
	rr := pg.ExecParams(ctx, `SELECT leaf_index, event_id, event_time, leaf_data FROM tlog_leaves
		WHERE leaf_index >= $1 ORDER BY leaf_index LIMIT $2`, values, oids, formats, binaryResults)
	out := make([]audit.LeafEvent, 0, min(limit, 1<<16))
	for rr.NextRow() {
		v := rr.Values()
		if len(v) != 4 || len(v[0]) != 8 || len(v[1]) != 8 || len(v[2]) != 8 {
			rr.Close()
			return nil, audit.Errorf(audit.CodeIntegrity, "read leaves: leaf row of unexpected shape")
		}
		var le audit.LeafEvent
		le.Index, le.Seq, le.Time = readInt8(v[0]), readInt8(v[1]), readTimestamptz(v[2])
		copy(le.RecordHash[:], v[3])
		out = append(out, le)
	}
	if _, err := rr.Close(); err != nil {
		return nil, wrapErr("read leaves", err)
	}
	ids := make([]int64, len(out))
	for i := range out {
		ids[i] = out[i].Seq
	}
	slices.Sort(ids)
	p := leafRowPages.Get().(*leafRowPage)
	defer p.release()
	p.details = make([]byte, 0, p.detailsHint)
	for lo := 0; lo < len(ids); {
		hi := lo
		for hi+1 < len(ids) && ids[hi+1]-ids[hi] <= leafRangeGap {
			hi++
		}
		if err := p.read(ctx, pg, ids[lo], ids[hi]); err != nil {
			return nil, err
		}
		lo = hi + 1
	}
	events := p.events()
	bySeq := make(map[int64]*audit.StoredEvent, len(events))
	for i := range events {
		bySeq[events[i].Seq] = &events[i]
	}
	for i := range out {
		if e := bySeq[out[i].Seq]; e != nil && e.Time.Equal(out[i].Time) {
			out[i].Event = e
		}
	}
	return out, nil
}

// leafRowPage gathers the raw values of rows as they arrive: text in one
// buffer, details in another, the rest decoded. The text buffer and rows are
// reused from page to page (the events hold a string copy of the text); the
// details are the events' own, sized as the last page's were.
type leafRowPage struct {
	text        []byte
	details     []byte
	rows        []leafRow
	detailsHint int
}

var leafRowPages = sync.Pool{New: func() any { return new(leafRowPage) }}

func (p *leafRowPage) release() {
	if cap(p.text) > 64<<20 { // a page of unusually large rows is not kept
		return
	}
	p.text, p.rows, p.detailsHint = p.text[:0], p.rows[:0], len(p.details)
	p.details = nil
	leafRowPages.Put(p)
}

// span is a value's place in a page's buffer; off < 0 is NULL.
type span struct{ off, end int32 }

// leafRow is a row of leafEventColumns: the text columns as spans, in
// column order (the timestamp and the numbers aside).
type leafRow struct {
	seq                   int64
	time, received, saved time.Time
	latency               float64
	hasLatency            bool
	text                  [22]span // columns 2..18 and 21..25
	details               span
}

func (p *leafRowPage) read(ctx context.Context, pg *pgconn.PgConn, lo, hi int64) error {
	values, oids, formats := int8Params(lo, hi)
	rr := pg.ExecParams(ctx, `SELECT `+leafEventColumns+` FROM audit_log WHERE id BETWEEN $1 AND $2`,
		values, oids, formats, binaryResults)
	for rr.NextRow() {
		if err := p.add(rr.Values()); err != nil {
			rr.Close()
			return err
		}
	}
	if _, err := rr.Close(); err != nil {
		return wrapErr("read leaf rows", err)
	}
	if len(p.text) > math.MaxInt32 || len(p.details) > math.MaxInt32 {
		return audit.Errorf(audit.CodeUnavailable, "read leaf rows: a page of rows holds more than 2 GiB: read fewer leaves at a time")
	}
	return nil
}

func (p *leafRowPage) add(v [][]byte) error {
	if len(v) != leafEventColumnCount || len(v[0]) != 8 || len(v[1]) != 8 || len(v[26]) != 8 || len(v[27]) != 8 ||
		(v[19] != nil && len(v[19]) != 8) {
		return audit.Errorf(audit.CodeIntegrity, "read leaf rows: a row of unexpected shape")
	}
	r := leafRow{seq: readInt8(v[0]), time: readTimestamptz(v[1]),
		received: readTimestamptz(v[26]), saved: readTimestamptz(v[27])}
	if v[19] != nil {
		r.latency, r.hasLatency = math.Float64frombits(binary.BigEndian.Uint64(v[19])), true
	}
	k := 0
	for c := 2; c <= 25; c++ {
		if c == 19 || c == 20 {
			continue
		}
		r.text[k] = spanOf(&p.text, v[c])
		k++
	}
	r.details = spanOf(&p.details, v[20])
	p.rows = append(p.rows, r)
	return nil
}

func spanOf(buf *[]byte, v []byte) span {
	if v == nil {
		return span{-1, -1}
	}
	off := len(*buf)
	*buf = append(*buf, v...)
	return span{int32(off), int32(len(*buf))}
}

// events turns the page into events: one string for all text values, one
// slice of events and one of latencies.
func (p *leafRowPage) events() []audit.StoredEvent {
	text := string(p.text)
	str := func(s span) string {
		if s.off < 0 {
			return ""
		}
		return text[s.off:s.end]
	}
	out := make([]audit.StoredEvent, len(p.rows))
	latencies := make([]float64, len(p.rows))
	for i := range p.rows {
		r := &p.rows[i]
		e := &out[i]
		e.Seq, e.Time, e.ReceivedAt, e.StoredAt = r.seq, r.time, r.received, r.saved
		t := &r.text
		e.Timestamp, e.TTL, e.PrincipalID, e.OrganizationID, e.Action = str(t[0]), str(t[1]), str(t[2]), str(t[3]), str(t[4])
		e.TargetResourceType, e.TargetResourceID, e.Status = str(t[5]), str(t[6]), audit.Status(str(t[7]))
		e.OutcomeDescription, e.Hash, e.HashAlgorithm, e.Signature = str(t[8]), str(t[9]), str(t[10]), str(t[11])
		e.SignatureAlgorithm, e.EventVersion, e.CorrelationID = str(t[12]), str(t[13]), str(t[14])
		e.DataClassification, e.RetentionPolicy = audit.Classification(str(t[15])), str(t[16])
		e.IdempotencyKey, e.Source, e.HashStatus, e.SignatureStatus, e.RecordHash = str(t[17]), str(t[18]), str(t[19]), str(t[20]), str(t[21])
		if r.hasLatency {
			latencies[i] = r.latency
			e.ProcessingLatency = &latencies[i]
		}
		if r.details.off >= 0 && r.details.end > r.details.off {
			e.Details = p.details[r.details.off:r.details.end:r.details.end]
		}
	}
	return out
}

func readInt8(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) }

// readTimestamptz reads µs since 2000-01-01 UTC, in the local zone as pgx
// gives it.
func readTimestamptz(b []byte) time.Time {
	return time.UnixMicro(readInt8(b) + pgEpochMicros)
}
