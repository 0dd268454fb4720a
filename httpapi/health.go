package httpapi

// HealthOptions configures the per-component health checks and readiness.
type HealthOptions struct{}

func (s *Server) routeHealth() {}
