package httpapi

// MetricsOptions configures Prometheus metrics, the dashboard, enhanced metrics and bottlenecks.
type MetricsOptions struct{}

func (s *Server) routeMetrics() {}
