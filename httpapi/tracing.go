package httpapi

import (
	"cmp"
	"net/http"
	"net/http/pprof"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/telemetry"
)

// TraceStore serves recent spans; *telemetry.SpanStore implements it.
type TraceStore interface {
	Trace(id trace.TraceID) []telemetry.SpanView
	Recent(limit int) []telemetry.TraceSummary
}

// TracingOptions configures recent traces, profiling and pprof.
type TracingOptions struct {
	Store TraceStore // nil: /observability/traces answers 503
	// EnablePprof serves net/http/pprof under /debug/pprof/, behind the API key.
	EnablePprof bool
}

// Limits of GET /observability/traces without a traceId.
const (
	defaultRecentTraces = 50
	maxRecentTraces     = 1000
)

const pprofPath = "/debug/pprof/"

func (s *Server) routeTracing() {
	started := time.Now() // New runs at start-up: uptime counts from here
	s.handle("GET", "/observability/traces", audit.PermObservability, "recent traces", s.traces)
	s.handle("GET", "/observability/profiling", audit.PermObservability, "profiling status", func(w http.ResponseWriter, r *http.Request) {
		if paramsOK(w, r) {
			writeJSON(w, http.StatusOK, s.profiling(started))
		}
	})
	if s.opts.Tracing.EnablePprof {
		// Registered on the server's own mux; net/http/pprof's init also fills
		// http.DefaultServeMux, which this program never serves.
		s.handle("GET", pprofPath, audit.PermObservability, "pprof profiles", pprof.Index) // named profiles: heap, goroutine, ...
		s.handle("GET", pprofPath+"cmdline", audit.PermObservability, "pprof command line", pprof.Cmdline)
		s.handle("GET", pprofPath+"profile", audit.PermObservability, "pprof CPU profile", pprof.Profile)
		s.handle("GET", pprofPath+"symbol", audit.PermObservability, "pprof symbols", pprof.Symbol)
		s.handle("GET", pprofPath+"trace", audit.PermObservability, "pprof execution trace", pprof.Trace)
	}
}

// traces serves the spans of one trace (?traceId=, 32 hex digits) as a JSON
// array, as the original did, or else the most recent traces (?limit=).
func (s *Server) traces(w http.ResponseWriter, r *http.Request) {
	store := s.opts.Tracing.Store
	if store == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "tracing not initialized")
		return
	}
	q := r.URL.Query()
	if err := cmp.Or(checkParams(q, "traceId", "limit"), checkSingle(q, "traceId", "limit")); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	if q.Has("traceId") {
		raw := strings.ToLower(q.Get("traceId"))
		id, err := trace.TraceIDFromHex(raw)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid", "traceId must be 32 hexadecimal digits, not all zero")
			return
		}
		spans := store.Trace(id)
		if len(spans) == 0 {
			writeError(w, http.StatusNotFound, "not_found", "no spans of trace "+raw+" are held (unknown, or evicted from the in-memory store)")
			return
		}
		writeJSON(w, http.StatusOK, spans)
		return
	}
	limit := defaultRecentTraces
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "invalid", "limit must be a positive integer")
			return
		}
		limit = min(n, maxRecentTraces)
	}
	recent := store.Recent(limit)
	if recent == nil {
		recent = []telemetry.TraceSummary{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"traces": recent, "limit": limit})
}

// profilingReport is the runtime's state: the original's profiling endpoint
// returned an always-empty list; this one says what a profile would start from.
type profilingReport struct {
	Timestamp     time.Time    `json:"timestamp"`
	UptimeSeconds float64      `json:"uptimeSeconds"`
	GoVersion     string       `json:"goVersion"`
	Goroutines    int          `json:"goroutines"`
	GOMAXPROCS    int          `json:"gomaxprocs"`
	NumCPU        int          `json:"numCpu"`
	CgoCalls      int64        `json:"cgoCalls"`
	Memory        memoryReport `json:"memory"`
	GC            gcReport     `json:"gc"`
	Pprof         pprofReport  `json:"pprof"`
}

type memoryReport struct {
	HeapAllocBytes uint64 `json:"heapAllocBytes"`
	HeapInuseBytes uint64 `json:"heapInuseBytes"`
	HeapSysBytes   uint64 `json:"heapSysBytes"`
	HeapObjects    uint64 `json:"heapObjects"`
	StackInuse     uint64 `json:"stackInuseBytes"`
	StackSys       uint64 `json:"stackSysBytes"`
	SysBytes       uint64 `json:"sysBytes"` // everything obtained from the OS
	TotalAlloc     uint64 `json:"totalAllocBytes"`
}

type gcReport struct {
	Count        uint32  `json:"count"`
	PauseTotalMs float64 `json:"pauseTotalMs"`
	LastGC       *string `json:"lastGc"` // RFC 3339; null before the first collection
	NextGCBytes  uint64  `json:"nextGcBytes"`
	// RecentPauses are percentiles over the last (up to 256) collections.
	RecentPauses pauseStats `json:"recentPauses"`
}

type pauseStats struct {
	Samples int     `json:"samples"`
	P50Ms   float64 `json:"p50Ms"`
	P95Ms   float64 `json:"p95Ms"`
	P99Ms   float64 `json:"p99Ms"`
	MaxMs   float64 `json:"maxMs"`
}

type pprofReport struct {
	Enabled bool   `json:"enabled"`
	Path    string `json:"path,omitempty"`
}

func (s *Server) profiling(started time.Time) profilingReport {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	rep := profilingReport{
		Timestamp:     time.Now().UTC(),
		UptimeSeconds: time.Since(started).Seconds(),
		GoVersion:     runtime.Version(),
		Goroutines:    runtime.NumGoroutine(),
		GOMAXPROCS:    runtime.GOMAXPROCS(0),
		NumCPU:        runtime.NumCPU(),
		CgoCalls:      runtime.NumCgoCall(),
		Memory: memoryReport{
			HeapAllocBytes: m.HeapAlloc, HeapInuseBytes: m.HeapInuse, HeapSysBytes: m.HeapSys, HeapObjects: m.HeapObjects,
			StackInuse: m.StackInuse, StackSys: m.StackSys, SysBytes: m.Sys, TotalAlloc: m.TotalAlloc,
		},
		GC: gcReport{
			Count: m.NumGC, PauseTotalMs: nsToMs(m.PauseTotalNs), NextGCBytes: m.NextGC,
			RecentPauses: recentPauses(&m),
		},
		Pprof: pprofReport{Enabled: s.opts.Tracing.EnablePprof},
	}
	if m.LastGC > 0 {
		last := time.Unix(0, int64(m.LastGC)).UTC().Format(time.RFC3339Nano)
		rep.GC.LastGC = &last
	}
	if rep.Pprof.Enabled {
		rep.Pprof.Path = pprofPath
	}
	return rep
}

// recentPauses summarises MemStats.PauseNs, a ring of the last 256 GC pauses.
func recentPauses(m *runtime.MemStats) pauseStats {
	n := int(min(m.NumGC, uint32(len(m.PauseNs))))
	if n == 0 {
		return pauseStats{}
	}
	pauses := make([]uint64, 0, n)
	for i := range n { // the newest is at (NumGC+255)%256, older ones before it
		pauses = append(pauses, m.PauseNs[(int(m.NumGC)-1-i+len(m.PauseNs))%len(m.PauseNs)])
	}
	slices.Sort(pauses)
	at := func(p float64) float64 { return nsToMs(pauses[int(p*float64(n-1)+0.5)]) }
	return pauseStats{Samples: n, P50Ms: at(0.50), P95Ms: at(0.95), P99Ms: at(0.99), MaxMs: nsToMs(pauses[n-1])}
}

func nsToMs(ns uint64) float64 { return float64(ns) / 1e6 }
