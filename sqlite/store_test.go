package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/migrations"
)

func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "audit.db")
	s, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

// rawDB opens a second, independent connection to the file, as another process would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func store(t *testing.T, s *Store, b audit.Batch) []audit.StoreResult {
	t.Helper()
	res, err := s.StoreBatch(context.Background(), b)
	if err != nil {
		t.Fatalf("StoreBatch: %v", err)
	}
	if len(res) != len(b.Records) {
		t.Fatalf("got %d results for %d records", len(res), len(b.Records))
	}
	return res
}

func TestOpenCreatesDirectoryAndConfiguresFile(t *testing.T) {
	s, path := openTest(t)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.writer, "journal_mode", "wal"},
		{s.writer, "foreign_keys", "1"},
		{s.writer, "synchronous", "2"}, // FULL
		{s.writer, "busy_timeout", fmt.Sprint(busyTimeoutMillis)},
		{s.writer, "page_size", fmt.Sprint(pageSize)},
		{s.writer, "user_version", fmt.Sprint(len(mustMigrations(t)))},
		{s.reader, "journal_mode", "wal"},
		{s.reader, "query_only", "1"},
		{s.reader, "foreign_keys", "1"},
	} {
		var got string
		if err := c.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %q, want %q", c.pragma, got, c.want)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if _, err := s.reader.ExecContext(ctx, "DELETE FROM audit_log"); err == nil {
		t.Error("a reader connection could write")
	}
}

func TestOpenTwiceKeepsDataAndSequence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	ctx := context.Background()
	gen := eventgen.New(7)
	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	first := store(t, s, audit.Batch{Records: gen.Records(3, "test")})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Delete the newest row behind the store's back: AUTOINCREMENT must still
	// never hand its id out again.
	db := rawDB(t, path)
	if _, err := db.Exec("DELETE FROM audit_log WHERE id = ?", first[2].Seq); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err = Open(ctx, Config{Path: path}) // migrations already applied: a no-op
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer s.Close()
	second := store(t, s, audit.Batch{Records: gen.Records(1, "test")})
	if second[0].Seq <= first[2].Seq {
		t.Errorf("new Seq %d reuses or precedes %d", second[0].Seq, first[2].Seq)
	}
	events, err := s.ListEvents(ctx, 0, 10)
	if err != nil || len(events) != 3 {
		t.Fatalf("ListEvents = %d events, %v; want 3", len(events), err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	db := rawDB(t, path)
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(context.Background(), Config{Path: path})
	if audit.ErrorCode(err) != audit.CodeConflict {
		t.Fatalf("Open = %v, want a %s error", err, audit.CodeConflict)
	}
}

func TestOpenEscapesPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir#1")
	path := filepath.Join(dir, "audit?x=1%20.db")
	s, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file was not created under its own name: %v", err)
	}
}

func TestOpenWithoutPath(t *testing.T) {
	if _, err := Open(context.Background(), Config{}); audit.ErrorCode(err) != audit.CodeInvalid {
		t.Fatalf("Open without a path = %v, want %s", err, audit.CodeInvalid)
	}
}

func TestMigrationsAreNumberedWithoutGaps(t *testing.T) {
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 {
		t.Fatalf("migrations = %+v", ms)
	}
}

func TestRoundTripReproducesRecords(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	gen := eventgen.New(42)
	gen.HMACKey = []byte("secret")
	records := gen.Records(50, "bullmq:audit-events")

	latency, zero := 12.5, 0.0
	records[1].ProcessingLatency = &latency
	records[2].ProcessingLatency = &zero // zero is a value, not "absent"
	records[3].Details = nil
	records[3].SessionContext = nil
	records[4].TTL, records[4].RetentionPolicy = "30d", "2555"
	records[5].Timestamp = "2024-02-29T23:59:59.123456+05:30" // offset text kept as sent
	records[5].Time, _ = time.Parse(time.RFC3339Nano, records[5].Timestamp)
	records[5].Time = records[5].Time.UTC()
	records[6].Details = []byte(`{"note":"ünïcødé \u2028 <b>&amp;</b>","n":1e400,"x":"a\u0000b"}`)
	records[6].SessionContext = nil
	for i := range records {
		records[i].RecordHash = records[i].ComputeRecordHash()
	}

	before := time.Now().Add(-time.Second)
	res := store(t, s, audit.Batch{Records: records})
	for i, r := range res {
		if r.Duplicate || r.Seq <= 0 || (i > 0 && r.Seq <= res[i-1].Seq) {
			t.Fatalf("result %d = %+v (previous %+v): want increasing Seqs", i, r, res[max(i-1, 0)])
		}
	}

	events, err := s.ListEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(records) {
		t.Fatalf("ListEvents returned %d events, want %d", len(events), len(records))
	}
	for i, e := range events {
		want := records[i]
		if e.Seq != res[i].Seq {
			t.Errorf("event %d: Seq %d, want %d", i, e.Seq, res[i].Seq)
		}
		if !reflect.DeepEqual(e.Record, want) {
			t.Errorf("event %d differs:\n got %+v\nwant %+v", i, e.Record, want)
		}
		if !e.Time.Equal(want.Time) || e.Time.Location() != time.UTC {
			t.Errorf("event %d: Time %v, want %v in UTC", i, e.Time, want.Time)
		}
		if got := e.ComputeRecordHash(); got != e.RecordHash {
			t.Errorf("event %d: recomputed record hash %s, stored %s", i, got, e.RecordHash)
		}
		if e.StoredAt.Before(before) || e.StoredAt.After(time.Now().Add(time.Second)) {
			t.Errorf("event %d: StoredAt %v is not now", i, e.StoredAt)
		}
	}
	if events[1].ProcessingLatency == nil || *events[1].ProcessingLatency != 12.5 ||
		events[2].ProcessingLatency == nil || *events[2].ProcessingLatency != 0 ||
		events[0].ProcessingLatency != nil {
		t.Errorf("processing latency not kept: %v %v %v", events[0].ProcessingLatency, events[1].ProcessingLatency, events[2].ProcessingLatency)
	}
	if events[3].Details != nil {
		t.Errorf("nil Details read back as %q", events[3].Details)
	}
	if string(events[6].Details) != string(records[6].Details) {
		t.Errorf("Details = %q, want %q", events[6].Details, records[6].Details)
	}
	if events[0].SessionContext == nil || events[0].SessionContext.IPAddress == "" {
		t.Errorf("SessionContext not decoded from Details: %+v", events[0].SessionContext)
	}

	got, err := s.GetEvent(ctx, records[5].IdempotencyKey)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != res[5].Seq || got.Timestamp != "2024-02-29T23:59:59.123456+05:30" || !got.Time.Equal(records[5].Time) {
		t.Errorf("GetEvent = seq %d %q %v", got.Seq, got.Timestamp, got.Time)
	}
}

func TestStoredBytesAreExactEvenIfNotUTF8(t *testing.T) {
	s, _ := openTest(t)
	r := eventgen.New(1).Records(1, "test")[0]
	r.Details = []byte("{\"a\":\"\xff\xfe\x00tail\"}") // not valid JSON or UTF-8: stored anyway, byte for byte
	r.SessionContext = nil
	r.OutcomeDescription = "line1\nline2\x00\xc3"
	r.RecordHash = r.ComputeRecordHash()
	store(t, s, audit.Batch{Records: []audit.Record{r}})
	got, err := s.GetEvent(context.Background(), r.IdempotencyKey)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Details) != string(r.Details) || got.OutcomeDescription != r.OutcomeDescription {
		t.Errorf("got %q / %q, want %q / %q", got.Details, got.OutcomeDescription, r.Details, r.OutcomeDescription)
	}
	if got.ComputeRecordHash() != r.RecordHash {
		t.Error("record hash of the read-back record differs")
	}
}

func TestDuplicates(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	records := eventgen.New(3).Records(5, "test")
	first := store(t, s, audit.Batch{Records: records[:3]})

	// Redelivery of two stored records together with two new ones.
	again := store(t, s, audit.Batch{Records: []audit.Record{records[3], records[0], records[4], records[2]}})
	wantDup := []bool{false, true, false, true}
	for i, r := range again {
		if r.Duplicate != wantDup[i] || (r.Duplicate && r.Seq != 0) || (!r.Duplicate && r.Seq <= first[2].Seq) {
			t.Errorf("result %d = %+v, want duplicate=%v", i, r, wantDup[i])
		}
	}

	// Same key, another event time: another record (the key of a record is the
	// pair), and GetEvent returns the newer one.
	later := records[0]
	later.Time = later.Time.Add(time.Second)
	later.Timestamp = later.Time.Format("2006-01-02T15:04:05.000Z")
	later.RecordHash = later.ComputeRecordHash()
	res := store(t, s, audit.Batch{Records: []audit.Record{later}})
	if res[0].Duplicate {
		t.Fatal("same key with another timestamp was reported as a duplicate")
	}
	got, err := s.GetEvent(ctx, later.IdempotencyKey)
	if err != nil || got.Seq != res[0].Seq || got.Timestamp != later.Timestamp {
		t.Errorf("GetEvent = %d %q, %v; want the newer record %d", got.Seq, got.Timestamp, err, res[0].Seq)
	}
	events, err := s.ListEvents(ctx, 0, 100)
	if err != nil || len(events) != 6 {
		t.Errorf("ListEvents: %d events, %v; want 6", len(events), err)
	}
}

func TestGetEventNotFound(t *testing.T) {
	s, _ := openTest(t)
	_, err := s.GetEvent(context.Background(), "nope")
	if audit.ErrorCode(err) != audit.CodeNotFound {
		t.Fatalf("GetEvent = %v, want %s", err, audit.CodeNotFound)
	}
}

func TestListEventsPages(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	res := store(t, s, audit.Batch{Records: eventgen.New(5).Records(25, "test")})
	var seen []int64
	after := int64(0)
	for {
		page, err := s.ListEvents(ctx, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			seen = append(seen, e.Seq)
		}
		after = page[len(page)-1].Seq
	}
	if len(seen) != len(res) {
		t.Fatalf("paged through %d events, want %d", len(seen), len(res))
	}
	for i := range seen {
		if seen[i] != res[i].Seq {
			t.Fatalf("event %d has Seq %d, want %d", i, seen[i], res[i].Seq)
		}
	}
	if page, err := s.ListEvents(ctx, 0, 0); err != nil || len(page) != 0 {
		t.Errorf("limit 0 = %d events, %v", len(page), err)
	}
	if _, err := s.ListEvents(ctx, 0, -1); audit.ErrorCode(err) != audit.CodeInvalid {
		t.Errorf("negative limit = %v, want %s", err, audit.CodeInvalid)
	}
}

func TestDeadLetters(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	dl := audit.DeadLetter{
		IdempotencyKey: "bullmq:audit-events:17:1700000000000",
		Source:         "bullmq:audit-events",
		Reason:         audit.ReasonValidation,
		Message:        "invalid event: status: must be one of <attempt, success, failure>",
		Errors: []audit.FieldError{
			{Field: "status", Code: audit.ErrInvalidValue, Message: "must be one of <attempt, success, failure> & more"},
			{Field: "timestamp", Code: audit.ErrInvalidFormat, Message: "bad"},
		},
		Payload:    []byte("{\"status\":\"maybe\"\x00\xff\xfe not even json"),
		ReceivedAt: time.Date(2024, 1, 2, 3, 4, 5, 678901000, time.UTC),
	}
	noErrs := audit.DeadLetter{
		IdempotencyKey: "http:abc", Source: "http", Reason: audit.ReasonIntegrityViolation,
		Message: "hash mismatch", Payload: []byte{}, ReceivedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
	record := eventgen.New(9).Records(1, "test")
	res := store(t, s, audit.Batch{Records: record, DeadLetters: []audit.DeadLetter{dl, noErrs}})
	if res[0].Duplicate || res[0].Seq == 0 {
		t.Fatalf("record in a mixed batch: %+v", res[0])
	}
	// The same refused event again, with a changed message: counted, not replaced.
	changed := dl
	changed.Message = "second attempt"
	changed.ReceivedAt = changed.ReceivedAt.Add(time.Hour)
	store(t, s, audit.Batch{DeadLetters: []audit.DeadLetter{changed}})

	got, err := s.ListDeadLetters(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("ListDeadLetters = %d, want 2", len(got))
	}
	if !reflect.DeepEqual(got[0].DeadLetter, dl) {
		t.Errorf("dead letter differs:\n got %+v\nwant %+v", got[0].DeadLetter, dl)
	}
	if got[0].Count != 2 || got[1].Count != 1 {
		t.Errorf("counts = %d, %d; want 2, 1", got[0].Count, got[1].Count)
	}
	if got[1].Errors != nil || got[1].Payload == nil || len(got[1].Payload) != 0 {
		t.Errorf("second dead letter: errors %v, payload %#v", got[1].Errors, got[1].Payload)
	}
	if got[0].ID >= got[1].ID || got[0].StoredAt.IsZero() {
		t.Errorf("ids %d, %d; stored at %v", got[0].ID, got[1].ID, got[0].StoredAt)
	}
	page, err := s.ListDeadLetters(ctx, got[0].ID, 10)
	if err != nil || len(page) != 1 || page[0].ID != got[1].ID {
		t.Errorf("ListDeadLetters after %d = %+v, %v", got[0].ID, page, err)
	}
}

func TestBatchWithoutKeyIsInvalid(t *testing.T) {
	s, _ := openTest(t)
	r := eventgen.New(1).Records(1, "test")
	r[0].IdempotencyKey = ""
	_, err := s.StoreBatch(context.Background(), audit.Batch{Records: r})
	if audit.ErrorCode(err) != audit.CodeInvalid {
		t.Fatalf("StoreBatch = %v, want %s", err, audit.CodeInvalid)
	}
}

func TestEmptyBatch(t *testing.T) {
	s, _ := openTest(t)
	res, err := s.StoreBatch(context.Background(), audit.Batch{})
	if err != nil || len(res) != 0 {
		t.Fatalf("StoreBatch(empty) = %v, %v", res, err)
	}
}

// A failing dead letter (after the records are written) rolls back the whole
// batch, and a failure that retrying cannot fix is CodeInvalid. (A refused
// record is not such a failure: it is dead-lettered alone, see the refusal
// conformance suite.)
func TestBatchIsAtomic(t *testing.T) {
	s, path := openTest(t)
	ctx := context.Background()
	db := rawDB(t, path)
	if _, err := db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON audit_dead_letter
		WHEN NEW.idempotency_key = 'boom' BEGIN SELECT RAISE(ABORT, 'refused by test'); END`); err != nil {
		t.Fatal(err)
	}
	records := eventgen.New(2).Records(4, "test")
	dl := audit.DeadLetter{IdempotencyKey: "boom", Source: "test", Reason: audit.ReasonValidation, Message: "m"}
	_, err := s.StoreBatch(ctx, audit.Batch{Records: records, DeadLetters: []audit.DeadLetter{dl}})
	if err == nil {
		t.Fatal("StoreBatch succeeded")
	}
	if audit.ErrorCode(err) != audit.CodeInvalid {
		t.Errorf("error %v: code %q, want %s", err, audit.ErrorCode(err), audit.CodeInvalid)
	}
	events, _ := s.ListEvents(ctx, 0, 10)
	dls, _ := s.ListDeadLetters(ctx, 0, 10)
	if len(events) != 0 || len(dls) != 0 {
		t.Fatalf("a failed batch left %d events and %d dead letters", len(events), len(dls))
	}
	// The store is still usable afterwards.
	store(t, s, audit.Batch{Records: records[:2]})
}

func TestCancelledContextIsTransient(t *testing.T) {
	s, _ := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.StoreBatch(ctx, audit.Batch{Records: eventgen.New(1).Records(2, "test")})
	if !audit.IsTransient(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("StoreBatch = %v, want a transient error wrapping context.Canceled", err)
	}
	events, _ := s.ListEvents(context.Background(), 0, 10)
	if len(events) != 0 {
		t.Fatalf("%d events stored with a cancelled context", len(events))
	}
}

// While another process holds the write lock, a batch waits; when its context
// ends first, the error is transient and nothing is written.
func TestLockedDatabaseIsTransient(t *testing.T) {
	s, path := openTest(t)
	db := rawDB(t, path)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = s.StoreBatch(ctx, audit.Batch{Records: eventgen.New(1).Records(1, "test")})
	if !audit.IsTransient(err) {
		t.Fatalf("StoreBatch against a locked database = %v, want a transient error", err)
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	store(t, s, audit.Batch{Records: eventgen.New(1).Records(1, "test")})
}

func TestClassify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	holder := rawDB(t, path)
	if _, err := holder.Exec("CREATE TABLE t (v TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	conn, err := holder.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")

	other, err := sql.Open("sqlite", dsn(path, map[string][]string{"_pragma": {"busy_timeout(0)"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, busy := other.Exec("INSERT INTO t VALUES ('x')")
	_, constraint := conn.ExecContext(context.Background(), "INSERT INTO t VALUES (NULL)")
	for _, c := range []struct {
		name string
		err  error
		want audit.Code
	}{
		{"busy", busy, audit.CodeUnavailable},
		{"constraint", constraint, audit.CodeInvalid},
		{"deadline", context.DeadlineExceeded, audit.CodeUnavailable},
		{"closed", sql.ErrConnDone, audit.CodeUnavailable},
	} {
		if c.err == nil {
			t.Fatalf("%s: no error to classify", c.name)
		}
		err := classify("op", c.err)
		if audit.ErrorCode(err) != c.want || !errors.Is(err, c.err) {
			t.Errorf("%s: classify(%v) = %v, want code %s wrapping the cause", c.name, c.err, err, c.want)
		}
	}
}

func TestConcurrentWritersAndReaders(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	const writers, batches, size = 4, 5, 20
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := eventgen.New(uint64(100 + w))
			for b := range batches {
				if _, err := s.StoreBatch(ctx, audit.Batch{Records: gen.Records(size, fmt.Sprintf("w%d:%d", w, b))}); err != nil {
					errs <- err
					return
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range batches * 2 {
				if _, err := s.ListEvents(ctx, 0, 50); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	events, err := s.ListEvents(ctx, 0, 1000)
	if err != nil || len(events) != writers*batches*size {
		t.Fatalf("ListEvents = %d events, %v; want %d", len(events), err, writers*batches*size)
	}
}

func TestCloseThenUseIsTransient(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.StoreBatch(context.Background(), audit.Batch{Records: eventgen.New(1).Records(1, "test")})
	if !audit.IsTransient(err) {
		t.Fatalf("StoreBatch on a closed store = %v, want a transient error", err)
	}
	if err := s.Ping(context.Background()); !audit.IsTransient(err) {
		t.Fatalf("Ping on a closed store = %v, want a transient error", err)
	}
}

func mustMigrations(t *testing.T) []migrations.Migration {
	t.Helper()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}
