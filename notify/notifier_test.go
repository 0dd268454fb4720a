package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/sqlite"
)

const secret = "whsec-test-0123456789"

// receiver is a webhook endpoint that verifies every request with Verify and
// answers with the next status of its script (the last one repeats).
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	script  []int
	got     []payload
	headers []http.Header
	block   chan struct{} // if set, each request waits for it to close
	arrived chan struct{}
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{t: t, script: script, arrived: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := Verify(secret, req.Header.Get(HeaderTimestamp), body, req.Header.Get(HeaderSignature), time.Minute, time.Now()); err != nil {
		r.t.Errorf("receiver: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Errorf("Content-Type %q", ct)
	}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("receiver: body: %v", err)
	}
	r.mu.Lock()
	r.got = append(r.got, p)
	r.headers = append(r.headers, req.Header.Clone())
	code := r.script[min(len(r.got)-1, len(r.script)-1)]
	r.mu.Unlock()
	r.arrived <- struct{}{}
	if r.block != nil {
		<-r.block
	}
	w.WriteHeader(code)
}

func (r *receiver) requests() []payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]payload(nil), r.got...)
}

func hook(name, url string) Webhook { return Webhook{Name: name, URL: url, Secret: secret} }

func alert(id string, sev audit.Severity, org string) audit.Alert {
	return audit.Alert{ID: id, Type: audit.AlertSecurity, Severity: sev, OrganizationID: org, Title: "t",
		Status: audit.AlertActive, DedupKey: "k", Occurrences: 1, Tags: []string{}, FirstSeen: time.Now().UTC()}
}

func fastOptions(hooks ...Webhook) Options {
	return Options{Webhooks: hooks, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Timeout: 5 * time.Second}
}

func start(t *testing.T, opts Options) *Notifier {
	t.Helper()
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

func closeNotifier(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// counter reads one counter from the registry; labels are name=value pairs.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestRetriesUntilDeliveredAndRecordsEachAttempt(t *testing.T) {
	rcv := newReceiver(t, 500, 500, 200)
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := prometheus.NewRegistry()
	opts := fastOptions(hook("ops", rcv.srv.URL))
	opts.Recorder, opts.Registerer = store, reg
	n := start(t, opts)

	a := alert("alt_retry", audit.SeverityHigh, "org-1")
	n.Notify(context.Background(), a)
	closeNotifier(t, n) // drains: returns once the delivery is done

	got := rcv.requests()
	if len(got) != 3 {
		t.Fatalf("%d attempts, want 3", len(got))
	}
	for i, p := range got {
		if p.Attempt != i+1 || p.ID != a.ID || p.DeliveryID == "" || p.DeliveryID != got[0].DeliveryID || p.SentAt.IsZero() {
			t.Errorf("attempt %d payload: %+v", i+1, p)
		}
		if h := rcv.headers[i].Get(HeaderDelivery); h != p.DeliveryID {
			t.Errorf("attempt %d: %s %q, body deliveryId %q", i+1, HeaderDelivery, h, p.DeliveryID)
		}
	}
	recs, err := store.ListAlertDeliveries(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status audit.DeliveryStatus
		code   int
	}{{audit.DeliveryRetrying, 500}, {audit.DeliveryRetrying, 500}, {audit.DeliveryDelivered, 200}}
	if len(recs) != len(want) {
		t.Fatalf("recorded %+v", recs)
	}
	for i, w := range want {
		r := recs[i]
		if r.Status != w.status || r.HTTPStatus != w.code || r.Attempt != i+1 || r.Destination != "ops" || r.DeliveryID != got[0].DeliveryID {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	if v := counter(t, reg, "audit_alert_deliveries_total", "destination", "ops", "outcome", "delivered"); v != 1 {
		t.Errorf("delivered counter %v", v)
	}
	if v := counter(t, reg, "audit_alert_delivery_attempts_total", "destination", "ops", "result", "retry"); v != 2 {
		t.Errorf("retry attempts counter %v", v)
	}
}

func TestPermanentAndTransientAnswers(t *testing.T) {
	for _, tc := range []struct {
		script   []int
		attempts int
		outcome  string
	}{
		{[]int{400}, 1, "failed"},
		{[]int{404}, 1, "failed"},
		{[]int{301}, 1, "failed"}, // redirects are not followed
		{[]int{408, 200}, 2, "delivered"},
		{[]int{429, 204}, 2, "delivered"},
		{[]int{503}, 3, "failed"}, // attempts exhausted
	} {
		rcv := newReceiver(t, tc.script...)
		reg := prometheus.NewRegistry()
		opts := fastOptions(hook("ops", rcv.srv.URL))
		opts.Attempts, opts.Registerer = 3, reg
		n := start(t, opts)
		n.Notify(context.Background(), alert("alt_x", audit.SeverityLow, ""))
		closeNotifier(t, n)
		if got := len(rcv.requests()); got != tc.attempts {
			t.Errorf("%v: %d attempts, want %d", tc.script, got, tc.attempts)
		}
		if v := counter(t, reg, "audit_alert_deliveries_total", "outcome", tc.outcome); v != 1 {
			t.Errorf("%v: outcome %s counted %v times", tc.script, tc.outcome, v)
		}
	}
}

func TestNetworkErrorsAreRetried(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close() // nothing listens any more
	reg := prometheus.NewRegistry()
	opts := fastOptions(hook("gone", url))
	opts.Attempts, opts.Registerer = 2, reg
	n := start(t, opts)
	n.Notify(context.Background(), alert("alt_net", audit.SeverityLow, ""))
	closeNotifier(t, n)
	if r, f := counter(t, reg, "audit_alert_delivery_attempts_total", "result", "retry"),
		counter(t, reg, "audit_alert_deliveries_total", "outcome", "failed"); r != 2 || f != 1 {
		t.Errorf("retry attempts %v, failed deliveries %v; want 2 and 1", r, f)
	}
}

func TestDestinationFilters(t *testing.T) {
	all := newReceiver(t, 200)
	high := newReceiver(t, 200)
	org := newReceiver(t, 200)
	h := hook("high", high.srv.URL)
	h.MinSeverity = audit.SeverityHigh
	o := hook("org", org.srv.URL)
	o.Organizations = []string{"org-1", "org-2"}
	n := start(t, fastOptions(hook("all", all.srv.URL), h, o))
	for _, a := range []audit.Alert{
		alert("a1", audit.SeverityLow, "org-1"),
		alert("a2", audit.SeverityHigh, "org-3"),
		alert("a3", audit.SeverityCritical, "org-2"),
		alert("a4", audit.SeverityMedium, ""),
	} {
		n.Notify(context.Background(), a)
	}
	closeNotifier(t, n)
	ids := func(r *receiver) string {
		var out []string
		for _, p := range r.requests() {
			out = append(out, p.ID)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	if got := ids(all); got != "a1,a2,a3,a4" {
		t.Errorf("all: %s", got)
	}
	if got := ids(high); got != "a2,a3" {
		t.Errorf("minSeverity HIGH: %s", got)
	}
	if got := ids(org); got != "a1,a3" {
		t.Errorf("organizations: %s", got)
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	rcv := newReceiver(t, 200)
	rcv.block = make(chan struct{})
	reg := prometheus.NewRegistry()
	opts := fastOptions(hook("slow", rcv.srv.URL))
	opts.Workers, opts.QueueSize, opts.Registerer = 1, 2, reg
	n := start(t, opts)

	n.Notify(context.Background(), alert("first", audit.SeverityLow, ""))
	<-rcv.arrived // the only worker is now stuck in the receiver
	done := make(chan struct{})
	go func() {
		for i := range 9 {
			n.Notify(context.Background(), alert("more-"+string(rune('a'+i)), audit.SeverityLow, ""))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify blocked on a full queue")
	}
	if v := counter(t, reg, "audit_alert_notifications_dropped_total", "reason", "queue_full"); v != 7 {
		t.Errorf("dropped %v, want 7 (1 in flight, 2 queued)", v)
	}
	close(rcv.block)
	closeNotifier(t, n)
	if got := len(rcv.requests()); got != 3 {
		t.Errorf("%d delivered, want 3", got)
	}
	n.Notify(context.Background(), alert("late", audit.SeverityLow, ""))
	if v := counter(t, reg, "audit_alert_notifications_dropped_total", "reason", "closed"); v != 1 {
		t.Errorf("Notify after Close: dropped %v, want 1", v)
	}
}

func TestCloseGivesUpAtDeadline(t *testing.T) {
	rcv := newReceiver(t, 200)
	rcv.block = make(chan struct{})
	t.Cleanup(func() { close(rcv.block) })
	n := start(t, fastOptions(hook("stuck", rcv.srv.URL)))
	n.Notify(context.Background(), alert("a", audit.SeverityLow, ""))
	<-rcv.arrived
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want deadline exceeded", err)
	}
}

func TestSetWebhooks(t *testing.T) {
	first := newReceiver(t, 200)
	second := newReceiver(t, 200)
	n := start(t, fastOptions(hook("first", first.srv.URL)))
	if err := n.SetWebhooks(Webhook{Name: "bad", URL: "ftp://x", Secret: "s"}); audit.ErrorCode(err) != audit.CodeInvalid {
		t.Fatalf("invalid webhook accepted: %v", err)
	}
	n.Notify(context.Background(), alert("a1", audit.SeverityLow, ""))
	if err := n.SetWebhooks(hook("second", second.srv.URL)); err != nil {
		t.Fatal(err)
	}
	n.Notify(context.Background(), alert("a2", audit.SeverityLow, ""))
	closeNotifier(t, n)
	if f, s := first.requests(), second.requests(); len(f) != 1 || f[0].ID != "a1" || len(s) != 1 || s[0].ID != "a2" {
		t.Errorf("first got %v, second got %v", f, s)
	}
}

func TestWebhookValidate(t *testing.T) {
	good := Webhook{Name: "ops", URL: "https://hooks.example.com/x", Secret: "s"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]Webhook{
		"no name":      {URL: good.URL, Secret: "s"},
		"relative url": {Name: "x", URL: "/hook", Secret: "s"},
		"scheme":       {Name: "x", URL: "file:///etc/passwd", Secret: "s"},
		"no secret":    {Name: "x", URL: good.URL},
		"severity":     {Name: "x", URL: good.URL, Secret: "s", MinSeverity: "INFO"},
	} {
		if err := w.Validate(); audit.ErrorCode(err) != audit.CodeInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New(Options{Webhooks: []Webhook{good, good}}); err == nil {
		t.Error("two webhooks with one name accepted")
	}
}

func TestSecretsAndURLsAreNotLogged(t *testing.T) {
	rcv := newReceiver(t, 500)
	var logs bytes.Buffer
	var mu sync.Mutex
	opts := fastOptions(Webhook{Name: "ops", URL: rcv.srv.URL + "/hook?token=tok-DO-NOT-LOG", Secret: secret})
	opts.Attempts = 2
	opts.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := start(t, opts)
	n.Notify(context.Background(), alert("a", audit.SeverityLow, ""))
	closeNotifier(t, n)
	mu.Lock()
	defer mu.Unlock()
	out := logs.String()
	if !strings.Contains(out, "alert delivery failed") {
		t.Fatalf("expected a failure log, got %s", out)
	}
	for _, s := range []string{secret, "tok-DO-NOT-LOG"} {
		if strings.Contains(out, s) {
			t.Errorf("log contains %q: %s", s, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
