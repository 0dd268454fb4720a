package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
)

// Route is one endpoint and what it takes to call it. The route table is the
// one place that says who may call what; the authorization matrix test reads
// it from the server.
type Route struct {
	Method  string
	Path    string           // the mux pattern's path, e.g. /v1/alerts/{id}
	Perm    audit.Permission // what the caller's role must grant; "" for an open route
	Summary string
}

// Open reports whether the route needs no credentials (liveness, readiness
// and metrics, which probes and scrapers call without keys).
func (r Route) Open() bool { return r.Perm == "" }

// Routes returns every registered route, in registration order.
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// handle registers a route that needs perm. Every request passes the guard:
// the client address's failed attempts, the credentials, the role, the rate.
func (s *Server) handle(method, path string, perm audit.Permission, summary string, h http.HandlerFunc) {
	if perm == "" {
		panic("httpapi: route " + method + " " + path + " has no permission; use open")
	}
	rt := Route{Method: method, Path: path, Perm: perm, Summary: summary}
	s.routes = append(s.routes, rt)
	s.mux.HandleFunc(pattern(method, path), s.guard(rt, h))
}

// pattern is the mux pattern of a route; an empty method matches any.
func pattern(method, path string) string {
	if method == "" {
		return path
	}
	return method + " " + path
}

// open registers a route that anyone may call.
func (s *Server) open(method, path, summary string, h http.HandlerFunc) {
	s.routes = append(s.routes, Route{Method: method, Path: path, Summary: summary})
	s.mux.HandleFunc(pattern(method, path), h)
}

type principalKey struct{}

// principalOf returns the principal the guard let through.
func principalOf(ctx context.Context) audit.Principal {
	p, _ := ctx.Value(principalKey{}).(audit.Principal)
	return p
}

// guard lets a request through to h only when its credentials are valid,
// their role grants the route's permission, and neither the client address
// nor the principal is over its rate. Each refusal is recorded as an access
// of its own (audit.access.denied).
func (s *Server) guard(rt Route, h http.HandlerFunc) http.HandlerFunc {
	route := rt.Method + " " + rt.Path
	return func(w http.ResponseWriter, r *http.Request) {
		addr := clientAddr(r)
		if blocked, retry := s.limits.AddressBlocked(addr); blocked {
			tooMany(w, retry, "too many failed authentications from this address")
			return
		}
		p, err := s.authenticate(r)
		switch {
		case audit.ErrorCode(err) == audit.CodeUnavailable:
			s.opts.Logger.Warn("credentials could not be checked", "route", route, "err", err)
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "credentials cannot be checked right now, retry later")
			return
		case errors.Is(err, errCSRF):
			s.recordDenied(r, route, audit.Principal{}, http.StatusForbidden, "forbidden: console session without its CSRF token")
			writeError(w, http.StatusForbidden, string(audit.CodeForbidden), err.Error())
			return
		case err != nil:
			s.limits.FailedAuth(addr)
			s.recordDenied(r, route, audit.Principal{}, http.StatusUnauthorized, "unauthorized: no valid credentials")
			w.Header().Set("WWW-Authenticate", `Bearer realm="audit-worker"`)
			writeError(w, http.StatusUnauthorized, string(audit.CodeUnauthorized),
				"a valid API key or token is required: Authorization: Bearer <key>")
			return
		}
		if !p.Can(rt.Perm) {
			s.recordDenied(r, route, p, http.StatusForbidden,
				fmt.Sprintf("forbidden: role %s lacks %s", p.Role, rt.Perm))
			writeError(w, http.StatusForbidden, string(audit.CodeForbidden),
				fmt.Sprintf("role %q may not call %s (it needs %s)", p.Role, route, rt.Perm))
			return
		}
		if ok, retry := s.limits.AllowPrincipal(p); !ok {
			tooMany(w, retry, "rate limit of "+p.ID+" exceeded")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// authenticate reads the bearer credential, else the console's session
// cookie (session.go); neither is ErrUnauthorized.
func (s *Server) authenticate(r *http.Request) (audit.Principal, error) {
	token, ok := access.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		return s.authenticateSession(r)
	}
	if s.opts.Auth == nil {
		return audit.Principal{}, access.ErrUnauthorized
	}
	return s.opts.Auth.Authenticate(r.Context(), token)
}

// mayRead reports whether the request's credentials grant perm: open routes
// show details to such principals only (health details, for example). The
// answer tells a valid key from a wrong one, so a wrong credential counts
// against the client address as on any route, and a blocked address is told
// nothing more than a caller without credentials.
func (s *Server) mayRead(r *http.Request, perm audit.Permission) bool {
	if _, ok := access.BearerToken(r.Header.Get("Authorization")); !ok {
		return false
	}
	addr := clientAddr(r)
	if blocked, _ := s.limits.AddressBlocked(addr); blocked {
		return false
	}
	p, err := s.authenticate(r)
	if audit.ErrorCode(err) == audit.CodeUnauthorized {
		s.limits.FailedAuth(addr)
	}
	return err == nil && p.Can(perm)
}

// record stores an access of the request's principal.
func (s *Server) record(r *http.Request, a access.Access) {
	if s.opts.Records == nil {
		return
	}
	if a.Principal.ID == "" {
		a.Principal = principalOf(r.Context())
	}
	if a.Details == nil {
		a.Details = map[string]any{}
	}
	// A path is the caller's to choose: clipped, so that a huge one cannot
	// make the record too large to store.
	a.Details["route"] = clip(r.Method+" "+r.URL.Path, maxRecordedRoute)
	a.Details["clientAddress"] = clientAddr(r).String()
	if ua := r.UserAgent(); ua != "" {
		a.Details["userAgent"] = clip(ua, 256)
	}
	s.opts.Records.Record(a)
}

// recordDenied records a refused request. Without a principal the caller is
// "anonymous": a key id is no secret, so a credential that merely names one
// must not make its owner the author of someone else's failures; the id it
// claimed is kept in the details (claimedKey).
func (s *Server) recordDenied(r *http.Request, route string, p audit.Principal, status int, outcome string) {
	a := access.Access{Action: access.ActionDenied, Principal: p, Outcome: outcome,
		Details: map[string]any{"httpStatus": status, "deniedRoute": route}}
	if p.ID == "" {
		a.PrincipalID = "anonymous"
		if token, ok := access.BearerToken(r.Header.Get("Authorization")); ok {
			if id, _, ok := audit.ParseAPIKey(token); ok {
				a.Details["claimedKey"] = "key:" + id
			}
		}
	}
	if p.ID != "" && !p.AllOrgs() {
		a.Organizations = p.Organizations
	}
	s.record(r, a)
}

// maxRecordedRoute bounds the request path an access record keeps.
const maxRecordedRoute = 1024

// clientAddr is the address the request came from. Forwarded headers are not
// trusted: anyone can write them.
func clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, _ := netip.ParseAddr(host)
	return addr.Unmap()
}

func tooMany(w http.ResponseWriter, retry time.Duration, message string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((retry+time.Second-1)/time.Second))))
	writeError(w, http.StatusTooManyRequests, "rate_limited", message)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
