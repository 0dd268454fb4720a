package interop

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/httpapi"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/queueworker"
	"github.com/smartlogs/audit-worker/sqlite"
	"github.com/smartlogs/audit-worker/telemetry"
)

// tracedProduced is the output of node/produce-traced.mjs.
type tracedProduced struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	TraceID   string `json:"traceId"`
	SpanID    string `json:"spanId"`
	SpanName  string `json:"spanName"`
}

// A Node service adds an audit event through a Queue with BullMQ's telemetry
// (bullmq-otel); our worker stores it, and the batch's trace, fetched by id
// from /observability/traces, links to exactly the Node producer's span.
func TestTraceLinksToNodeProducer(t *testing.T) {
	requireNode(t)
	if _, err := os.Stat(filepath.Join("node_modules", "bullmq-otel", "package.json")); err != nil {
		testenv.Unavailable(t, "the bullmq-otel npm package (interop/node_modules)", npmInstall, err)
	}
	h := newHarness(t)
	ctx := context.Background()

	var produced tracedProduced
	h.node(&produced, "produce-traced.mjs", "", "--data", string(eventgen.New(21).Valid()))
	if len(produced.TraceID) != 32 || len(produced.SpanID) != 16 || !strings.HasPrefix(produced.SpanName, "add ") {
		t.Fatalf("producer span = %+v", produced)
	}

	tracing, err := telemetry.NewTracing(ctx, telemetry.TracingConfig{Enabled: true, ServiceName: "audit-worker-interop", SampleRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tracing.Shutdown(context.Background()) })
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	proc := pipeline.NewProcessor(store, pipeline.Config{Rules: audit.DefaultRules()})
	proc.Instrument(pipeline.Instruments{Tracer: tracing.Tracer("pipeline")})
	handler := queueworker.NewHandler(queueworker.Config{Processor: proc, Queue: h.queue, DeadLetters: h.goQueue(h.queue + "-failed")})
	c := h.consumer(h.goQueue(h.queue), bullmq.ConsumerOptions{WorkerName: "go-traced"})
	w := bullmq.NewWorker(c, handler, bullmq.WorkerOptions{Tracer: tracing.Tracer("bullmq"), DrainDelay: 100 * time.Millisecond})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = w.Run(runCtx); close(done) }()
	jobKey := h.goQueue(h.queue).Keys().Job(produced.ID)
	var rv string
	testenv.Eventually(t, 15*time.Second, "job "+produced.ID+" to complete", func() bool {
		rv, _ = h.rdb.HGet(ctx, jobKey, "returnvalue").Result()
		return rv != ""
	})
	if !strings.Contains(rv, `"stored"`) {
		t.Fatalf("job %s returned %s, want the event stored", produced.ID, rv)
	}
	stop()
	<-done

	// The batch's spans are in the in-memory store, linked to the Node span.
	var batchTrace string
	for _, sum := range tracing.Store().Recent(10) {
		if sum.RootSpan == "bullmq.batch" {
			batchTrace = sum.TraceID
		}
	}
	if batchTrace == "" {
		t.Fatalf("no bullmq.batch trace among %+v", tracing.Store().Recent(10))
	}

	srv := httptest.NewServer(httpapi.New(httpapi.Options{Store: store, Auth: adminKey("interop-key-0123456789"),
		Tracing: httpapi.TracingOptions{Store: tracing.Store()}}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/observability/traces?traceId="+batchTrace, nil)
	req.Header.Set("Authorization", "Bearer interop-key-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET traces: %s %s", resp.Status, body)
	}
	var spans []telemetry.SpanView
	if err := json.Unmarshal(body, &spans); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	byName := map[string]telemetry.SpanView{}
	for _, s := range spans {
		byName[s.OperationName] = s
	}
	for _, name := range []string{"bullmq.batch", "process_batch"} {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("trace %s has no %s span: %s", batchTrace, name, body)
		}
		want := telemetry.SpanLink{TraceID: produced.TraceID, SpanID: produced.SpanID}
		if len(s.Links) != 1 || s.Links[0] != want {
			t.Fatalf("%s links = %+v, want exactly the Node producer span %+v", name, s.Links, want)
		}
	}
	for _, name := range []string{"validate", "verify", "store", "ack"} {
		if _, ok := byName[name]; !ok {
			t.Fatalf("trace %s has no %s span: %s", batchTrace, name, body)
		}
	}
	t.Logf("trace %s (bullmq.batch) links to the Node producer span %s/%s (%s)",
		batchTrace, produced.TraceID, produced.SpanID, produced.SpanName)
}

// adminKey accepts one key that may do everything.
func adminKey(key string) *access.Authenticator {
	a := access.NewAuthenticator(access.Options{})
	a.SetStaticKeys([]access.StaticKey{{Name: "interop", Key: key, Role: audit.RoleAdmin,
		Organizations: []string{audit.AllOrganizations}}})
	return a
}
