package httpapi

// TracingOptions configures recent traces, profiling and pprof.
type TracingOptions struct{}

func (s *Server) routeTracing() {}
