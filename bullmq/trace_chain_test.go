package bullmq_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/queueworker"
	"github.com/smartlogs/audit-worker/sqlite"
)

// A traced job goes through the whole chain: the worker's batch span is the
// parent of the processor's, whose stages are its children; both the batch
// span and process_batch link to the producer's span.
func TestTraceChainFromJobToStore(t *testing.T) {
	ctx := context.Background()
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	prefix := testenv.RedisKeyPrefix(t)
	t.Cleanup(func() {
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	proc := pipeline.NewProcessor(st, pipeline.Config{Rules: audit.DefaultRules()})
	proc.Instrument(pipeline.Instruments{Tracer: tp.Tracer("pipeline")})
	mainQ := bullmq.NewQueue(rdb, "audit-events", bullmq.QueueOptions{Prefix: prefix})
	dlq := bullmq.NewQueue(rdb, "audit-events-failed", bullmq.QueueOptions{Prefix: prefix})
	h := queueworker.NewHandler(queueworker.Config{Processor: proc, Queue: "audit-events", DeadLetters: dlq})

	id, err := mainQ.Add(ctx, "audit-events", eventgen.New(5).Valid(), bullmq.JobOptions{Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	// As a Node producer with bullmq-otel leaves it.
	const producerTrace, producerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tm := `"{\"traceparent\":\"00-` + producerTrace + `-` + producerSpan + `-01\"}"`
	if err := rdb.HSet(ctx, mainQ.Keys().Job(id), "opts", `{"attempts":1,"tm":`+tm+`}`).Err(); err != nil {
		t.Fatal(err)
	}

	c, err := bullmq.NewConsumer(mainQ, bullmq.ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bullmq.NewWorker(c, h, bullmq.WorkerOptions{Tracer: tp.Tracer("bullmq"), DrainDelay: 50 * time.Millisecond})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = w.Run(runCtx); close(done) }()
	testenv.Eventually(t, 10*time.Second, "a bullmq.batch span", func() bool { return hasSpan(rec.Ended(), "bullmq.batch") })
	cancel()
	<-done

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = s
	}
	parentOf := map[string]string{
		"process_batch": "bullmq.batch",
		"validate":      "process_batch", "verify": "process_batch", "store": "process_batch",
		"ack": "bullmq.batch",
	}
	for child, parent := range parentOf {
		cs, ps := spans[child], spans[parent]
		if cs == nil || ps == nil {
			t.Fatalf("missing span %q or %q among %v", child, parent, keys(spans))
		}
		if cs.Parent().SpanID() != ps.SpanContext().SpanID() || cs.SpanContext().TraceID() != ps.SpanContext().TraceID() {
			t.Fatalf("%s is not a child of %s", child, parent)
		}
	}
	for _, name := range []string{"bullmq.batch", "process_batch"} {
		links := spans[name].Links()
		if len(links) != 1 || links[0].SpanContext.TraceID().String() != producerTrace || links[0].SpanContext.SpanID().String() != producerSpan {
			t.Fatalf("%s links = %+v, want the producer %s/%s", name, links, producerTrace, producerSpan)
		}
	}
	if n, err := rdb.ZCard(ctx, mainQ.Keys().Key("completed")).Result(); err != nil || n != 1 {
		t.Fatalf("completed jobs = %d (%v), want 1", n, err)
	}
}

func hasSpan(spans []sdktrace.ReadOnlySpan, name string) bool {
	for _, s := range spans {
		if s.Name() == name {
			return true
		}
	}
	return false
}

func keys(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
