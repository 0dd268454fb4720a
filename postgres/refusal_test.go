package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/storetest"
)

// TestRefusalConformance runs the refused-record contract with every insert
// strategy: the direct COPY (the default), the staged COPY (its fallback) and
// unnest each meet the refusal first and must isolate it.
func TestRefusalConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode insertMode
	}{{"Direct", insertCopy}, {"Staged", insertStaged}, {"Unnest", insertUnnest}} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.RunRefusals(t, func(t *testing.T) audit.EventStore {
				s := openTest(t, tc.mode)
				if _, err := s.pool.Exec(t.Context(), storetest.PostgresRefusalSQL); err != nil {
					t.Fatalf("install the refusing trigger: %v", err)
				}
				return s
			})
		})
	}
}

// A batch whose direct COPY first meets a stored record goes staged, where it
// meets the refused one and isolates it: the redelivery is a duplicate, the
// refused record is dead-lettered, the rest is stored. A refusal, unlike a
// redelivery, does not send the next batches the staged way.
func TestDirectCopyMeetsAStoredAndARefusedRecord(t *testing.T) {
	s := openTest(t, insertCopy)
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, storetest.PostgresRefusalSQL); err != nil {
		t.Fatal(err)
	}
	g := eventgen.New(41)
	first := g.Records(5, "test")
	if _, err := s.StoreBatch(ctx, audit.Batch{Records: first}); err != nil {
		t.Fatal(err)
	}
	refused := g.Records(1, "test")[0]
	refused.PrincipalID = storetest.RefusedPrincipal
	batch := append([]audit.Record{first[2]}, g.Records(3, "test")...)
	batch = append(batch, refused)
	res, err := s.StoreBatch(ctx, audit.Batch{Records: batch})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate || res[1].Seq == 0 || res[3].Seq == 0 || !strings.Contains(res[4].Refused, storetest.RefusalMessage) {
		t.Fatalf("results %+v, want a duplicate, 3 stored and a refusal", res)
	}

	s2 := openTest(t, insertCopy)
	if _, err := s2.pool.Exec(ctx, storetest.PostgresRefusalSQL); err != nil {
		t.Fatal(err)
	}
	res, err = s2.StoreBatch(ctx, audit.Batch{Records: append(g.Records(3, "test"), refused)})
	if err != nil || !strings.Contains(res[3].Refused, storetest.RefusalMessage) {
		t.Fatalf("StoreBatch = %+v, %v; want the last record refused", res, err)
	}
	if !s2.directAllowed(time.Now()) {
		t.Error("a refused record paused the direct path")
	}
}

func TestRecordRefusal(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		refused bool
		reason  string
	}{
		{"check violation", &pgconn.PgError{Code: "23514", Message: "refused"}, true, "refused (SQLSTATE 23514)"},
		{"with detail", &pgconn.PgError{Code: "22001", Message: "value too long", Detail: "for type x"}, true,
			"value too long: for type x (SQLSTATE 22001)"},
		{"cardinality", fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "21000", Message: "twice"}), true, "twice (SQLSTATE 21000)"},
		{"deadlock", &pgconn.PgError{Code: "40P01", Message: "deadlock"}, false, ""},
		{"admin shutdown", &pgconn.PgError{Code: "57P01", Message: "terminating"}, false, ""},
		{"no code", &pgconn.PgError{}, false, ""},
		{"not from the server", errors.New("connection reset"), false, ""},
		{"nil", nil, false, ""},
	}
	for _, tc := range tests {
		reason, refused := recordRefusal(tc.err)
		if refused != tc.refused || reason != tc.reason {
			t.Errorf("%s: recordRefusal = %q, %v; want %q, %v", tc.name, reason, refused, tc.reason, tc.refused)
		}
	}
}
