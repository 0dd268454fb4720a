package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/sqlite"
	"github.com/smartlogs/audit-worker/telemetry"
)

// gatedIngester holds each submission until the test lets it through, so
// that requests stay in flight as long as a test needs.
type gatedIngester struct {
	next    Ingester
	entered chan struct{}
	proceed chan struct{}
}

func (g *gatedIngester) Submit(ctx context.Context, inputs []pipeline.Input) ([]pipeline.Outcome, error) {
	g.entered <- struct{}{}
	select {
	case <-g.proceed:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.next.Submit(ctx, inputs)
}

type budgetFixture struct {
	srv     *httptest.Server
	api     *Server
	gate    *gatedIngester
	metrics *telemetry.Metrics
	store   *sqlite.Store
}

func newBudgetFixture(t *testing.T, maxBody, budget int64, wait time.Duration) *budgetFixture {
	t.Helper()
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	batcher := pipeline.NewBatcher(pipeline.NewProcessor(store, pipeline.Config{Rules: audit.DefaultRules()}), pipeline.BatcherConfig{})
	gate := &gatedIngester{next: batcher, entered: make(chan struct{}, 16), proceed: make(chan struct{})}
	metrics := telemetry.NewMetrics(telemetry.MetricsOptions{})
	api := New(Options{Ingester: gate, Store: store, Auth: adminAuth(testKey), MaxBodyBytes: maxBody,
		MaxInFlightBytes: budget, InFlightWait: wait, IngestObserver: metrics})
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.Close()
		api.Close()
		batcher.Close(context.Background())
		store.Close()
	})
	return &budgetFixture{srv: srv, api: api, gate: gate, metrics: metrics, store: store}
}

// arrayOf returns a JSON array of valid events of about size bytes.
func arrayOf(size int) []byte {
	g := eventgen.New(uint64(size))
	var b bytes.Buffer
	b.WriteByte('[')
	for b.Len() < size-2000 {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.Write(g.Valid())
	}
	b.WriteByte(']')
	return b.Bytes()
}

// send posts body; chunked hides its length, so the server must reserve its limit.
func (f *budgetFixture) send(t *testing.T, body []byte, chunked bool) (*http.Response, string) {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // not a type whose length net/http knows
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/events", r)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return nil, ""
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

func (f *budgetFixture) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	return metricValue(t, f.metrics.Registry(), name, labels...)
}

// metricValue reads one gauge or counter from a registry; labels are name, value pairs.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	metrics:
		for _, m := range fam.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue metrics
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// Requests reserve their bytes before reading; once the budget is full a
// request waits, gets in when room frees up in time, and otherwise gets a 503
// with Retry-After. Nothing is lost: every admitted request is stored.
func TestIngestInFlightBudget(t *testing.T) {
	const maxBody, budget = 64 << 10, 128 << 10
	f := newBudgetFixture(t, maxBody, budget, 300*time.Millisecond)
	body := arrayOf(60 << 10)
	if f.metric(t, "audit_http_ingest_budget_bytes") != budget {
		t.Fatalf("budget gauge %g, want %d", f.metric(t, "audit_http_ingest_budget_bytes"), budget)
	}

	var wg sync.WaitGroup
	var ok atomic.Int64
	sendAsync := func() {
		wg.Go(func() {
			if resp, text := f.send(t, body, false); resp != nil && resp.StatusCode == http.StatusOK {
				ok.Add(1)
			} else if resp != nil {
				t.Errorf("held request: %s %s", resp.Status, text)
			}
		})
	}
	sendAsync()
	sendAsync()
	<-f.gate.entered
	<-f.gate.entered
	if got := f.metric(t, "audit_http_ingest_in_flight_bytes"); got != float64(2*len(body)) {
		t.Errorf("in flight %g bytes, want %d", got, 2*len(body))
	}

	// Full: a third waits its 300 ms, then is turned away, its body unread.
	for _, chunked := range []bool{false, true} {
		start := time.Now()
		resp, text := f.send(t, body, chunked)
		if resp == nil {
			t.FailNow()
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
			!strings.Contains(text, `"code":"unavailable"`) {
			t.Errorf("chunked %v over the budget: %s Retry-After %q %s", chunked, resp.Status, resp.Header.Get("Retry-After"), text)
		}
		if waited := time.Since(start); waited < 250*time.Millisecond || waited > 5*time.Second {
			t.Errorf("chunked %v: answered after %v, want after the 300 ms wait", chunked, waited)
		}
	}
	if got := f.metric(t, "audit_http_ingest_refused_total", "reason", "busy"); got != 2 {
		t.Errorf("busy refusals %g, want 2", got)
	}

	// A waiting request gets in when one in flight finishes within its wait.
	sendAsync()
	time.Sleep(50 * time.Millisecond)
	f.gate.proceed <- struct{}{}
	<-f.gate.entered
	f.gate.proceed <- struct{}{}
	f.gate.proceed <- struct{}{}
	wg.Wait()
	if ok.Load() != 3 {
		t.Errorf("%d held requests stored, want 3", ok.Load())
	}
	if got := f.metric(t, "audit_http_ingest_in_flight_bytes"); got != 0 {
		t.Errorf("in flight %g bytes after every answer, want 0", got)
	}
	events, err := f.store.ListEvents(context.Background(), 0, 100000)
	if err != nil || len(events) == 0 {
		t.Fatalf("stored events: %d, %v", len(events), err)
	}
}

// A body over the limit is refused from its Content-Length before it is
// read or reserved; without a length, while it is read.
func TestIngestBodyOverLimit(t *testing.T) {
	f := newBudgetFixture(t, 16<<10, 1<<20, time.Second)
	body := arrayOf(40 << 10)
	for _, chunked := range []bool{false, true} {
		resp, text := f.send(t, body, chunked)
		if resp == nil {
			t.FailNow()
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(text, "16384 bytes") {
			t.Errorf("chunked %v: %s %s, want 413 naming the limit", chunked, resp.Status, text)
		}
	}
	if got := f.metric(t, "audit_http_ingest_refused_total", "reason", "too_large"); got != 2 {
		t.Errorf("too_large refusals %g, want 2", got)
	}
	if got := f.metric(t, "audit_http_ingest_in_flight_bytes"); got != 0 {
		t.Errorf("in flight %g bytes, want 0", got)
	}
}

func TestInFlightAdmission(t *testing.T) {
	metrics := telemetry.NewMetrics(telemetry.MetricsOptions{})
	l := newInFlight(1<<20, 256<<10, 50*time.Millisecond, metrics)
	defer l.close()
	ctx := context.Background()

	if err := l.acquire(ctx, 2<<20); !errors.Is(err, errOverBudget) {
		t.Errorf("a request over the whole budget: %v, want errOverBudget", err)
	}
	if err := l.acquire(ctx, 1<<20); err != nil {
		t.Fatalf("a request of the whole budget: %v", err)
	}
	if err := l.acquire(ctx, 1); !errors.Is(err, errBusy) {
		t.Errorf("one byte more: %v, want errBusy", err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.acquire(gone, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("a client that went away: %v, want its context's error", err)
	}
	l.free(1 << 20)
	if err := l.acquire(ctx, 1); err != nil {
		t.Errorf("after the budget was freed: %v", err)
	}
	l.free(1)
	for reason, want := range map[string]float64{"too_large": 1, "busy": 1} {
		if got := metricValue(t, metrics.Registry(), "audit_http_ingest_refused_total", "reason", reason); got != want {
			t.Errorf("refused %s: %g, want %g", reason, got, want)
		}
	}

	// The budget is never below the body limit: a request of the limit must fit.
	if small := newInFlight(1<<20, 4<<20, time.Second, nil); small.budget != 4<<20 {
		t.Errorf("budget %d below a body limit of %d", small.budget, 4<<20)
	}
}

// Memory goes back to the OS once nothing is held after a burst above the
// threshold, at most once per interval, in the background.
func TestMemoryReleaseAfterBurst(t *testing.T) {
	var frees atomic.Int64
	l := newInFlight(1<<20, 1<<10, time.Second, nil)
	l.release.free = func() { frees.Add(1) }
	l.release.interval = 200 * time.Millisecond
	ctx := context.Background()
	burst := func(n int64) {
		t.Helper()
		if err := l.acquire(ctx, n); err != nil {
			t.Fatal(err)
		}
		l.free(n)
	}
	waitFrees := func(want int64, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for frees.Load() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := frees.Load(); got != want {
			t.Fatalf("%d releases, want %d", got, want)
		}
	}

	burst(100 << 10) // under a quarter of the budget: not worth a collection
	time.Sleep(50 * time.Millisecond)
	waitFrees(0, 0)

	burst(512 << 10)
	waitFrees(1, time.Second)

	// Within the interval: the release waits for its turn instead of being dropped.
	start := time.Now()
	burst(512 << 10)
	waitFrees(2, 2*time.Second)
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("second release after %v, want it held back by the 200 ms interval", waited)
	}

	// A release whose turn comes while a request holds bytes waits for the
	// next quiet moment.
	burst(512 << 10)
	if err := l.acquire(ctx, 512<<10); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	waitFrees(2, 0)
	l.free(512 << 10)
	waitFrees(3, 2*time.Second)

	// close stops a release that waits for its turn.
	burst(512 << 10)
	done := make(chan struct{})
	go func() { l.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("close did not stop a pending release")
	}
	if got := frees.Load(); got != 3 {
		t.Errorf("%d releases after close, want 3", got)
	}
}
