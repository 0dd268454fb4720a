package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// Run runs every conformance test as a subtest. open must return a fresh, empty
// store for each call and arrange for it to be closed (t.Cleanup): the suite
// never calls Close, so that a store may share resources between its subtests.
func Run(t *testing.T, open func(t *testing.T) audit.EventStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s audit.EventStore)
	}{
		{"RoundTripEveryField", testRoundTrip},
		{"GeneratedRecordsRoundTrip", testGeneratedRoundTrip},
		{"Idempotency", testIdempotency},
		{"SameKeyOtherEventTimeIsAnotherRow", testSameKeyOtherTime},
		{"LargeBatch", testLargeBatch},
		{"EmptyBatch", testEmptyBatch},
		{"SeqOrderAndPaging", testSeqPaging},
		{"DeadLetters", testDeadLetters},
		{"DeadLetterRepeatRaisesCount", testDeadLetterRepeat},
		{"DeadLetterQuota", testDeadLetterQuota},
		{"DeadLetterRetention", testDeadLetterRetention},
		{"DeadLetterUsage", testDeadLetterUsage},
		{"DeadLetterGetAndDelete", testDeadLetterGetAndDelete},
		{"BatchIsAtomic", testAtomic},
		{"BatchIsAtomicWhenCancelled", testAtomicCancelled},
		{"ConcurrentOverlappingBatches", testConcurrent},
		{"FarPastAndFutureEventTimes", testFarTimes},
		{"GetEventNotFound", testNotFound},
		{"CancelledContext", testCancelled},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func ptr[T any](v T) *T { return &v }

// record builds a record from a hand-made event, as the pipeline would.
func record(e audit.Event, key string) audit.Record {
	integrity := audit.IntegrityResult{HashStatus: audit.HashAbsent, SignatureStatus: audit.SignatureAbsent}
	if e.Hash != "" {
		integrity.HashStatus = audit.HashVerified
	}
	if e.Signature != "" {
		integrity.SignatureStatus = audit.SignatureUnverified
	}
	return audit.NewRecord(e, key, "storetest", integrity, time.Now())
}

// minimalEvent has only the required fields.
func minimalEvent(t time.Time) audit.Event {
	ts := t.UTC().Format("2006-01-02T15:04:05.000Z")
	parsed, _ := time.Parse(time.RFC3339Nano, ts)
	return audit.Event{Timestamp: ts, Time: parsed, Action: "auth.login.success", Status: audit.StatusSuccess}
}

func generated(seed uint64, n int) []audit.Record {
	g := eventgen.New(seed)
	g.HMACKey = []byte("storetest-hmac-key")
	return g.Records(n, fmt.Sprintf("storetest-%d", seed))
}

func store(t *testing.T, s audit.EventStore, b audit.Batch) []audit.StoreResult {
	t.Helper()
	res, err := s.StoreBatch(ctxFor(t), b)
	if err != nil {
		t.Fatalf("StoreBatch: %v", err)
	}
	if len(res) != len(b.Records) {
		t.Fatalf("StoreBatch returned %d results for %d records", len(res), len(b.Records))
	}
	return res
}

// listAll pages through every stored event with a small page size, so that the
// paging itself is exercised.
func listAll(t *testing.T, s audit.EventStore) []audit.StoredEvent {
	t.Helper()
	return pageAll(t, "ListEvents", 137, s.ListEvents, func(e audit.StoredEvent) int64 { return e.Seq })
}

func listDeadLetters(t *testing.T, s audit.EventStore) []audit.StoredDeadLetter {
	t.Helper()
	return pageAll(t, "ListDeadLetters", 2, s.ListDeadLetters, func(d audit.StoredDeadLetter) int64 { return d.ID })
}

// pageAll reads every item through list, limit at a time, and checks that no
// page holds more than limit items and that the keys strictly increase.
func pageAll[T any](t *testing.T, what string, limit int, list func(ctx context.Context, after int64, limit int) ([]T, error), key func(T) int64) []T {
	t.Helper()
	var out []T
	after := int64(0)
	for {
		page, err := list(ctxFor(t), after, limit)
		if err != nil {
			t.Fatalf("%s(%d): %v", what, after, err)
		}
		if len(page) > limit {
			t.Fatalf("%s returned %d items, limit %d", what, len(page), limit)
		}
		for _, item := range page {
			if key(item) <= after {
				t.Fatalf("%s: key %d after %d, want strictly increasing", what, key(item), after)
			}
			after = key(item)
		}
		out = append(out, page...)
		if len(page) < limit {
			return out
		}
	}
}

// checkRecord compares a stored event with the record that was written, field by
// field, and recomputes both hashes from what was read back.
func checkRecord(t *testing.T, want audit.Record, got audit.StoredEvent) {
	t.Helper()
	w, g := want, got.Record
	str := []struct {
		name      string
		want, got string
	}{
		{"IdempotencyKey", w.IdempotencyKey, g.IdempotencyKey},
		{"Source", w.Source, g.Source},
		{"HashStatus", w.HashStatus, g.HashStatus},
		{"SignatureStatus", w.SignatureStatus, g.SignatureStatus},
		{"RecordHash", w.RecordHash, g.RecordHash},
		{"Timestamp", w.Timestamp, g.Timestamp},
		{"TTL", w.TTL, g.TTL},
		{"PrincipalID", w.PrincipalID, g.PrincipalID},
		{"OrganizationID", w.OrganizationID, g.OrganizationID},
		{"Action", w.Action, g.Action},
		{"TargetResourceType", w.TargetResourceType, g.TargetResourceType},
		{"TargetResourceID", w.TargetResourceID, g.TargetResourceID},
		{"Status", string(w.Status), string(g.Status)},
		{"OutcomeDescription", w.OutcomeDescription, g.OutcomeDescription},
		{"Hash", w.Hash, g.Hash},
		{"HashAlgorithm", w.HashAlgorithm, g.HashAlgorithm},
		{"Signature", w.Signature, g.Signature},
		{"SignatureAlgorithm", w.SignatureAlgorithm, g.SignatureAlgorithm},
		{"EventVersion", w.EventVersion, g.EventVersion},
		{"CorrelationID", w.CorrelationID, g.CorrelationID},
		{"DataClassification", string(w.DataClassification), string(g.DataClassification)},
		{"RetentionPolicy", w.RetentionPolicy, g.RetentionPolicy},
	}
	for _, f := range str {
		if f.want != f.got {
			t.Errorf("%s: %s = %q, want %q", w.IdempotencyKey, f.name, trunc(f.got), trunc(f.want))
		}
	}
	if !g.Time.Equal(w.Time) {
		t.Errorf("%s: Time = %v, want the instant %v", w.IdempotencyKey, g.Time, w.Time)
	}
	if !g.ReceivedAt.Equal(w.ReceivedAt) {
		t.Errorf("%s: ReceivedAt = %v, want %v", w.IdempotencyKey, g.ReceivedAt, w.ReceivedAt)
	}
	switch {
	case (w.ProcessingLatency == nil) != (g.ProcessingLatency == nil):
		t.Errorf("%s: ProcessingLatency = %v, want %v", w.IdempotencyKey, fmtLatency(g.ProcessingLatency), fmtLatency(w.ProcessingLatency))
	case w.ProcessingLatency != nil && *w.ProcessingLatency != *g.ProcessingLatency:
		t.Errorf("%s: ProcessingLatency = %v, want %v", w.IdempotencyKey, *g.ProcessingLatency, *w.ProcessingLatency)
	}
	if !bytes.Equal(w.Details, g.Details) {
		t.Errorf("%s: Details = %q, want %q", w.IdempotencyKey, trunc(string(g.Details)), trunc(string(w.Details)))
	}
	// SessionContext is not stored content of its own: it is decoded from Details.
	// A store may leave it nil, but what it returns must match.
	if g.SessionContext != nil && (w.SessionContext == nil || *g.SessionContext != *w.SessionContext) {
		t.Errorf("%s: SessionContext = %+v, want %+v", w.IdempotencyKey, g.SessionContext, w.SessionContext)
	}
	if h := g.ComputeRecordHash(); h != w.RecordHash {
		t.Errorf("%s: record hash recomputed from the stored row is %s, want %s", w.IdempotencyKey, h, w.RecordHash)
	}
	if w.Hash != "" {
		if h := g.ComputeHash(); h != g.Hash {
			t.Errorf("%s: producer hash recomputed from the stored row is %s, stored %s", w.IdempotencyKey, h, g.Hash)
		}
	}
	if got.Seq <= 0 {
		t.Errorf("%s: Seq = %d, want > 0", w.IdempotencyKey, got.Seq)
	}
	if got.StoredAt.IsZero() {
		t.Errorf("%s: StoredAt is zero", w.IdempotencyKey)
	}
}

func fmtLatency(p *float64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

func trunc(s string) string {
	if len(s) > 120 {
		return s[:120] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

// specialRecords are hand-made records holding every kind of value that a store
// could alter: escapes, non-BMP characters, U+2028, long strings, offsets.
func specialRecords() []audit.Record {
	tricky := `<script>alert("x&y")</script> 'single' "double" \back\slash` + "\u2028\u2029 emoji 😀👩‍⚕️ café Ω \t tab"
	long := strings.Repeat("é", 5000) + strings.Repeat("x", 4999) + "😀" // 10000 characters
	offset := time.FixedZone("", 5*3600+30*60)
	full := audit.Event{
		Timestamp:          "2024-03-10T15:04:05.123456+05:30",
		Time:               time.Date(2024, 3, 10, 15, 4, 5, 123456000, offset),
		TTL:                "30d",
		PrincipalID:        "user-😀-" + tricky,
		OrganizationID:     "org <&> \"quoted\"",
		Action:             "fhir.patient.read",
		TargetResourceType: "Patient",
		TargetResourceID:   "Patient/123\u2028456",
		Status:             audit.StatusFailure,
		OutcomeDescription: long,
		HashAlgorithm:      "SHA-256",
		Signature:          "c2lnbmF0dXJl",
		SignatureAlgorithm: "RSASSA_PSS_SHA_256",
		EventVersion:       "2.0",
		CorrelationID:      `corr\"id`,
		DataClassification: audit.ClassPHI,
		RetentionPolicy:    "2555", // a numeric retentionPolicy is kept as its JSON text
		ProcessingLatency:  ptr(12.625),
		SessionContext:     &audit.SessionContext{SessionID: "s-1", IPAddress: "2001:db8::1", UserAgent: "curl/8 😀"},
		// Raw JSON as sent: escapes, odd spacing, number spellings and key order
		// must survive byte for byte.
		Details: []byte(`{"sessionContext":{"sessionId":"s-1","ipAddress":"2001:db8::1","userAgent":"curl/8 😀"},` +
			`"custom" : { "b":1.50, "a":[1e3, -0.0, 1E-7], "esc":"\u003c\u2028\ud83d\ude00\"\\\/" },` +
			`"dup":1,"dup":2,"line":"a` + "\u2028" + `b","nested":{"z":null,"y":true}}`),
	}
	full.Hash = full.ComputeHash()

	zeroLatency := minimalEvent(time.Date(2024, 1, 31, 23, 59, 59, 999000000, time.UTC))
	zeroLatency.ProcessingLatency = ptr(0.0)
	zeroLatency.Details = []byte(`{}`)

	utcMicros := audit.Event{
		Timestamp: "2024-06-30T23:59:59.999999Z",
		Time:      time.Date(2024, 6, 30, 23, 59, 59, 999999000, time.UTC),
		Action:    "data.export", Status: audit.StatusAttempt,
		ProcessingLatency: ptr(1e-3),
		OrganizationID:    strings.Repeat("o", 10000),
	}
	utcMicros.Hash = utcMicros.ComputeHash()

	return []audit.Record{
		record(full, "special:full:😀"),
		record(minimalEvent(time.Date(2023, 10, 26, 10, 30, 0, 0, time.UTC)), "special:minimal"),
		record(zeroLatency, `special:zero-latency "quoted" \`),
		record(utcMicros, "special:micros"),
	}
}

func testRoundTrip(t *testing.T, s audit.EventStore) {
	recs := specialRecords()
	res := store(t, s, audit.Batch{Records: recs})
	for i, r := range res {
		if r.Duplicate || r.Seq <= 0 {
			t.Fatalf("result %d = %+v, want a new row", i, r)
		}
	}
	for i, want := range recs {
		got, err := s.GetEvent(ctxFor(t), want.IdempotencyKey)
		if err != nil {
			t.Fatalf("GetEvent(%q): %v", want.IdempotencyKey, err)
		}
		checkRecord(t, want, got)
		if got.Seq != res[i].Seq {
			t.Errorf("GetEvent(%q).Seq = %d, StoreBatch said %d", want.IdempotencyKey, got.Seq, res[i].Seq)
		}
	}
	all := listAll(t, s)
	if len(all) != len(recs) {
		t.Fatalf("ListEvents returned %d events, want %d", len(all), len(recs))
	}
	for i := range all {
		checkRecord(t, recs[i], all[i])
	}
}

func testGeneratedRoundTrip(t *testing.T, s audit.EventStore) {
	recs := generated(1, 50)
	store(t, s, audit.Batch{Records: recs})
	all := listAll(t, s)
	if len(all) != len(recs) {
		t.Fatalf("ListEvents returned %d events, want %d", len(all), len(recs))
	}
	for i := range all {
		checkRecord(t, recs[i], all[i])
		if all[i].SignatureStatus != audit.SignatureVerified || all[i].HashStatus != audit.HashVerified {
			t.Fatalf("statuses = %s/%s, want verified/verified", all[i].HashStatus, all[i].SignatureStatus)
		}
	}
}

func testIdempotency(t *testing.T, s audit.EventStore) {
	recs := generated(2, 20)
	first := store(t, s, audit.Batch{Records: recs[:10]})
	again := store(t, s, audit.Batch{Records: recs[:10]})
	for i, r := range again {
		if !r.Duplicate || r.Seq != 0 {
			t.Fatalf("second store, result %d = %+v, want a duplicate with Seq 0", i, r)
		}
	}
	// Half old, half new: only the new half is written, and the results line up
	// with batch positions.
	mixed := store(t, s, audit.Batch{Records: recs[5:15]})
	for i, r := range mixed {
		if old := i < 5; r.Duplicate != old {
			t.Fatalf("mixed batch, result %d = %+v, want duplicate=%v", i, r, old)
		}
		if !r.Duplicate && r.Seq <= first[len(first)-1].Seq {
			t.Fatalf("mixed batch, result %d Seq %d not after earlier batch's %d", i, r.Seq, first[len(first)-1].Seq)
		}
	}
	all := listAll(t, s)
	if len(all) != 15 {
		t.Fatalf("%d rows stored, want 15", len(all))
	}
	for i := range all {
		checkRecord(t, recs[i], all[i])
	}
}

// testSameKeyOtherTime pins down that the key is (idempotency key, event time):
// unique indexes on a table partitioned by event time must include it.
func testSameKeyOtherTime(t *testing.T, s audit.EventStore) {
	a := record(minimalEvent(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)), "same-key")
	b := record(minimalEvent(time.Date(2024, 5, 2, 12, 0, 0, 0, time.UTC)), "same-key")
	ra := store(t, s, audit.Batch{Records: []audit.Record{a}})
	rb := store(t, s, audit.Batch{Records: []audit.Record{b}})
	if ra[0].Duplicate || rb[0].Duplicate {
		t.Fatalf("results %+v %+v: the same key with another event time must be a new row", ra[0], rb[0])
	}
	if rb[0].Seq <= ra[0].Seq {
		t.Fatalf("Seq %d then %d, want increasing", ra[0].Seq, rb[0].Seq)
	}
	got, err := s.GetEvent(ctxFor(t), "same-key")
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != rb[0].Seq {
		t.Fatalf("GetEvent returned Seq %d, want the newest row %d", got.Seq, rb[0].Seq)
	}
	checkRecord(t, b, got)
	// Keys are distinct within a batch (see audit.Batch), so one batch each.
	for _, r := range []audit.Record{a, b} {
		if again := store(t, s, audit.Batch{Records: []audit.Record{r}}); !again[0].Duplicate {
			t.Fatalf("restoring %v: %+v, want a duplicate", r.Time, again[0])
		}
	}
	if n := len(listAll(t, s)); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
}

func testLargeBatch(t *testing.T, s audit.EventStore) {
	recs := generated(3, 1000)
	res := store(t, s, audit.Batch{Records: recs})
	for i := 1; i < len(res); i++ {
		if res[i].Duplicate || res[i].Seq <= res[i-1].Seq {
			t.Fatalf("result %d = %+v after %+v: want new rows with Seq increasing in batch order", i, res[i], res[i-1])
		}
	}
	all := listAll(t, s)
	if len(all) != 1000 {
		t.Fatalf("%d rows stored, want 1000", len(all))
	}
	for i := range all {
		if all[i].Seq != res[i].Seq {
			t.Fatalf("row %d Seq %d, StoreBatch said %d", i, all[i].Seq, res[i].Seq)
		}
		checkRecord(t, recs[i], all[i])
	}
	again := store(t, s, audit.Batch{Records: recs})
	for i, r := range again {
		if !r.Duplicate {
			t.Fatalf("restore, result %d = %+v, want duplicate", i, r)
		}
	}
}

func testEmptyBatch(t *testing.T, s audit.EventStore) {
	res, err := s.StoreBatch(ctxFor(t), audit.Batch{})
	if err != nil || len(res) != 0 {
		t.Fatalf("StoreBatch(empty) = %v, %v; want no results, no error", res, err)
	}
	res, err = s.StoreBatch(ctxFor(t), audit.Batch{Records: []audit.Record{}, DeadLetters: []audit.DeadLetter{}})
	if err != nil || len(res) != 0 {
		t.Fatalf("StoreBatch(empty slices) = %v, %v; want no results, no error", res, err)
	}
	if n := len(listAll(t, s)); n != 0 {
		t.Fatalf("%d rows after empty batches", n)
	}
}

func testSeqPaging(t *testing.T, s audit.EventStore) {
	recs := generated(4, 30)
	var seqs []int64
	for i := 0; i < 30; i += 10 {
		for _, r := range store(t, s, audit.Batch{Records: recs[i : i+10]}) {
			seqs = append(seqs, r.Seq)
		}
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("Seq %d after %d, want strictly increasing across batches", seqs[i], seqs[i-1])
		}
	}
	ctx := ctxFor(t)
	page, err := s.ListEvents(ctx, 0, 7)
	if err != nil || len(page) != 7 || page[0].Seq != seqs[0] {
		t.Fatalf("ListEvents(0, 7) = %d events, %v; want 7 starting at Seq %d", len(page), err, seqs[0])
	}
	page, err = s.ListEvents(ctx, seqs[11], 5)
	if err != nil || len(page) != 5 {
		t.Fatalf("ListEvents(after 12th, 5) = %d events, %v", len(page), err)
	}
	for i, e := range page {
		if e.Seq != seqs[12+i] || e.IdempotencyKey != recs[12+i].IdempotencyKey {
			t.Fatalf("page[%d] = Seq %d key %s, want Seq %d key %s", i, e.Seq, e.IdempotencyKey, seqs[12+i], recs[12+i].IdempotencyKey)
		}
	}
	page, err = s.ListEvents(ctx, seqs[29], 10)
	if err != nil || len(page) != 0 {
		t.Fatalf("ListEvents(after last) = %d events, %v; want none", len(page), err)
	}
	if got := listAll(t, s); len(got) != 30 {
		t.Fatalf("%d events, want 30", len(got))
	}
}

func deadLetters() []audit.DeadLetter {
	at := time.Date(2024, 2, 29, 8, 15, 30, 123456000, time.UTC)
	return []audit.DeadLetter{
		{
			IdempotencyKey: "dl:validation", Source: "http", Reason: audit.ReasonValidation,
			Message: "invalid event: action: required (required_field_missing)",
			Errors: []audit.FieldError{
				{Field: "action", Code: audit.ErrRequiredFieldMissing, Message: "is required"},
				{Field: "sessionContext.ipAddress", Code: audit.ErrInvalidFormat, Message: `must be an IPv4 or IPv6 address <"&">`},
			},
			Payload:    []byte(`{"status":"success","sessionContext":{"ipAddress":"999.1.1.1"},"emoji":"😀"}`),
			ReceivedAt: at,
		},
		{
			IdempotencyKey: "dl:binary", Source: "bullmq:audit-events", Reason: audit.ReasonValidation,
			Message: "event is not valid UTF-8",
			Errors:  []audit.FieldError{{Field: "", Code: audit.ErrInvalidFormat, Message: "invalid UTF-8"}},
			// Not UTF-8, with a NUL byte: the payload is kept as bytes, not text.
			Payload:    []byte{'{', '"', 'a', '"', ':', '"', 0xff, 0xfe, 0x00, 0xc3, '"', '}', 0x00},
			ReceivedAt: at.Add(time.Second),
		},
		{
			IdempotencyKey: "dl:integrity", Source: "http", Reason: audit.ReasonIntegrityViolation,
			Message:    "hash does not match the event",
			Payload:    []byte(`{"action":"data.read","hash":"00"}`),
			ReceivedAt: at.Add(2 * time.Second),
		},
	}
}

func checkDeadLetter(t *testing.T, want audit.DeadLetter, got audit.StoredDeadLetter) {
	t.Helper()
	g := got.DeadLetter
	if g.IdempotencyKey != want.IdempotencyKey || g.Source != want.Source || g.Reason != want.Reason || g.Message != want.Message {
		t.Errorf("dead letter = %q %q %q %q, want %q %q %q %q", g.IdempotencyKey, g.Source, g.Reason, g.Message,
			want.IdempotencyKey, want.Source, want.Reason, want.Message)
	}
	if !bytes.Equal(g.Payload, want.Payload) {
		t.Errorf("%s: Payload = %q, want %q", want.IdempotencyKey, g.Payload, want.Payload)
	}
	if len(g.Errors) != len(want.Errors) {
		t.Errorf("%s: Errors = %+v, want %+v", want.IdempotencyKey, g.Errors, want.Errors)
	} else {
		for i := range g.Errors {
			if g.Errors[i] != want.Errors[i] {
				t.Errorf("%s: Errors[%d] = %+v, want %+v", want.IdempotencyKey, i, g.Errors[i], want.Errors[i])
			}
		}
	}
	if !g.ReceivedAt.Equal(want.ReceivedAt) {
		t.Errorf("%s: ReceivedAt = %v, want %v", want.IdempotencyKey, g.ReceivedAt, want.ReceivedAt)
	}
	if got.ID <= 0 || got.StoredAt.IsZero() {
		t.Errorf("%s: ID %d StoredAt %v, want both set", want.IdempotencyKey, got.ID, got.StoredAt)
	}
}

func testDeadLetters(t *testing.T, s audit.EventStore) {
	dls := deadLetters()
	if res := store(t, s, audit.Batch{DeadLetters: dls}); len(res) != 0 {
		t.Fatalf("results for a batch without records: %+v", res)
	}
	got := listDeadLetters(t, s)
	if len(got) != len(dls) {
		t.Fatalf("%d dead letters, want %d", len(got), len(dls))
	}
	for i := range got {
		checkDeadLetter(t, dls[i], got[i])
		if got[i].Count != 1 {
			t.Errorf("%s: Count = %d, want 1", dls[i].IdempotencyKey, got[i].Count)
		}
	}
	page, err := s.ListDeadLetters(ctxFor(t), got[0].ID, 1)
	if err != nil || len(page) != 1 || page[0].ID != got[1].ID {
		t.Fatalf("ListDeadLetters(after first, 1) = %+v, %v; want the second", page, err)
	}
	if n := len(listAll(t, s)); n != 0 {
		t.Fatalf("dead letters created %d events", n)
	}
}

func testDeadLetterRepeat(t *testing.T, s audit.EventStore) {
	dls := deadLetters()
	store(t, s, audit.Batch{DeadLetters: dls})
	first := listDeadLetters(t, s)
	again := dls[1]
	again.ReceivedAt = again.ReceivedAt.Add(time.Hour)
	store(t, s, audit.Batch{DeadLetters: []audit.DeadLetter{again}})
	store(t, s, audit.Batch{DeadLetters: []audit.DeadLetter{again}})
	got := listDeadLetters(t, s)
	if len(got) != len(dls) {
		t.Fatalf("%d dead letters after repeats, want %d", len(got), len(dls))
	}
	for i := range got {
		want := 1
		if i == 1 {
			want = 3
		}
		if got[i].Count != want || got[i].ID != first[i].ID {
			t.Errorf("%s: Count %d ID %d, want Count %d ID %d", got[i].IdempotencyKey, got[i].Count, got[i].ID, want, first[i].ID)
		}
		if !bytes.Equal(got[i].Payload, dls[i].Payload) {
			t.Errorf("%s: payload changed to %q", got[i].IdempotencyKey, got[i].Payload)
		}
	}
}

func testAtomic(t *testing.T, s audit.EventStore) {
	recs := generated(5, 10)
	dls := deadLetters()
	// Records and dead letters of one batch land together.
	res := store(t, s, audit.Batch{Records: recs[:5], DeadLetters: dls[:1]})
	if len(res) != 5 {
		t.Fatalf("%d results", len(res))
	}
	// A malformed batch (a record without a key) is refused as a whole: neither
	// its valid records nor its dead letters are stored.
	bad := append([]audit.Record{}, recs[5:]...)
	noKey := recs[9]
	noKey.IdempotencyKey = ""
	bad[len(bad)-1] = noKey
	_, err := s.StoreBatch(ctxFor(t), audit.Batch{Records: bad, DeadLetters: dls[1:]})
	if err == nil || audit.ErrorCode(err) != audit.CodeInvalid {
		t.Fatalf("StoreBatch with an empty key: err = %v (code %q), want CodeInvalid", err, audit.ErrorCode(err))
	}
	if n := len(listAll(t, s)); n != 5 {
		t.Fatalf("%d events after the refused batch, want 5", n)
	}
	got := listDeadLetters(t, s)
	if len(got) != 1 || got[0].Count != 1 || got[0].IdempotencyKey != dls[0].IdempotencyKey {
		t.Fatalf("dead letters after the refused batch: %+v, want only %s with count 1", got, dls[0].IdempotencyKey)
	}
}

// testAtomicCancelled cancels batches at different moments. Whatever StoreBatch
// reports (a commit can succeed while its reply is lost), each batch must be
// stored entirely or not at all.
func testAtomicCancelled(t *testing.T, s audit.EventStore) {
	recs := generated(6, 8*300)
	type attempt struct {
		recs []audit.Record
		dl   audit.DeadLetter
	}
	var attempts []attempt
	for i := range 8 {
		dl := deadLetters()[0]
		dl.IdempotencyKey = fmt.Sprintf("cancel-%d", i)
		a := attempt{recs: recs[i*300 : (i+1)*300], dl: dl}
		attempts = append(attempts, a)
		ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i*i)*time.Millisecond)
		_, _ = s.StoreBatch(ctx, audit.Batch{Records: a.recs, DeadLetters: []audit.DeadLetter{dl}})
		cancel()
	}
	stored := map[string]bool{}
	for _, e := range listAll(t, s) {
		stored[e.IdempotencyKey] = true
	}
	dlStored := map[string]bool{}
	for _, d := range listDeadLetters(t, s) {
		dlStored[d.IdempotencyKey] = true
	}
	for i, a := range attempts {
		n := 0
		for _, r := range a.recs {
			if stored[r.IdempotencyKey] {
				n++
			}
		}
		if n != 0 && n != len(a.recs) || (n != 0) != dlStored[a.dl.IdempotencyKey] {
			t.Errorf("batch %d: %d of %d records and dead letter stored=%v: want all or nothing",
				i, n, len(a.recs), dlStored[a.dl.IdempotencyKey])
		}
	}
}

// testConcurrent stores the same records from 4 goroutines, each in its own
// order and batching, so that batches overlap while in flight.
func testConcurrent(t *testing.T, s audit.EventStore) {
	recs := generated(7, 400)
	var mu sync.Mutex
	newRows := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		order := rand.New(rand.NewPCG(uint64(w), 99)).Perm(len(recs))
		wg.Go(func() {
			for i := 0; i < len(order); i += 100 {
				batch := make([]audit.Record, 0, 100)
				for _, j := range order[i : i+100] {
					batch = append(batch, recs[j])
				}
				res, err := storeRetrying(t.Context(), s, batch)
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				mu.Lock()
				for k, r := range res {
					if !r.Duplicate {
						newRows[batch[k].IdempotencyKey]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, r := range recs {
		if newRows[r.IdempotencyKey] != 1 {
			t.Errorf("%s reported as new %d times, want once", r.IdempotencyKey, newRows[r.IdempotencyKey])
		}
	}
	all := listAll(t, s)
	if len(all) != len(recs) {
		t.Fatalf("%d rows stored, want %d", len(all), len(recs))
	}
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.IdempotencyKey] {
			t.Fatalf("%s stored twice", e.IdempotencyKey)
		}
		seen[e.IdempotencyKey] = true
	}
}

// storeRetrying retries transient failures, as the pipeline does.
func storeRetrying(ctx context.Context, s audit.EventStore, recs []audit.Record) ([]audit.StoreResult, error) {
	var err error
	for range 20 {
		var res []audit.StoreResult
		res, err = s.StoreBatch(ctx, audit.Batch{Records: recs})
		if err == nil {
			return res, nil
		}
		if !audit.IsTransient(err) {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, fmt.Errorf("still failing after retries: %w", err)
}

func testFarTimes(t *testing.T, s audit.EventStore) {
	recs := []audit.Record{
		record(minimalEvent(time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)), "far:1990"),
		record(minimalEvent(time.Now()), "far:now"),
		record(minimalEvent(time.Date(2099, 12, 31, 23, 59, 59, 999000000, time.UTC)), "far:2099"),
		record(minimalEvent(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)), "far:epoch"),
	}
	store(t, s, audit.Batch{Records: recs})
	for _, want := range recs {
		got, err := s.GetEvent(ctxFor(t), want.IdempotencyKey)
		if err != nil {
			t.Fatalf("GetEvent(%s): %v", want.IdempotencyKey, err)
		}
		checkRecord(t, want, got)
	}
	if again := store(t, s, audit.Batch{Records: recs}); !again[0].Duplicate || !again[2].Duplicate {
		t.Fatalf("far times are not deduplicated: %+v", again)
	}
}

func testNotFound(t *testing.T, s audit.EventStore) {
	store(t, s, audit.Batch{Records: generated(8, 3)})
	_, err := s.GetEvent(ctxFor(t), "no-such-key")
	if err == nil || audit.ErrorCode(err) != audit.CodeNotFound {
		t.Fatalf("GetEvent(unknown) err = %v (code %q), want CodeNotFound", err, audit.ErrorCode(err))
	}
}

func testCancelled(t *testing.T, s audit.EventStore) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	recs := generated(9, 10)
	if _, err := s.StoreBatch(ctx, audit.Batch{Records: recs}); err == nil {
		t.Error("StoreBatch with a cancelled context succeeded")
	}
	if _, err := s.GetEvent(ctx, recs[0].IdempotencyKey); err == nil {
		t.Error("GetEvent with a cancelled context succeeded")
	}
	if _, err := s.ListEvents(ctx, 0, 10); err == nil {
		t.Error("ListEvents with a cancelled context succeeded")
	}
	if _, err := s.ListDeadLetters(ctx, 0, 10); err == nil {
		t.Error("ListDeadLetters with a cancelled context succeeded")
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping with a cancelled context succeeded")
	}
	if n := len(listAll(t, s)); n != 0 {
		t.Fatalf("%d rows stored by a cancelled StoreBatch", n)
	}
	// The store is still usable afterwards.
	store(t, s, audit.Batch{Records: recs})
	if n := len(listAll(t, s)); n != 10 {
		t.Fatalf("%d rows, want 10", n)
	}
}

func testPing(t *testing.T, s audit.EventStore) {
	if err := s.Ping(ctxFor(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
