package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// The staged way is insertCopy's fallback: it must stay correct on its own.
func TestConformanceStagedStrategy(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	storetest.Run(t, func(t *testing.T) audit.EventStore { return openTest(t, insertStaged) })
}

// The direct COPY writes the very rows the staged INSERT writes: the same
// values, NULL for every empty optional string, ids in batch order. Both COPY
// ways use the binary encoder of copybin.go; the unnest way has pgx encode
// the same values as array parameters, so it checks that encoder too.
func TestDirectCopyWritesWhatStagedWrites(t *testing.T) {
	g := eventgen.New(3)
	g.HMACKey = []byte("k")
	recs := g.Records(200, "test")
	// Empty optional strings must become NULL, as NULLIF makes them staged.
	recs[0].PrincipalID, recs[0].CorrelationID, recs[0].Hash, recs[0].TTL = "", "", "", ""
	recs[1].OrganizationID, recs[1].OutcomeDescription, recs[1].DataClassification = "", "", ""
	recs[2].Details, recs[2].ProcessingLatency = nil, nil
	// Values an encoder could get wrong: text beyond ASCII, a quote and a
	// backslash, times below the µs and before 2000 and 1970, a latency of
	// zero and one that is not a round number, a long JSON string.
	recs[3].PrincipalID, recs[3].OutcomeDescription = "użytkownik-✓-\U0001F600", `say "hi" \ bye`
	recs[3].Time = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	recs[4].Time = time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.FixedZone("x", -5*3600))
	recs[5].Time, recs[5].ReceivedAt = time.Date(1969, 7, 20, 20, 17, 40, 500, time.UTC), time.Date(1960, 1, 1, 0, 0, 0, 1000, time.UTC)
	zero, odd := 0.0, 1.0/3
	recs[6].ProcessingLatency, recs[7].ProcessingLatency = &zero, &odd
	recs[8].Details = []byte(`{"note": "` + strings.Repeat("ż", 40000) + `", "n": [1, 2.50, {}]}`)

	dump := func(mode insertMode) []string {
		s := openTest(t, mode)
		res, err := s.StoreBatch(t.Context(), audit.Batch{Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(res); i++ {
			if res[i].Duplicate || res[i].Seq <= res[i-1].Seq {
				t.Fatalf("mode %d: result %d = %+v after %+v, want a fresh, larger Seq", mode, i, res[i], res[i-1])
			}
		}
		// Every column but the ones the database fills itself, as text (NULL
		// stays distinct from ''), plus the id's rank in the batch.
		rows, err := s.pool.Query(t.Context(), `SELECT row_number() OVER (ORDER BY id),
			to_jsonb(a) - 'id' - 'ingested_at' FROM audit_log a ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			var n int64
			var v string
			err := r.Scan(&n, &v)
			return fmt.Sprintf("%d %s", n, v), err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	direct, staged, unnest := dump(insertCopy), dump(insertStaged), dump(insertUnnest)
	if len(direct) != len(recs) || len(staged) != len(recs) || len(unnest) != len(recs) {
		t.Fatalf("%d rows direct, %d staged, %d by unnest, want %d", len(direct), len(staged), len(unnest), len(recs))
	}
	for i := range direct {
		if direct[i] != staged[i] || direct[i] != unnest[i] {
			t.Fatalf("row %d differs:\ndirect %s\nstaged %s\nunnest %s", i, direct[i], staged[i], unnest[i])
		}
	}
	// And what was sent is what is read back.
	s := openTest(t, insertCopy)
	if _, err := s.StoreBatch(t.Context(), audit.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2, 3, 4, 5, 6, 7, 8} {
		got, err := s.GetEvent(t.Context(), recs[i].IdempotencyKey)
		if err != nil {
			t.Fatal(err)
		}
		want := recs[i]
		want.Time = want.Time.Truncate(time.Microsecond)
		if !got.Time.Equal(want.Time) || got.PrincipalID != want.PrincipalID || got.OutcomeDescription != want.OutcomeDescription ||
			string(got.Details) != string(want.Details) || !got.ReceivedAt.Equal(want.ReceivedAt.Truncate(time.Microsecond)) ||
			(got.ProcessingLatency == nil) != (want.ProcessingLatency == nil) ||
			(got.ProcessingLatency != nil && *got.ProcessingLatency != *want.ProcessingLatency) {
			t.Errorf("record %d read back as\n%+v\nwant\n%+v", i, got.Event, want.Event)
		}
	}
}

// A batch holding a stored record goes the staged way, with the same results
// as without the direct path, and so do the batches right after it.
func TestDirectCopyMeetsAStoredRecord(t *testing.T) {
	s := openTest(t, insertCopy)
	ctx := t.Context()
	g := eventgen.New(4)
	first := g.Records(10, "test")
	if _, err := s.StoreBatch(ctx, audit.Batch{Records: first}); err != nil {
		t.Fatal(err)
	}
	if !s.directAllowed(time.Now()) {
		t.Fatal("a batch of new records paused the direct path")
	}
	mixed := append(g.Records(5, "test"), first[3]) // a redelivery
	mixed = append(mixed, g.Records(5, "test")...)
	res, err := s.StoreBatch(ctx, audit.Batch{Records: mixed})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if wantDup := i == 5; r.Duplicate != wantDup || (!wantDup && r.Seq <= 0) {
			t.Errorf("result %d = %+v, want duplicate %v", i, r, wantDup)
		}
	}
	if s.directAllowed(time.Now()) || !s.directAllowed(time.Now().Add(directPause)) {
		t.Error("a duplicate did not pause the direct path for directPause")
	}
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM audit_log").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Fatalf("%d rows, want 20", n)
	}
}

// Two stores racing to write the same batch directly: one stores it, the
// other reports every record as a duplicate, and nothing is stored twice.
func TestDirectCopyRace(t *testing.T) {
	url := testenv.PostgresDatabase(t)
	ctx := t.Context()
	open := func() *Store {
		s, err := open(ctx, Config{URL: url}, insertCopy)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(), open()
	recs := eventgen.New(5).Records(500, "test")
	results := make([][]audit.StoreResult, 2)
	errs := make([]error, 2)
	done := make(chan int)
	for i, s := range []*Store{a, b} {
		go func() {
			results[i], errs[i] = s.StoreBatch(context.WithoutCancel(ctx), audit.Batch{Records: recs})
			done <- i
		}()
	}
	<-done
	<-done
	stored := 0
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("store %d: %v", i, errs[i])
		}
		for _, r := range results[i] {
			if !r.Duplicate {
				stored++
			}
		}
	}
	var n int64
	if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM audit_log").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if stored != len(recs) || n != int64(len(recs)) {
		t.Fatalf("%d results say stored, %d rows, want %d of each", stored, n, len(recs))
	}
}
