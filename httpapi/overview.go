package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/health"
	"github.com/smartlogs/audit-worker/telemetry"
)

// OverviewSource is what the live overview reads besides the dashboard;
// *telemetry.Metrics implements it.
type OverviewSource interface {
	// Series is the events received and failed in each of the last n seconds.
	Series(n int) telemetry.Series
	// BreakerHistory is the latest circuit breaker transitions, oldest first.
	BreakerHistory() []telemetry.BreakerTransition
}

// DeadLetterCounter counts the dead letters a store keeps; both stores
// implement it.
type DeadLetterCounter interface {
	DeadLetterUsage(ctx context.Context) (audit.DeadLetterUsage, error)
}

const (
	// seriesSeconds is the stretch of throughput the overview charts.
	seriesSeconds     = 15 * 60
	defaultMaxStreams = 32
	// deadLetterCountEvery spaces the count of the store's dead letters,
	// a query over a table that may hold many.
	deadLetterCountEvery = 5 * time.Second
	overviewQueryTimeout = 2 * time.Second
)

// streamHub owns the overview streams: it bounds how many are open, ends
// them all when the server shuts down, and computes the figures every
// stream shares once per interval, however many consoles are open.
type streamHub struct {
	interval time.Duration
	slots    chan struct{}
	done     chan struct{}
	endOnce  sync.Once

	mu       sync.Mutex
	shared   *sharedOverview
	sharedAt time.Time
	alerts   map[string]cachedAlerts // by organisation scope
	deadAt   time.Time
	dead     *deadLetterSummary
}

type cachedAlerts struct {
	at      time.Time
	summary *activeAlerts
}

func newStreamHub(o ConsoleOptions) *streamHub {
	h := &streamHub{interval: o.StreamInterval, done: make(chan struct{}), alerts: map[string]cachedAlerts{}}
	if h.interval <= 0 {
		h.interval = time.Second
	}
	n := o.MaxStreams
	if n <= 0 {
		n = defaultMaxStreams
	}
	h.slots = make(chan struct{}, n)
	return h
}

// EndStreams ends every overview stream, now and from now on; register it
// with http.Server.RegisterOnShutdown, since a stream never goes idle and
// would hold a graceful shutdown until its timeout.
func (s *Server) EndStreams() { s.streams.endOnce.Do(func() { close(s.streams.done) }) }

func (s *Server) routeOverview() {
	s.handle("GET", "/v1/stream/overview", audit.PermObservability,
		"live overview for the console, as Server-Sent Events every second", s.streamOverview)
}

// overview is one message of the stream: the worker as the console's
// Overview page shows it.
type overview struct {
	Time   time.Time     `json:"time"`
	Status health.Status `json:"status"` // the worst component's
	// Series holds the seconds since the previous message: the last 15
	// minutes in the first message, usually one second after that.
	Series         *telemetry.Series             `json:"series,omitempty"`
	Throughput     *telemetry.Throughput         `json:"throughput,omitempty"`
	Totals         *telemetry.Overview           `json:"totals,omitempty"`
	Latency        *telemetry.Latency            `json:"latency,omitempty"`
	Queue          *telemetry.QueueStatus        `json:"queue,omitempty"`
	Breaker        *telemetry.BreakerStatus      `json:"breaker,omitempty"`
	BreakerHistory []telemetry.BreakerTransition `json:"breakerHistory"`
	Health         health.Report                 `json:"health"`
	Config         any                           `json:"config,omitempty"`
	DeadLetters    *deadLetterSummary            `json:"deadLetters,omitempty"`
	Alerts         *activeAlerts                 `json:"alerts,omitempty"`
	Runtime        *telemetry.RuntimeStats       `json:"runtime,omitempty"`
}

// sharedOverview is the part of a message that is the same for every viewer.
type sharedOverview struct {
	doc    overview
	series telemetry.Series // the full 15 minutes; each stream sends its tail
}

type deadLetterSummary struct {
	Entries int64  `json:"entries"`
	Bytes   int64  `json:"bytes"`
	Error   string `json:"error,omitempty"`
}

// activeAlerts counts the alerts that still need someone (active and
// acknowledged) in the viewer's organisations.
type activeAlerts struct {
	Total      int64                       `json:"total"`
	BySeverity map[audit.Severity]int64    `json:"bySeverity,omitempty"`
	ByStatus   map[audit.AlertStatus]int64 `json:"byStatus,omitempty"`
	Error      string                      `json:"error,omitempty"`
}

// streamOverview sends the overview every interval until the client goes,
// the server shuts down, or the caller's credentials stop being valid (a
// revoked key, a signed-out session): each message re-checks them.
func (s *Server) streamOverview(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	hub := s.streams
	select {
	case hub.slots <- struct{}{}:
		defer func() { <-hub.slots }()
	default:
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable),
			fmt.Sprintf("%d overview streams are open, the most this worker serves; close one or retry later", cap(hub.slots)))
		return
	}
	rc, err := startEventStream(w)
	if err != nil {
		return
	}
	ctx, p := r.Context(), principalOf(r.Context())
	var sentEnd int64
	ticker := time.NewTicker(hub.interval)
	defer ticker.Stop()
	for {
		if err := writeEvent(w, "overview", s.overviewFor(ctx, p, &sentEnd)); err != nil || rc.Flush() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-hub.done:
			endStream(w, rc, "the worker is shutting down")
			return
		case <-ticker.C:
		}
		if reason := s.streamRevoked(r, p); reason != "" {
			endStream(w, rc, reason)
			return
		}
	}
}

// startEventStream answers with the event-stream headers and a reconnection
// delay for the browser.
func startEventStream(w http.ResponseWriter) (*http.ResponseController, error) {
	rc := http.NewResponseController(w)
	// A stream outlives the server's read timeout, which would otherwise
	// cancel its context.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // proxies must pass each message on at once
	w.WriteHeader(http.StatusOK)
	_, err := io.WriteString(w, "retry: 5000\n\n")
	return rc, err
}

// streamRevoked says why the stream's caller may no longer watch, or "".
func (s *Server) streamRevoked(r *http.Request, was audit.Principal) string {
	p, err := s.authenticate(r)
	switch {
	case audit.ErrorCode(err) == audit.CodeUnavailable:
		return "credentials cannot be checked right now"
	case err != nil || p.ID != was.ID:
		return "the credentials are no longer valid"
	case !p.Can(audit.PermObservability):
		return "the credentials no longer grant " + string(audit.PermObservability)
	}
	return ""
}

func writeEvent(w io.Writer, event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
	return err
}

// endStream tells the console why the stream ends, so it does not reconnect
// blindly.
func endStream(w io.Writer, rc *http.ResponseController, reason string) {
	if writeEvent(w, "end", map[string]string{"reason": reason}) == nil {
		_ = rc.Flush()
	}
}

// overviewFor is the next message for principal p: the shared figures, the
// seconds of the series it has not been sent, and the alerts of its scope.
func (s *Server) overviewFor(ctx context.Context, p audit.Principal, sentEnd *int64) overview {
	sh := s.sharedOverview(ctx)
	doc := sh.doc
	if sh.series.End > 0 {
		n := len(sh.series.Received)
		if *sentEnd > 0 {
			n = int(min(max(sh.series.End-*sentEnd, 0), int64(n)))
		}
		from := len(sh.series.Received) - n
		doc.Series = &telemetry.Series{End: sh.series.End, Received: sh.series.Received[from:], Errors: sh.series.Errors[from:]}
		*sentEnd = sh.series.End
	}
	doc.Alerts = s.activeAlertsOf(ctx, p)
	return doc
}

// sharedOverview returns the figures of this interval, computing them when
// the last ones are older than half an interval.
func (s *Server) sharedOverview(ctx context.Context) *sharedOverview {
	hub := s.streams
	hub.mu.Lock()
	defer hub.mu.Unlock() // concurrent streams wait for one computation
	now := time.Now()
	if hub.shared != nil && now.Sub(hub.sharedAt) < hub.interval/2 {
		return hub.shared
	}
	// Shared by every stream: one viewer leaving must not spoil the others' figures.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), overviewQueryTimeout)
	defer cancel()
	sh := &sharedOverview{doc: overview{Time: now.UTC(), BreakerHistory: []telemetry.BreakerTransition{}}}
	if d := s.opts.Metrics.Dashboard; d != nil {
		data := d.Build(ctx)
		sh.doc.Throughput, sh.doc.Totals, sh.doc.Latency = &data.Throughput, &data.Overview, &data.Latency
		sh.doc.Queue, sh.doc.Breaker, sh.doc.Runtime = &data.Queue, &data.CircuitBreaker, &data.Runtime
	}
	if src := s.opts.Console.Overview; src != nil {
		sh.series = src.Series(seriesSeconds)
		if h := src.BreakerHistory(); h != nil {
			sh.doc.BreakerHistory = h
		}
	}
	sh.doc.Health = s.opts.Health.Checker.CheckAll(ctx)
	sh.doc.Status = sh.doc.Health.Status
	if s.opts.Config != nil {
		sh.doc.Config = s.opts.Config.ConfigStatus()
	}
	sh.doc.DeadLetters = s.deadLetterSummaryLocked(ctx, now)
	hub.shared, hub.sharedAt = sh, now
	return sh
}

func (s *Server) deadLetterSummaryLocked(ctx context.Context, now time.Time) *deadLetterSummary {
	hub, counter := s.streams, s.opts.Console.DeadLetterUsage
	if counter == nil {
		return nil
	}
	if hub.dead != nil && now.Sub(hub.deadAt) < deadLetterCountEvery {
		return hub.dead
	}
	u, err := counter.DeadLetterUsage(ctx)
	d := &deadLetterSummary{Entries: u.Entries, Bytes: u.Bytes}
	if err != nil {
		s.opts.Logger.Warn("overview: count dead letters", "err", err)
		d = &deadLetterSummary{Error: "dead letters cannot be counted right now"}
	}
	hub.dead, hub.deadAt = d, now
	return d
}

// activeAlertsOf counts the open alerts of p's organisations, once per
// interval for each scope.
func (s *Server) activeAlertsOf(ctx context.Context, p audit.Principal) *activeAlerts {
	store := s.opts.Alerts.Store
	if store == nil || !p.Can(audit.PermAlertsRead) {
		return nil
	}
	orgs, _ := p.ScopeOrganizations(nil)
	key := "*"
	if orgs != nil {
		key = strings.Join(orgs, "\x00")
	}
	hub := s.streams
	hub.mu.Lock()
	defer hub.mu.Unlock()
	now := time.Now()
	if c, ok := hub.alerts[key]; ok && now.Sub(c.at) < hub.interval/2 {
		return c.summary
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), overviewQueryTimeout)
	defer cancel()
	f := audit.AlertFilter{Status: []audit.AlertStatus{audit.AlertActive, audit.AlertAcknowledged}, Organizations: orgs}
	st, err := store.AlertStatistics(ctx, f)
	a := &activeAlerts{Total: st.Total, BySeverity: st.BySeverity, ByStatus: st.ByStatus}
	if err != nil {
		s.opts.Logger.Warn("overview: count alerts", "err", err)
		a = &activeAlerts{Error: "alerts cannot be counted right now"}
	}
	if len(hub.alerts) >= 2*cap(hub.slots) { // scopes of streams long gone
		clear(hub.alerts)
	}
	hub.alerts[key] = cachedAlerts{at: now, summary: a}
	return a
}
