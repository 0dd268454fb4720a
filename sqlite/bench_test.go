package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/sqlite"
)

// BenchmarkStoreBatch stores 1,000-event batches of realistic records (about
// 300 bytes of details each) into a fresh database file, as the pipeline does.
// Each batch is generated with the timer stopped, so only the store is
// measured, and only one batch is alive at a time, so the garbage collector does
// not scan b.N batches while the store works.
func BenchmarkStoreBatch(b *testing.B) {
	const batchSize = 1000
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "audit.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()

	gen := eventgen.New(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		batch := audit.Batch{Records: gen.Records(batchSize, fmt.Sprintf("bench:%d", i))}
		b.StartTimer()
		res, err := store.StoreBatch(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(res) != batchSize || res[batchSize-1].Duplicate {
			b.Fatalf("unexpected results: %d, last %+v", len(res), res[len(res)-1])
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
}
