package storetest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, for RefuseInSQLite

	audit "github.com/smartlogs/audit-worker"
)

// A store that refuses records: the refusal suite, and the pipeline, HTTP and
// queue tests of refused records, need a real database to refuse one record of
// a batch, as a constraint or a data error would. A trigger does it for every
// record whose principal is RefusedPrincipal, with RefusalMessage as the
// database's reason.
const (
	RefusedPrincipal = "storetest-refused-principal"
	RefusalMessage   = "storetest: the database refuses this record"
)

// PostgresRefusalSQL installs the refusing trigger in a PostgreSQL database
// migrated by the postgres package. A row trigger on the partitioned audit_log
// reaches every partition, those created later included, and fires for COPY
// as for INSERT. check_violation is SQLSTATE 23514.
const PostgresRefusalSQL = `
CREATE FUNCTION storetest_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.principal_id = '` + RefusedPrincipal + `' THEN
		RAISE EXCEPTION '` + RefusalMessage + `' USING ERRCODE = 'check_violation';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER storetest_refuse BEFORE INSERT ON audit_log
	FOR EACH ROW EXECUTE FUNCTION storetest_refuse();`

// SQLiteRefusalSQL installs the refusing trigger in a SQLite database opened by
// the sqlite package. RAISE(ABORT) fails the statement with SQLITE_CONSTRAINT.
const SQLiteRefusalSQL = `
CREATE TRIGGER storetest_refuse BEFORE INSERT ON audit_log
WHEN NEW.principal_id = '` + RefusedPrincipal + `'
BEGIN
	SELECT RAISE(ABORT, '` + RefusalMessage + `');
END;`

// RefuseInPostgres installs PostgresRefusalSQL in the migrated database at url.
func RefuseInPostgres(t testing.TB, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to install the refusing trigger: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, PostgresRefusalSQL); err != nil {
		t.Fatalf("install the refusing trigger: %v", err)
	}
}

// RefuseInSQLite installs SQLiteRefusalSQL in the migrated database file at
// path, through a connection of its own: the store's statements see the new
// schema at their next run.
func RefuseInSQLite(t testing.TB, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("open %s to install the refusing trigger: %v", path, err)
	}
	defer db.Close()
	if _, err := db.Exec(SQLiteRefusalSQL); err != nil {
		t.Fatalf("install the refusing trigger: %v", err)
	}
}

// RunRefusals runs the contract for records the database refuses. open must
// return a fresh, empty store in which PostgresRefusalSQL or SQLiteRefusalSQL
// is installed, and arrange for it to be closed.
func RunRefusals(t *testing.T, open func(t *testing.T) audit.EventStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s audit.EventStore)
	}{
		{"OneRefusedAmongAThousand", testOneRefused},
		{"RefusedBesideDuplicatesAndDeadLetters", testRefusedMixed},
		{"EveryRecordRefused", testAllRefused},
		{"RefusedAgainRaisesCount", testRefusedAgain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// refusedRecord turns r into a record the refusing store refuses, with a
// payload to find in its dead letter.
func refusedRecord(r audit.Record) audit.Record {
	r.PrincipalID = RefusedPrincipal
	r.RecordHash = r.ComputeRecordHash()
	r.Payload = []byte(fmt.Sprintf(`{"principalId":%q,"key":%q}`, RefusedPrincipal, r.IdempotencyKey))
	return r
}

// checkRefusals checks the results of a batch in which the records at the
// positions refused are refused and all others are stored or, in dup,
// duplicates; and that each refused record has its dead letter.
func checkRefusals(t *testing.T, s audit.EventStore, recs []audit.Record, res []audit.StoreResult, refused, dup map[int]bool) {
	t.Helper()
	if len(res) != len(recs) {
		t.Fatalf("%d results for %d records", len(res), len(recs))
	}
	last := int64(0)
	for i, r := range res {
		switch {
		case refused[i]:
			if !strings.Contains(r.Refused, RefusalMessage) || r.Seq != 0 || r.Duplicate {
				t.Errorf("result %d = %+v, want refused with the database's reason %q", i, r, RefusalMessage)
			}
		case dup[i]:
			if r != (audit.StoreResult{Duplicate: true}) {
				t.Errorf("result %d = %+v, want a duplicate", i, r)
			}
		default:
			if r.Refused != "" || r.Duplicate || r.Seq <= last {
				t.Errorf("result %d = %+v after Seq %d, want stored with a larger Seq", i, r, last)
			}
			last = max(last, r.Seq)
		}
	}
	stored := map[string]int64{}
	for _, e := range listAll(t, s) {
		stored[e.IdempotencyKey] = e.Seq
	}
	dead := map[string]audit.StoredDeadLetter{}
	for _, d := range listDeadLetters(t, s) {
		dead[d.IdempotencyKey] = d
	}
	for i, r := range recs {
		seq, isStored := stored[r.IdempotencyKey]
		switch {
		case refused[i]:
			if isStored {
				t.Errorf("refused record %d (%s) is stored", i, r.IdempotencyKey)
			}
			d, ok := dead[r.IdempotencyKey]
			if !ok {
				t.Errorf("refused record %d (%s) has no dead letter", i, r.IdempotencyKey)
				continue
			}
			if d.Reason != audit.ReasonStoreRefused || !strings.Contains(d.Message, RefusalMessage) ||
				d.Source != r.Source || !bytes.Equal(d.Payload, r.Payload) || !d.ReceivedAt.Equal(r.ReceivedAt) {
				t.Errorf("dead letter of refused record %d = reason %q message %q source %q payload %q received %v, "+
					"want %q, the database's reason, %q, %q, %v", i, d.Reason, d.Message, d.Source, d.Payload, d.ReceivedAt,
					audit.ReasonStoreRefused, r.Source, r.Payload, r.ReceivedAt)
			}
			if d.Message != res[i].Refused {
				t.Errorf("dead letter message %q, result says %q", d.Message, res[i].Refused)
			}
		case !dup[i]:
			if seq != res[i].Seq {
				t.Errorf("record %d (%s): stored Seq %d, result Seq %d", i, r.IdempotencyKey, seq, res[i].Seq)
			}
		}
	}
}

// One refused record among a thousand: the 999 others are stored, in batch
// order, and the refused one is dead-lettered with the database's reason.
func testOneRefused(t *testing.T, s audit.EventStore) {
	recs := generated(20, 1000)
	recs[537] = refusedRecord(recs[537])
	res := store(t, s, audit.Batch{Records: recs})
	checkRefusals(t, s, recs, res, map[int]bool{537: true}, nil)
	if n := len(listAll(t, s)); n != 999 {
		t.Fatalf("%d rows stored, want 999", n)
	}
	if n := len(listDeadLetters(t, s)); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
}

// Refused records at both ends and side by side, among redeliveries and the
// batch's own dead letters: each kind gets its own outcome in one batch.
func testRefusedMixed(t *testing.T, s audit.EventStore) {
	recs := generated(21, 60)
	store(t, s, audit.Batch{Records: []audit.Record{recs[10], recs[11], recs[40]}})
	refused := map[int]bool{0: true, 25: true, 26: true, 59: true}
	for i := range refused {
		recs[i] = refusedRecord(recs[i])
	}
	dls := deadLetters()
	res := store(t, s, audit.Batch{Records: recs, DeadLetters: dls})
	checkRefusals(t, s, recs, res, refused, map[int]bool{10: true, 11: true, 40: true})
	got := listDeadLetters(t, s)
	if len(got) != len(dls)+len(refused) {
		t.Fatalf("%d dead letters, want the batch's %d and %d refused", len(got), len(dls), len(refused))
	}
	byKey := map[string]audit.StoredDeadLetter{}
	for _, d := range got {
		byKey[d.IdempotencyKey] = d
	}
	for _, want := range dls {
		checkDeadLetter(t, want, byKey[want.IdempotencyKey])
	}
	if n := len(listAll(t, s)); n != len(recs)-len(refused) {
		t.Fatalf("%d rows stored, want %d", n, len(recs)-len(refused))
	}
}

func testAllRefused(t *testing.T, s audit.EventStore) {
	recs := generated(22, 40)
	refused := map[int]bool{}
	for i := range recs {
		recs[i] = refusedRecord(recs[i])
		refused[i] = true
	}
	res := store(t, s, audit.Batch{Records: recs})
	checkRefusals(t, s, recs, res, refused, nil)
	if n := len(listAll(t, s)); n != 0 {
		t.Fatalf("%d rows stored, want none", n)
	}
}

// A refused record sent again is refused again; its dead letter counts it.
func testRefusedAgain(t *testing.T, s audit.EventStore) {
	recs := generated(23, 5)
	recs[2] = refusedRecord(recs[2])
	store(t, s, audit.Batch{Records: recs})
	again := recs[2]
	again.ReceivedAt = again.ReceivedAt.Add(time.Minute)
	res := store(t, s, audit.Batch{Records: []audit.Record{recs[0], again}})
	if !res[0].Duplicate || !strings.Contains(res[1].Refused, RefusalMessage) {
		t.Fatalf("results %+v, want a duplicate and a refusal", res)
	}
	got := listDeadLetters(t, s)
	if len(got) != 1 || got[0].Count != 2 || !got[0].ReceivedAt.Equal(recs[2].ReceivedAt) {
		t.Fatalf("dead letters %+v, want one with count 2 that keeps the first refusal", got)
	}
}
