package httpapi

// AlertOptions configures the alerts API.
type AlertOptions struct{}

func (s *Server) routeAlerts() {}
