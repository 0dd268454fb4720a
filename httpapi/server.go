package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/pipeline"
)

// Ingester takes a request's events and answers once they are durable.
// *pipeline.Batcher implements it.
type Ingester interface {
	Submit(ctx context.Context, inputs []pipeline.Input) ([]pipeline.Outcome, error)
}

// Pinger checks a dependency; audit.EventStore implements it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ConfigReporter tells where the running configuration came from and whether
// it is current (configuration reload).
type ConfigReporter interface {
	// ConfigStatus is the JSON document served at /observability/config.
	ConfigStatus() any
	// ConfigHealth is false (with a reason) when the worker runs on a cached copy
	// or the last reload was refused; nil-safe implementations report true when
	// there is no configuration source at all.
	ConfigHealth() (ok bool, message string)
}

// IngestObserver is told what ingest admission does; *telemetry.Metrics
// implements it.
type IngestObserver interface {
	// WatchIngestInFlight hands over the budget and a reader of the bytes held now.
	WatchIngestInFlight(budget int64, inFlight func() int64)
	// IngestRefused counts a request refused for its size ("too_large") or
	// because the budget stayed full ("busy").
	IngestRefused(reason string)
	// MemoryReleased counts a return of freed heap memory to the OS.
	MemoryReleased()
}

// Options configure the server.
type Options struct {
	Ingester Ingester
	Store    Pinger // checked by /healthz
	// Auth says who a bearer credential stands for; nil refuses every
	// protected route (401).
	Auth *access.Authenticator
	// Limits bounds the rate of each principal and of failed attempts from
	// each address; nil limits nothing.
	Limits *access.Limiter
	// Keys keeps the API keys the admin routes manage; nil answers them 503.
	Keys audit.KeyStore
	// DeadLetters keeps the refused events; nil answers their routes 503.
	DeadLetters DeadLetterStore
	// Records stores an audit event for every access to the audit trail and
	// every refused request; nil records nothing.
	Records      *access.Recorder
	MaxBodyBytes int64 // request body limit for ingest
	// MaxInFlightBytes bounds the request bodies ingest holds at once; default
	// 64 MiB, and never below MaxBodyBytes.
	MaxInFlightBytes int64
	// InFlightWait is how long a request waits for room in that budget before
	// it gets a 503; default 2s.
	InFlightWait   time.Duration
	IngestObserver IngestObserver // optional
	MaxEvents      int            // events per request; default 10,000
	Config         ConfigReporter // optional
	Logger         *slog.Logger

	// Each feature's options live beside its routes.
	Health  HealthOptions  // health.go
	Metrics MetricsOptions // metrics.go: /metrics and the metric-based observability views
	Tracing TracingOptions // tracing.go: traces, profiling, pprof
	Alerts  AlertOptions   // alerts.go
	Events  EventOptions   // events.go: search, single events, verification, exports
	Reports ReportOptions  // reports.go: compliance reports and scheduled runs
	Console ConsoleOptions // session.go: the web console, its sessions and live overview
	Proofs  ProofOptions   // proofs.go: signed checkpoints, inclusion and consistency proofs
}

// Server serves the worker's HTTP endpoints.
type Server struct {
	opts     Options
	mux      *http.ServeMux
	routes   []Route
	limits   *access.Limiter
	inFlight *inFlight
	cursorState
	consoleState
}

// New builds the server and registers its routes (see Routes).
func New(opts Options) *Server {
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 10000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), limits: opts.Limits}
	s.inFlight = newInFlight(opts.MaxInFlightBytes, opts.MaxBodyBytes, opts.InFlightWait, opts.IngestObserver)
	s.handle("POST", "/v1/events", audit.PermIngest, "send events", s.ingest)
	s.routeHealth()
	s.routeMetrics()
	s.routeTracing()
	s.routeAlerts()
	s.routeKeys()
	s.routeEvents()
	s.routeProofs()
	s.routeDeadLetters()
	s.routeReports()
	s.routeConsole()
	if opts.Config != nil {
		s.handle("GET", "/observability/config", audit.PermObservability, "running configuration and reload status",
			func(w http.ResponseWriter, r *http.Request) {
				if paramsOK(w, r) {
					writeJSON(w, http.StatusOK, s.opts.Config.ConfigStatus())
				}
			})
	}
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops the server's background work (returning memory to the OS after
// an ingest burst) and waits for it. Call it after the HTTP server has shut down.
func (s *Server) Close() { s.inFlight.close() }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, errCode, message string) {
	writeJSON(w, code, map[string]any{"error": map[string]string{"code": errCode, "message": message}})
}
