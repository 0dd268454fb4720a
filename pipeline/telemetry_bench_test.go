//go:build unix

package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/telemetry"
)

// benchStore is an in-memory EventStore that only numbers the records, so
// that the benchmark measures the processor and its telemetry, not a database.
type benchStore struct {
	mu  sync.Mutex
	seq int64
}

func (s *benchStore) StoreBatch(_ context.Context, b audit.Batch) ([]audit.StoreResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]audit.StoreResult, len(b.Records))
	for i := range out {
		s.seq++
		out[i].Seq = s.seq
	}
	return out, nil
}

func (s *benchStore) GetEvent(context.Context, string) (audit.StoredEvent, error) {
	return audit.StoredEvent{}, errors.New("not used")
}
func (s *benchStore) ListEvents(context.Context, int64, int) ([]audit.StoredEvent, error) {
	return nil, errors.New("not used")
}
func (s *benchStore) ListDeadLetters(context.Context, int64, int) ([]audit.StoredDeadLetter, error) {
	return nil, errors.New("not used")
}
func (s *benchStore) Ping(context.Context) error { return nil }
func (s *benchStore) Close() error               { return nil }

// BenchmarkProcessTelemetry is the cost of telemetry (Prometheus metrics, the
// dashboard's window statistics and OpenTelemetry spans, sampled and never
// exported) on batches of 1000 signed events, 1% of them invalid: compare the
// "on" and "off" sub-benchmarks; the budget is 5%.
func BenchmarkProcessTelemetry(b *testing.B) {
	key := []byte("test-secret-key-for-testing-purposes-only")
	g := eventgen.New(3)
	g.HMACKey = key
	enqueued := time.Now()
	inputs := make([]pipeline.Input, 1000)
	for i := range inputs {
		payload := g.Valid()
		if i%100 == 99 {
			payload, _ = g.Invalid()
		}
		inputs[i] = pipeline.Input{
			Payload: payload, Source: "bullmq:audit-events", ReceivedAt: enqueued,
			IdempotencyKey: fmt.Sprintf("bullmq:audit-events:%d:%d", i, enqueued.UnixMilli()),
		}
	}
	cfg := pipeline.Config{Rules: audit.DefaultRules(), HMACKey: key}

	run := func(b *testing.B, p *pipeline.Processor) {
		ctx := context.Background()
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			if _, err := p.Process(ctx, inputs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(inputs))/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	}
	b.Run("off", func(b *testing.B) {
		run(b, pipeline.NewProcessor(&benchStore{}, cfg))
	})
	b.Run("on", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		defer tp.Shutdown(context.Background())
		metrics := telemetry.NewMetrics(telemetry.MetricsOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		p := pipeline.NewProcessor(&benchStore{}, cfg)
		p.Instrument(pipeline.Instruments{Observers: []pipeline.Observer{metrics}, Tracer: tp.Tracer("audit-worker")})
		run(b, p)
	})
}

// processCPU is the CPU time the process used so far. On a shared machine wall
// time varies with the neighbours' load; CPU time much less, so "cpu-ns/op"
// compares off and on more fairly than ns/op.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
