package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/health"
)

// HealthOptions configures the per-component health checks and readiness.
type HealthOptions struct {
	// Checker runs the component checks behind /healthz, /health/{component}
	// and /readyz. Nil: New builds one from Options.Store ("database") and
	// Options.Config ("config") that checks on every request.
	Checker *health.Checker
	// Ready reports what else must hold before the worker takes traffic
	// (migrations done, consumer started); nil means nothing. Its error is a
	// reason, or several joined with errors.Join.
	Ready func(ctx context.Context) error
}

// canonicalComponent maps old spellings of component names to the current
// ones: the original served /health/circuitBreaker.
func canonicalComponent(name string) string {
	if name == "circuitBreaker" {
		return "circuit-breaker"
	}
	return name
}

// healthTimeout bounds a health request beyond the checker's own per-check
// timeout, in case the client never goes away.
const healthTimeout = 10 * time.Second

// routeHealth registers the health routes. Load balancers and orchestrators
// call them without keys and get the statuses only; an operator's or an
// admin's credentials show why.
func (s *Server) routeHealth() {
	if s.opts.Health.Checker == nil {
		s.opts.Health.Checker = defaultChecker(s.opts.Store, s.opts.Config)
	}
	s.open("GET", "/healthz", "health of every component", s.healthz)
	s.open("GET", "/health/{component}", "health of one component", s.componentHealth)
	s.open("GET", "/readyz", "readiness", s.readyz)
}

// defaultChecker keeps the behaviour of servers built without a Checker: the
// store and the configuration, checked afresh on each request.
func defaultChecker(store Pinger, cfg ConfigReporter) *health.Checker {
	c := health.NewChecker(health.Options{TTL: -1})
	if store != nil {
		c.Add("database", health.Database(store))
	}
	if cfg != nil {
		c.Add("config", health.Config(cfg.ConfigHealth))
	}
	return c
}

// statusOnly is a component's health as anyone may see it. Without a valid
// bearer key the health routes say only how the worker and each component
// are: their messages and details name the database's user, host and errors,
// and a refused configuration's values.
type statusOnly struct {
	Status health.Status `json:"status"`
}

// reportSummary is the whole worker's health as anyone may see it.
type reportSummary struct {
	Status     health.Status         `json:"status"`
	Components map[string]statusOnly `json:"components"`
}

func summarize(rep health.Report) reportSummary {
	out := reportSummary{Status: rep.Status, Components: make(map[string]statusOnly, len(rep.Components))}
	for name, res := range rep.Components {
		out.Components[name] = statusOnly{Status: res.Status}
	}
	return out
}

// healthz serves every component in the original's HealthStatus shape: 200
// when OK or WARNING, 503 when CRITICAL.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	rep := s.opts.Health.Checker.CheckAll(ctx)
	if !s.mayRead(r, audit.PermObservability) {
		writeJSON(w, healthCode(rep.Status), summarize(rep))
		return
	}
	writeJSON(w, healthCode(rep.Status), rep)
}

// componentHealth serves one component's ComponentHealth.
func (s *Server) componentHealth(w http.ResponseWriter, r *http.Request) {
	name := canonicalComponent(r.PathValue("component"))
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	checker := s.opts.Health.Checker
	res, ok := checker.Check(ctx, name)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{
			"error":      map[string]string{"code": "not_found", "message": fmt.Sprintf("unknown health component %q", r.PathValue("component"))},
			"components": checker.Names(),
		})
		return
	}
	if !s.mayRead(r, audit.PermObservability) {
		writeJSON(w, healthCode(res.Status), statusOnly{Status: res.Status})
		return
	}
	writeJSON(w, healthCode(res.Status), res)
}

// readyz answers 200 {"ready":true} only when the store (and Redis, when the
// worker uses it) answer and the wiring's readiness function agrees; else 503
// with the reasons: with a valid key each says why, without one it only
// names what is not ready.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	detailed := s.mayRead(r, audit.PermObservability)
	reasons := []string{}
	// Without these the worker cannot take work; a slow one (WARNING) still can.
	for _, name := range []string{"database", "redis"} {
		if res, ok := s.opts.Health.Checker.Check(ctx, name); ok && res.Status == health.StatusCritical {
			reason := name
			if detailed {
				reason += ": " + res.Message
			}
			reasons = append(reasons, reason)
		}
	}
	if ready := s.opts.Health.Ready; ready != nil {
		if err := ready(ctx); err != nil {
			if detailed {
				reasons = append(reasons, errorList(err)...)
			} else {
				reasons = append(reasons, "worker")
			}
		}
	}
	if len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reasons": reasons})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}

// errorList splits joined errors into one reason each.
func errorList(err error) []string {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range joined.Unwrap() {
			out = append(out, errorList(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

func healthCode(s health.Status) int {
	if s == health.StatusCritical {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}
