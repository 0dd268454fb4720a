package export_test

import (
	"context"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/export"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/teststores"
)

// TestExportRatePostgres measures exports from PostgreSQL: it fills a fresh
// database with AUDIT_EXPORT_PG_ROWS events (not run without it: a long run
// is no CI test), then streams them all, NDJSON and CSV in turn, three times
// each, and logs the rows per second.
func TestExportRatePostgres(t *testing.T) {
	v := os.Getenv("AUDIT_EXPORT_PG_ROWS")
	if v == "" {
		t.Skip("set AUDIT_EXPORT_PG_ROWS to a number of rows to measure exports from PostgreSQL")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("AUDIT_EXPORT_PG_ROWS: a positive number of rows (is %q)", v)
	}
	s, _ := teststores.Postgres(t)
	ctx := context.Background()
	g := eventgen.New(10)
	for done := 0; done < n; done += 1000 {
		if _, err := s.StoreBatch(ctx, audit.Batch{Records: g.Records(min(1000, n-done), "export-pg")}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		for _, f := range []export.Format{export.NDJSON, export.CSV} {
			start := time.Now()
			res, err := export.Stream(ctx, s, audit.EventQuery{Order: audit.OrderAsc}, f, false, io.Discard, nil)
			if err != nil || res.Rows != int64(n) {
				t.Fatalf("%s: %d rows, %v", f, res.Rows, err)
			}
			t.Logf("%s: %d rows in %.2f s, %.0f rows/s", f, res.Rows, time.Since(start).Seconds(),
				float64(res.Rows)/time.Since(start).Seconds())
		}
	}
}
