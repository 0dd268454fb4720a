package httpapi

import (
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
	s.mux.HandleFunc("GET /v1/alerts", s.requireKey(s.withAlerts(s.listAlerts)))
	s.mux.HandleFunc("GET /v1/alerts/statistics", s.requireKey(s.withAlerts(s.alertStatistics)))
	s.mux.HandleFunc("GET /v1/alerts/{id}", s.requireKey(s.withAlerts(s.getAlert)))
	for action, to := range map[string]audit.AlertStatus{
		"acknowledge": audit.AlertAcknowledged,
		"resolve":     audit.AlertResolved,
		"dismiss":     audit.AlertDismissed,
	} {
		s.mux.HandleFunc("POST /v1/alerts/{id}/"+action, s.requireKey(s.withAlerts(s.transitionAlert(to))))
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

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request, store audit.AlertStore) {
	f, none, err := parseAlertFilter(r.URL.Query(), true)
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	if none {
		writeJSON(w, http.StatusOK, alertList{Alerts: []audit.Alert{}})
		return
	}
	alerts, next, err := store.ListAlerts(r.Context(), f)
	if err != nil {
		s.writeAlertError(w, r, "list alerts", err)
		return
	}
	if alerts == nil {
		alerts = []audit.Alert{}
	}
	writeJSON(w, http.StatusOK, alertList{Alerts: alerts, NextCursor: next})
}

func (s *Server) alertStatistics(w http.ResponseWriter, r *http.Request, store audit.AlertStore) {
	f, none, err := parseAlertFilter(r.URL.Query(), false)
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	if none {
		writeJSON(w, http.StatusOK, audit.NewAlertStatistics())
		return
	}
	st, err := store.AlertStatistics(r.Context(), f)
	if err != nil {
		s.writeAlertError(w, r, "alert statistics", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) getAlert(w http.ResponseWriter, r *http.Request, store audit.AlertStore) {
	if err := checkText("id", r.PathValue("id")); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	a, err := store.GetAlert(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeAlertError(w, r, "get alert", err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

type transitionRequest struct {
	By   string `json:"by"`
	Note string `json:"note"`
}

func (s *Server) transitionAlert(to audit.AlertStatus) alertHandler {
	return func(w http.ResponseWriter, r *http.Request, store audit.AlertStore) {
		req, err := readTransition(w, r)
		if err == nil {
			err = checkText("id", r.PathValue("id"))
		}
		if err != nil {
			code := http.StatusBadRequest
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				code = http.StatusRequestEntityTooLarge
			}
			writeError(w, code, string(audit.CodeInvalid), err.Error())
			return
		}
		a, err := store.TransitionAlert(r.Context(), r.PathValue("id"), to, req.By, req.Note)
		if err != nil {
			s.writeAlertError(w, r, "transition alert", err)
			return
		}
		writeJSON(w, http.StatusOK, a)
	}
}

func readTransition(w http.ResponseWriter, r *http.Request) (transitionRequest, error) {
	var req transitionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTransitionBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, fmt.Errorf("request body exceeds %d bytes: %w", tooBig.Limit, err)
		}
		if errors.Is(err, io.EOF) {
			return req, errors.New(`by: required (body {"by": "...", "note": "..."})`)
		}
		return req, fmt.Errorf("request body must be a JSON object {\"by\", \"note\"}: %v", err)
	}
	if dec.More() {
		return req, errors.New("request body must hold one JSON object")
	}
	req.By = strings.TrimSpace(req.By)
	switch {
	case req.By == "":
		return req, errors.New("by: required (who changes the alert)")
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

// checkText refuses what no store can keep or match: NUL characters
// (PostgreSQL text cannot hold them, SQLite would) and invalid UTF-8 (from a
// query string or path). Both stores then answer the same, with this message
// instead of the database's.
func checkText(name, v string) error {
	switch {
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%s: must not contain NUL characters", name)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s: must be valid UTF-8", name)
	}
	return nil
}

// writeAlertError turns a store error into its HTTP status by domain code.
func (s *Server) writeAlertError(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch code := audit.ErrorCode(err); code {
	case audit.CodeInvalid:
		writeError(w, http.StatusBadRequest, string(code), err.Error())
	case audit.CodeNotFound:
		writeError(w, http.StatusNotFound, string(code), err.Error())
	case audit.CodeConflict:
		writeError(w, http.StatusConflict, string(code), err.Error())
	case audit.CodeUnavailable:
		if r.Context().Err() != nil {
			return // the client went away
		}
		s.opts.Logger.Warn(op+" failed", "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, string(code), op+": the store is unavailable, retry later")
	default:
		s.opts.Logger.Error(op+" failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", op+" failed")
	}
}

// parseAlertFilter reads the query parameters of the alert routes. Lists may
// be comma-separated, repeated, or both; every error names its parameter.
// none reports a filter no alert can match: until is exclusive and no alert
// is older than the zero time, which the stores read as "no bound", so the
// caller answers such a filter itself.
func parseAlertFilter(q url.Values, paging bool) (f audit.AlertFilter, none bool, err error) {
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
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: must be an RFC 3339 time such as 2026-01-02T15:04:05Z (is %q)", name, v)
	}
	return t, nil
}
