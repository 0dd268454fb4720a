package httpapi

import (
	"context"
	"net/http"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/telemetry"
)

// DashboardBuilder builds the dashboard and the enhanced metrics;
// *telemetry.Dashboard implements it.
type DashboardBuilder interface {
	Build(ctx context.Context) telemetry.DashboardData
	EnhancedMetrics(ctx context.Context) telemetry.EnhancedMetrics
}

// BottleneckAnalyzer ranks the pipeline's stages; *telemetry.Dashboard implements it.
type BottleneckAnalyzer interface {
	Bottlenecks(ctx context.Context) telemetry.BottleneckReport
}

// MetricsOptions configures Prometheus metrics, the dashboard, enhanced
// metrics and bottlenecks. A nil field makes its routes answer 503.
type MetricsOptions struct {
	// Exposition serves the Prometheus text format (telemetry.Metrics.Handler):
	// GET /metrics and /observability/metrics/enhanced?format=prometheus.
	Exposition  http.Handler
	Dashboard   DashboardBuilder
	Bottlenecks BottleneckAnalyzer
}

func (s *Server) routeMetrics() {
	// /metrics is unauthenticated, as scrapers expect: it holds counts and
	// timings, never events or keys. Restrict it at the network if needed.
	s.open("GET", "/metrics", "Prometheus metrics", s.serveMetrics)
	s.handle("GET", "/observability/dashboard", audit.PermObservability, "dashboard metrics", s.serveDashboard)
	s.handle("GET", "/observability/metrics/enhanced", audit.PermObservability, "dashboard metrics, JSON or Prometheus", s.serveEnhancedMetrics)
	s.handle("GET", "/observability/bottlenecks", audit.PermObservability, "bottleneck analysis", s.serveBottlenecks)
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.opts.Metrics.Exposition == nil {
		metricsUnavailable(w, "metrics are")
		return
	}
	s.opts.Metrics.Exposition.ServeHTTP(w, r)
}

func (s *Server) serveDashboard(w http.ResponseWriter, r *http.Request) {
	if !paramsOK(w, r) {
		return
	}
	if s.opts.Metrics.Dashboard == nil {
		metricsUnavailable(w, "the dashboard is")
		return
	}
	writeJSON(w, http.StatusOK, s.opts.Metrics.Dashboard.Build(r.Context()))
}

// serveEnhancedMetrics serves the dashboard's numbers as JSON (the default) or the
// Prometheus exposition (format=prometheus), as the original did.
func (s *Server) serveEnhancedMetrics(w http.ResponseWriter, r *http.Request) {
	if !paramsOK(w, r, "format") {
		return
	}
	format, err := singleParam(r.URL.Query(), "format")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	switch format {
	case "", "json":
		if s.opts.Metrics.Dashboard == nil {
			metricsUnavailable(w, "enhanced metrics are")
			return
		}
		writeJSON(w, http.StatusOK, s.opts.Metrics.Dashboard.EnhancedMetrics(r.Context()))
	case "prometheus":
		s.serveMetrics(w, r)
	default:
		writeError(w, http.StatusBadRequest, "invalid", "format must be json or prometheus")
	}
}

func (s *Server) serveBottlenecks(w http.ResponseWriter, r *http.Request) {
	if !paramsOK(w, r) {
		return
	}
	if s.opts.Metrics.Bottlenecks == nil {
		metricsUnavailable(w, "bottleneck analysis is")
		return
	}
	writeJSON(w, http.StatusOK, s.opts.Metrics.Bottlenecks.Bottlenecks(r.Context()))
}

func metricsUnavailable(w http.ResponseWriter, what string) {
	writeError(w, http.StatusServiceUnavailable, "unavailable", what+" not configured")
}
