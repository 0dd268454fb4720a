package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
)

// ConsoleOptions configure the web console: its pages, the sessions of the
// people signed in to it, and its live overview (overview.go).
type ConsoleOptions struct {
	// Assets serves the console's pages under /console/ (console.Handler);
	// nil answers them 404. Sessions and the overview stream work without it.
	Assets http.Handler
	// IdleTimeout ends a session unused this long; default 30 minutes.
	IdleTimeout time.Duration
	// MaxLifetime ends a session this long after sign-in, however much it is
	// used; default 8 hours.
	MaxLifetime time.Duration
	// MaxSessions bounds the sessions this replica keeps in memory; default 10,000.
	MaxSessions int
	// Overview feeds the live overview its per-second series and the circuit
	// breaker's history; *telemetry.Metrics implements it. Nil: the stream
	// leaves them out.
	Overview OverviewSource
	// DeadLetterUsage counts the dead letters the store keeps; nil leaves the
	// count out of the overview.
	DeadLetterUsage DeadLetterCounter
	// StreamInterval is how often the overview stream sends; default 1 s.
	StreamInterval time.Duration
	// MaxStreams bounds the overview streams open at once; default 32.
	MaxStreams int
	// Now is the sessions' clock; time.Now when nil.
	Now func() time.Time
}

// The session cookie and the header that carries its CSRF token.
const (
	SessionCookie = "audit_console_session"
	CSRFHeader    = "X-CSRF-Token"
)

const (
	defaultIdleTimeout = 30 * time.Minute
	defaultMaxLifetime = 8 * time.Hour
	defaultMaxSessions = 10000
	maxSignInBody      = 16 << 10
	sessionPruneEvery  = time.Minute
)

// errCSRF refuses a state-changing request made with a session cookie but
// without the session's token: a page of another site can make the browser
// send the cookie, never read the token.
var errCSRF = audit.Errorf(audit.CodeForbidden,
	"a request made with a console session cookie must carry the session's token in the %s header", CSRFHeader)

// consoleState is what the server keeps for the console: sessions, and the
// overview streams (overview.go).
type consoleState struct {
	sessions *sessionStore
	streams  *streamHub
}

// session is one signed-in browser. It keeps the credential it was opened
// with, in this process's memory only, to check it again on every request:
// a key revoked, expired or rotated away ends its sessions as soon as the
// authenticator sees it (within its cache time, 2 s for stored keys), and
// an OIDC session ends with its token.
type session struct {
	credential string
	principal  audit.Principal
	csrf       string
	created    time.Time
	lastSeen   time.Time
}

// sessionStore keeps the sessions of this replica, keyed by the SHA-256 of
// the cookie value so that a lookup's timing says nothing about valid ids.
type sessionStore struct {
	idle, lifetime time.Duration
	max            int
	now            func() time.Time

	mu        sync.Mutex
	byID      map[[sha256.Size]byte]*session
	lastPrune time.Time
}

func newSessionStore(o ConsoleOptions) *sessionStore {
	st := &sessionStore{idle: o.IdleTimeout, lifetime: o.MaxLifetime, max: o.MaxSessions, now: o.Now,
		byID: map[[sha256.Size]byte]*session{}}
	if st.idle <= 0 {
		st.idle = defaultIdleTimeout
	}
	if st.lifetime <= 0 {
		st.lifetime = defaultMaxLifetime
	}
	if st.max <= 0 {
		st.max = defaultMaxSessions
	}
	if st.now == nil {
		st.now = time.Now
	}
	return st
}

func sessionKey(cookie string) [sha256.Size]byte { return sha256.Sum256([]byte(cookie)) }

// randomToken is 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errTooManySessions = audit.Errorf(audit.CodeUnavailable, "too many console sessions are open on this worker; retry later")

// create opens a session and returns its cookie value.
func (st *sessionStore) create(credential string, p audit.Principal) (string, *session, error) {
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.byID) >= st.max || now.Sub(st.lastPrune) >= sessionPruneEvery {
		st.pruneLocked(now)
	}
	if len(st.byID) >= st.max {
		return "", nil, errTooManySessions
	}
	id := randomToken()
	s := &session{credential: credential, principal: p, csrf: randomToken(), created: now, lastSeen: now}
	st.byID[sessionKey(id)] = s
	return id, s, nil
}

// get returns the live session of a cookie value; an expired one is removed.
func (st *sessionStore) get(id string) (session, bool) {
	now := st.now()
	k := sessionKey(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.byID[k]
	if !ok {
		return session{}, false
	}
	if st.expired(s, now) {
		delete(st.byID, k)
		return session{}, false
	}
	return *s, true
}

// touch marks the session used now, which pushes back its idle timeout.
func (st *sessionStore) touch(id string) {
	now := st.now()
	st.mu.Lock()
	if s, ok := st.byID[sessionKey(id)]; ok {
		s.lastSeen = now
	}
	st.mu.Unlock()
}

// end removes a session; it reports whether there was one.
func (st *sessionStore) end(id string) bool {
	k := sessionKey(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.byID[k]
	delete(st.byID, k)
	return ok
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return now.Sub(s.lastSeen) >= st.idle || now.Sub(s.created) >= st.lifetime
}

// pruneLocked drops expired sessions; sessions are pruned as new ones are
// made, so no goroutine is needed and the map never outgrows MaxSessions.
func (st *sessionStore) pruneLocked(now time.Time) {
	for k, s := range st.byID {
		if st.expired(s, now) {
			delete(st.byID, k)
		}
	}
	st.lastPrune = now
}

// expiresAt is when the session ends unless it is used before then.
func (st *sessionStore) expiresAt(s *session) time.Time {
	return minTime(s.lastSeen.Add(st.idle), s.created.Add(st.lifetime))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *Server) routeConsole() {
	s.sessions = newSessionStore(s.opts.Console)
	s.streams = newStreamHub(s.opts.Console)
	s.open("GET", "/console/", "the web console's pages", s.serveConsole)
	s.open("POST", "/console/session", "sign in to the console with an API key or token", s.signIn)
	s.handle("GET", "/console/session", audit.PermAuthenticated, "the console session's principal and CSRF token", s.currentSession)
	s.handle("DELETE", "/console/session", audit.PermAuthenticated, "sign out of the console", s.signOut)
	s.routeOverview()
}

func (s *Server) serveConsole(w http.ResponseWriter, r *http.Request) {
	if s.opts.Console.Assets == nil {
		writeError(w, http.StatusNotFound, string(audit.CodeNotFound), "this worker does not serve the console")
		return
	}
	s.opts.Console.Assets.ServeHTTP(w, r)
}

// sessionHeaders mark the session routes' answers as private to the browser
// that asked, and never rendered or framed.
func sessionHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// sessionView is what the console learns of its session.
type sessionView struct {
	Principal          principalView `json:"principal"`
	CSRFToken          string        `json:"csrfToken,omitempty"` // absent for a bearer caller
	ExpiresAt          *time.Time    `json:"expiresAt,omitempty"`
	IdleTimeoutSeconds int           `json:"idleTimeoutSeconds,omitempty"`
}

type principalView struct {
	ID            string             `json:"id"`
	Name          string             `json:"name,omitempty"`
	Role          audit.Role         `json:"role"`
	Organizations []string           `json:"organizations"`
	Permissions   []audit.Permission `json:"permissions"`
}

func viewPrincipal(p audit.Principal) principalView {
	return principalView{ID: p.ID, Name: p.Name, Role: p.Role, Organizations: p.Organizations, Permissions: p.Role.Permissions()}
}

func (s *Server) viewSession(sess *session) sessionView {
	at := s.sessions.expiresAt(sess).UTC()
	return sessionView{Principal: viewPrincipal(sess.principal), CSRFToken: sess.csrf, ExpiresAt: &at,
		IdleTimeoutSeconds: int(s.sessions.idle / time.Second)}
}

// signIn opens a session for a valid API key or token and sets its cookie.
// It takes JSON only, which a form of another site cannot send, so no site
// can sign a browser in under its own key.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	sessionHeaders(w.Header())
	addr := clientAddr(r)
	if blocked, retry := s.limits.AddressBlocked(addr); blocked {
		tooMany(w, retry, "too many failed authentications from this address")
		return
	}
	credential, status, err := readSignIn(w, r)
	if err != nil {
		writeError(w, status, codeFor(status), err.Error())
		return
	}
	principal, ok := s.signInPrincipal(w, r, credential)
	if !ok {
		return
	}
	if old, err := r.Cookie(SessionCookie); err == nil {
		s.sessions.end(old.Value)
	}
	id, sess, err := s.sessions.create(credential, principal)
	if err != nil {
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), err.Error())
		return
	}
	http.SetCookie(w, sessionCookie(r, id, s.sessions.lifetime))
	s.record(r, access.Access{Action: access.AccessAction("signin"), Principal: principal,
		Organizations: scopeOrgs(principal), Success: true, TargetType: "console_session", Outcome: "signed in to the console"})
	writeJSON(w, http.StatusOK, s.viewSession(sess))
}

// signInPrincipal authenticates a sign-in's credential as the guard does a
// bearer one, and answers the request itself when it may not sign in.
func (s *Server) signInPrincipal(w http.ResponseWriter, r *http.Request, credential string) (audit.Principal, bool) {
	const route = "POST /console/session"
	principal, err := audit.Principal{}, error(access.ErrUnauthorized)
	if s.opts.Auth != nil {
		principal, err = s.opts.Auth.Authenticate(r.Context(), credential)
	}
	switch {
	case audit.ErrorCode(err) == audit.CodeUnavailable:
		s.opts.Logger.Warn("credentials could not be checked", "route", route, "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "credentials cannot be checked right now, retry later")
		return principal, false
	case err != nil:
		s.limits.FailedAuth(clientAddr(r))
		s.recordDenied(r, route, audit.Principal{}, http.StatusUnauthorized, "unauthorized: console sign-in with no valid credentials")
		w.Header().Set("WWW-Authenticate", `Bearer realm="audit-worker"`) // as every 401 must (RFC 9110)
		writeError(w, http.StatusUnauthorized, string(audit.CodeUnauthorized), "credential: not a valid API key or token")
		return principal, false
	case principal.Role == audit.RoleIngest:
		s.recordDenied(r, route, principal, http.StatusForbidden, "forbidden: an ingest key may not sign in to the console")
		writeError(w, http.StatusForbidden, string(audit.CodeForbidden),
			"credential: an ingest key sends events and cannot sign in to the console; use a reader, auditor, operator or admin key")
		return principal, false
	}
	return principal, true
}

// readSignIn reads {"credential": "..."}.
func readSignIn(w http.ResponseWriter, r *http.Request) (string, int, error) {
	if err := checkParams(r.URL.Query()); err != nil {
		return "", http.StatusBadRequest, err
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return "", http.StatusUnsupportedMediaType, errors.New("Content-Type: sign in with application/json, {\"credential\": \"<API key or token>\"}")
	}
	var body struct {
		Credential string `json:"credential"`
	}
	if err := decodeBody(w, r, &body, maxSignInBody); err != nil {
		status := http.StatusBadRequest
		if errors.As(err, new(*http.MaxBytesError)) {
			status = http.StatusRequestEntityTooLarge
		}
		return "", status, fmt.Errorf("body: a JSON object {\"credential\": \"<API key or token>\"} of at most %d bytes: %s", maxSignInBody, clip(err.Error(), 200))
	}
	if body.Credential == "" {
		return "", http.StatusBadRequest, errors.New("credential: required (an API key or a token)")
	}
	return body.Credential, 0, nil
}

// sessionCookie is HttpOnly (no script reads it), SameSite=Strict (no other
// site's page makes the browser send it) and Secure when the browser came
// over TLS.
func sessionCookie(r *http.Request, value string, maxAge time.Duration) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: overTLS(r), SameSite: http.SameSiteStrictMode}
}

// overTLS reports whether the browser reached us over TLS: directly, or
// through a proxy that ends TLS and says so. The forwarded headers are
// trusted here, unlike elsewhere, because they can only make the cookie
// stricter: a client that lies gets a cookie its own browser keeps from
// plain HTTP.
func overTLS(r *http.Request) bool {
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return true
	}
	for _, part := range strings.Split(r.Header.Get("Forwarded"), ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok && strings.EqualFold(k, "proto") && strings.EqualFold(strings.Trim(v, `"`), "https") {
			return true
		}
	}
	return false
}

// currentSession tells the console who it is signed in as and its CSRF
// token (after a reload, the page has only the cookie).
func (s *Server) currentSession(w http.ResponseWriter, r *http.Request) {
	sessionHeaders(w.Header())
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	if _, bearer := access.BearerToken(r.Header.Get("Authorization")); !bearer {
		if c, err := r.Cookie(SessionCookie); err == nil {
			if sess, ok := s.sessions.get(c.Value); ok {
				writeJSON(w, http.StatusOK, s.viewSession(&sess))
				return
			}
		}
	}
	writeJSON(w, http.StatusOK, sessionView{Principal: viewPrincipal(principalOf(r.Context()))})
}

// signOut ends the session of the request's cookie and clears the cookie.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	sessionHeaders(w.Header())
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	ended := false
	if c, err := r.Cookie(SessionCookie); err == nil {
		ended = s.sessions.end(c.Value)
	}
	http.SetCookie(w, sessionCookie(r, "", -time.Second))
	if ended {
		p := principalOf(r.Context())
		s.record(r, access.Access{Action: access.AccessAction("signout"), Organizations: scopeOrgs(p), Success: true,
			TargetType: "console_session", Outcome: "signed out of the console"})
	}
	writeJSON(w, http.StatusOK, map[string]bool{"signedOut": ended})
}

// authenticateSession is the second way in: the console's session cookie.
// A state-changing request must carry the session's CSRF token; the
// session's credential is checked again, so a revoked key ends it.
func (s *Server) authenticateSession(r *http.Request) (audit.Principal, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || s.sessions == nil || s.opts.Auth == nil {
		return audit.Principal{}, access.ErrUnauthorized
	}
	sess, ok := s.sessions.get(c.Value)
	if !ok {
		return audit.Principal{}, access.ErrUnauthorized
	}
	if !safeMethod(r.Method) && subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(sess.csrf)) != 1 {
		return audit.Principal{}, errCSRF
	}
	p, err := s.opts.Auth.Authenticate(r.Context(), sess.credential)
	switch {
	case audit.ErrorCode(err) == audit.CodeUnavailable:
		return audit.Principal{}, err
	case err != nil || p.ID != sess.principal.ID:
		s.sessions.end(c.Value)
		return audit.Principal{}, access.ErrUnauthorized
	}
	s.sessions.touch(c.Value)
	return p, nil
}

// safeMethod reports whether a method only reads (RFC 9110 §9.2.1).
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}
