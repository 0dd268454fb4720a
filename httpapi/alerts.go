package httpapi

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
)

// AlertOptions configures the alerts API.
type AlertOptions struct {
	// Store keeps the alerts; nil answers every alerts route with 503.
	Store audit.AlertStore
}

// Limits of a transition request.
const (
	maxTransitionBody = 16 << 10
	maxByChars        = 200
	maxNoteChars      = 4000
)

func (s *Server) routeAlerts() {
	s.handle("GET", "/v1/alerts", audit.PermAlertsRead, "list alerts", s.withAlerts(s.listAlerts))
	s.handle("GET", "/v1/alerts/statistics", audit.PermAlertsRead, "count alerts", s.withAlerts(s.alertStatistics))
	s.handle("GET", "/v1/alerts/{id}", audit.PermAlertsRead, "one alert", s.withAlerts(s.getAlert))
	for _, t := range []struct {
		action string
		to     audit.AlertStatus
	}{
		{"acknowledge", audit.AlertAcknowledged},
		{"resolve", audit.AlertResolved},
		{"dismiss", audit.AlertDismissed},
	} {
		s.handle("POST", "/v1/alerts/{id}/"+t.action, audit.PermAlertsManage, t.action+" an alert",
			s.withAlerts(s.transitionAlert(t.action, t.to)))
	}
}

type alertHandler func(w http.ResponseWriter, r *http.Request, store audit.AlertStore)

// withAlerts answers 503 when the worker runs without an alert store.
func (s *Server) withAlerts(h alertHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		store := s.opts.Alerts.Store
		if store == nil {
			writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "alerts are not available: no alert store is configured")
			return
		}
		h(w, r, store)
	}
}

type alertList struct {
	Alerts     []audit.Alert `json:"alerts"`
	NextCursor string        `json:"nextCursor,omitempty"` // absent on the last page
}

// scopeAlerts narrows a filter to the caller's organisations: a named
// organisation outside them is refused (403); alerts of no organisation
// (system alerts) are seen by callers whose scope is every organisation.
func scopeAlerts(w http.ResponseWriter, r *http.Request, f *audit.AlertFilter) bool {
	p := principalOf(r.Context())
	var requested []string
	if f.OrganizationID != "" {
		requested = []string{f.OrganizationID}
	}
	orgs, err := p.ScopeOrganizations(requested)
	if err != nil {
		writeError(w, http.StatusForbidden, string(audit.CodeForbidden), "organizationId: "+err.Error())
		return false
	}
	if orgs != nil {
		f.Organizations = orgs
	}
	return true
}

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request, store audit.AlertStore) {
	f, none, err := parseAlertFilter(r.URL.Query(), true)
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	if !scopeAlerts(w, r, &f) {
		return
	}
	var alerts []audit.Alert
	var next string
	if !none {
		if alerts, next, err = store.ListAlerts(r.Context(), f); err != nil {
			s.writeStoreError(w, r, "list alerts", err)
			return
		}
	}
	if alerts == nil {
		alerts = []audit.Alert{}
	}
	s.record(r, access.Access{Action: access.ActionAlerts, Organizations: f.Organizations, Success: true,
		Outcome: fmt.Sprintf("%d alerts", len(alerts)), TargetType: "alert",
		Details: map[string]any{"filters": r.URL.Query(), "resultCount": len(alerts)}})
	writeJSON(w, http.StatusOK, alertList{Alerts: alerts, NextCursor: next})
}

func (s *Server) alertStatistics(w http.ResponseWriter, r *http.Request, store audit.AlertStore) {
	f, none, err := parseAlertFilter(r.URL.Query(), false)
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	if !scopeAlerts(w, r, &f) {
		return
	}
	st := audit.NewAlertStatistics()
	if !none {
		if st, err = store.AlertStatistics(r.Context(), f); err != nil {
			s.writeStoreError(w, r, "alert statistics", err)
			return
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// scopedAlert reads the alert named in the path; an alert outside the
// caller's organisations is answered like a missing one (404), so that its
// existence does not leak.
func (s *Server) scopedAlert(w http.ResponseWriter, r *http.Request, store audit.AlertStore, op string) (audit.Alert, bool) {
	id := r.PathValue("id")
	if err := cmp.Or(checkText("id", id), checkParams(r.URL.Query())); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return audit.Alert{}, false
	}
	a, err := store.GetAlert(r.Context(), id)
	if err == nil && !principalOf(r.Context()).InScope(a.OrganizationID) {
		err = audit.Errorf(audit.CodeNotFound, "alert %s: no such alert", clip(id, 64))
	}
	if err != nil {
		s.writeStoreError(w, r, op, err)
		return audit.Alert{}, false
	}
	return a, true
}

func (s *Server) getAlert(w http.ResponseWriter, r *http.Request, store audit.AlertStore) {
	if a, ok := s.scopedAlert(w, r, store, "get alert"); ok {
		s.record(r, access.Access{Action: access.ActionAlerts, Organizations: orgList(a.OrganizationID),
			Success: true, Outcome: "1 alert", TargetType: "alert", TargetID: a.ID})
		writeJSON(w, http.StatusOK, a)
	}
}

type transitionRequest struct {
	By   string `json:"by"`
	Note string `json:"note"`
}

// transitionAlert changes an alert's status. "by" names the person in the
// alert's history; when left out, the caller's principal does. Either way the
// access record names the principal that made the change.
func (s *Server) transitionAlert(action string, to audit.AlertStatus) alertHandler {
	return func(w http.ResponseWriter, r *http.Request, store audit.AlertStore) {
		req, err := readTransition(w, r)
		if err != nil {
			code := http.StatusBadRequest
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				code = http.StatusRequestEntityTooLarge
			}
			writeError(w, code, string(audit.CodeInvalid), err.Error())
			return
		}
		current, ok := s.scopedAlert(w, r, store, action+" alert")
		if !ok {
			return
		}
		p := principalOf(r.Context())
		if req.By == "" {
			req.By = p.ID
		}
		a, err := store.TransitionAlert(r.Context(), current.ID, to, req.By, req.Note)
		rec := access.Access{Action: access.AccessAction(action), Organizations: orgList(current.OrganizationID),
			Success: err == nil, TargetType: "alert", TargetID: current.ID,
			Outcome: fmt.Sprintf("%s -> %s", current.Status, to), Details: map[string]any{"by": req.By}}
		if err != nil {
			rec.Outcome = err.Error()
		}
		s.record(r, rec)
		if err != nil {
			s.writeStoreError(w, r, action+" alert", err)
			return
		}
		writeJSON(w, http.StatusOK, a)
	}
}

// orgList is the organisations an access to one object concerns.
func orgList(org string) []string {
	if org == "" {
		return nil
	}
	return []string{org}
}

func readTransition(w http.ResponseWriter, r *http.Request) (transitionRequest, error) {
	var req transitionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTransitionBody))
	if err := decodeObject(dec, &req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, fmt.Errorf("request body exceeds %d bytes: %w", tooBig.Limit, err)
		}
		if errors.Is(err, io.EOF) {
			return req, nil // no body: no note, "by" is the caller
		}
		return req, fmt.Errorf("request body must be a JSON object {\"by\", \"note\"}: %v", err)
	}
	if dec.More() {
		return req, errors.New("request body must hold one JSON object")
	}
	req.By = strings.TrimSpace(req.By)
	switch {
	case utf8.RuneCountInString(req.By) > maxByChars:
		return req, fmt.Errorf("by: at most %d characters", maxByChars)
	case utf8.RuneCountInString(req.Note) > maxNoteChars:
		return req, fmt.Errorf("note: at most %d characters", maxNoteChars)
	}
	if err := checkText("by", req.By); err != nil {
		return req, err
	}
	return req, checkText("note", req.Note)
}

// parseAlertFilter reads the query parameters of the alert routes. Lists may
// be comma-separated, repeated, or both; every error names its parameter.
// none reports a filter no alert can match: until is exclusive and no alert
// is older than the zero time, which the stores read as "no bound", so the
// caller answers such a filter itself.
func parseAlertFilter(q url.Values, paging bool) (f audit.AlertFilter, none bool, err error) {
	known := []string{"status", "severity", "type", "organizationId", "since", "until"}
	if paging {
		known = append(known, "limit", "cursor")
	}
	if err := checkParams(q, known...); err != nil {
		return f, false, err
	}
	if err := checkSingle(q, "organizationId", "since", "until", "limit", "cursor"); err != nil {
		return f, false, err
	}
	for _, v := range listParam(q, "status") {
		st := audit.AlertStatus(strings.ToLower(v))
		if !st.Valid() {
			return f, false, fmt.Errorf("status: unknown value %q (active, acknowledged, resolved, dismissed)", v)
		}
		f.Status = append(f.Status, st)
	}
	for _, v := range listParam(q, "severity") {
		sev := audit.Severity(strings.ToUpper(v))
		if sev.Rank() == 0 {
			return f, false, fmt.Errorf("severity: unknown value %q (LOW, MEDIUM, HIGH, CRITICAL)", v)
		}
		f.Severity = append(f.Severity, sev)
	}
	for _, v := range listParam(q, "type") {
		t := audit.AlertType(strings.ToUpper(v))
		if !t.Valid() {
			return f, false, fmt.Errorf("type: unknown value %q (SECURITY, SYSTEM, PERFORMANCE, COMPLIANCE)", v)
		}
		f.Type = append(f.Type, t)
	}
	f.OrganizationID = q.Get("organizationId")
	if err := checkText("organizationId", f.OrganizationID); err != nil {
		return f, false, err
	}
	if f.Since, err = timeParam(q, "since"); err != nil {
		return f, false, err
	}
	if f.Until, err = timeParam(q, "until"); err != nil {
		return f, false, err
	}
	none = q.Get("until") != "" && !f.Until.After(time.Time{})
	if !paging {
		return f, none, nil
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.AlertListMax {
			return f, false, fmt.Errorf("limit: must be an integer from 1 to %d (is %q)", audit.AlertListMax, v)
		}
		f.Limit = n
	}
	if f.After = q.Get("cursor"); f.After != "" {
		if _, _, err := audit.DecodeAlertCursor(f.After); err != nil {
			return f, false, errors.New("cursor: not a cursor returned by this API (nextCursor)")
		}
	}
	return f, none, nil
}

func listParam(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func timeParam(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := audit.ParseQueryTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}
