package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/export"
)

// EventOptions configures the read side: search, single events, verification
// and exports.
type EventOptions struct {
	// Reader reads stored events; nil answers the event routes with 503.
	Reader audit.EventReader
	// Exports keeps export manifests; Secrets the key that signs cursors.
	Exports audit.ExportStore
	Secrets audit.SecretStore
	// HMACKey returns the producers' signing key (security.encryptionKey) in
	// force, for single-event verification; nil or empty: signatures are not checked.
	HMACKey func() []byte
	// DefaultWindow is how far back a search looks without since; default 30 days.
	DefaultWindow time.Duration
}

// Page sizes of a search.
const (
	defaultPage = 100
	maxPage     = 1000
)

// searchParams are the filters of a search and an export.
var searchParams = []string{"organizationId", "principalId", "action", "status", "targetResourceType",
	"targetResourceId", "dataClassification", "correlationId", "sessionId", "ipAddress", "since", "until", "order"}

// accessActionPrefixes are the actions of the worker's own records of
// accesses and key changes: only callers that may read the access log see them.
var accessActionPrefixes = []string{"audit.access.", "audit.key."}

func (s *Server) routeEvents() {
	s.handle("GET", "/v1/events", audit.PermEventsRead, "search events", s.withEvents(s.searchEvents))
	s.handle("GET", "/v1/events/export", audit.PermEventsExport, "export events (ndjson, csv, json)", s.withEvents(s.exportEvents))
	s.handle("GET", "/v1/events/{id}", audit.PermEventsRead, "one event", s.withEvents(s.getEvent))
	s.handle("GET", "/v1/events/{id}/verify", audit.PermEventsVerify, "verify one event", s.withEvents(s.verifyEvent))
	s.handle("GET", "/v1/exports/{id}", audit.PermEventsExport, "an export's manifest", s.withEvents(s.getExport))
}

func (s *Server) withEvents(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Events.Reader == nil {
			writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "events cannot be read: no event reader is configured")
			return
		}
		h(w, r)
	}
}

// eventQuery turns a search's parameters into a query within the caller's
// scope. The time range defaults to the last DefaultWindow.
func (s *Server) eventQuery(r *http.Request, q url.Values, now time.Time) (audit.EventQuery, int, error) {
	var eq audit.EventQuery
	var err error
	str := func(name string) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = singleParam(q, name)
		return v
	}
	eq.PrincipalID, eq.Action = str("principalId"), str("action")
	eq.Status, eq.DataClassification = audit.Status(str("status")), audit.Classification(str("dataClassification"))
	eq.TargetResourceType, eq.TargetResourceID = str("targetResourceType"), str("targetResourceId")
	eq.CorrelationID, eq.SessionID, eq.IPAddress = str("correlationId"), str("sessionId"), str("ipAddress")
	order, since, until := str("order"), str("since"), str("until")
	if err != nil {
		return eq, http.StatusBadRequest, err
	}
	switch eq.Status {
	case "", audit.StatusAttempt, audit.StatusSuccess, audit.StatusFailure:
	default:
		return eq, http.StatusBadRequest, fmt.Errorf("status: one of attempt, success, failure (is %q)", clip(string(eq.Status), 64))
	}
	switch eq.DataClassification {
	case "", audit.ClassPublic, audit.ClassInternal, audit.ClassConfidential, audit.ClassPHI:
	default:
		return eq, http.StatusBadRequest, fmt.Errorf("dataClassification: one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI (is %q)", clip(string(eq.DataClassification), 64))
	}
	switch order {
	case "", "desc":
		eq.Order = audit.OrderDesc
	case "asc":
		eq.Order = audit.OrderAsc
	default:
		return eq, http.StatusBadRequest, fmt.Errorf("order: asc or desc (is %q)", clip(order, 64))
	}
	if eq.Since, err = timeParam(q, "since"); err != nil {
		return eq, http.StatusBadRequest, err
	}
	if eq.Until, err = timeParam(q, "until"); err != nil {
		return eq, http.StatusBadRequest, err
	}
	if since == "" {
		window := s.opts.Events.DefaultWindow
		if window <= 0 {
			window = 30 * 24 * time.Hour
		}
		eq.Since = now.Add(-window)
	}
	// As the stores compare them: the cursor carries the bounds at that
	// precision, so every page of a search sees the same range.
	eq.Since, eq.Until = eq.Bounds()
	if until != "" && !eq.Until.After(eq.Since) {
		return eq, http.StatusBadRequest, fmt.Errorf("until: must be after since (%s)", eq.Since.Format(time.RFC3339Nano))
	}
	if eq.Action != "" && strings.Contains(eq.Action, "*") {
		if _, ok := eq.ActionPrefix(); !ok || strings.Count(eq.Action, "*") > 1 {
			return eq, http.StatusBadRequest, fmt.Errorf("action: an exact action, or a prefix written like auth.* (is %q)", clip(eq.Action, 64))
		}
	}
	p := principalOf(r.Context())
	if eq.Organizations, err = p.ScopeOrganizations(listParam(q, "organizationId")); err != nil {
		return eq, http.StatusForbidden, fmt.Errorf("organizationId: %w", err)
	}
	if !p.Can(audit.PermAccessLog) {
		eq.ExcludeActionPrefixes = accessActionPrefixes
	}
	return eq, 0, nil
}

// cursorKey returns the key that signs cursors, shared by every replica
// through the store; it is read once.
func (s *Server) cursorKey(ctx context.Context) ([]byte, error) {
	s.cursorOnce.Lock()
	defer s.cursorOnce.Unlock()
	if s.cursorSecret != nil {
		return s.cursorSecret, nil
	}
	if s.opts.Events.Secrets == nil {
		return nil, audit.Errorf(audit.CodeUnavailable, "no secret store: cursors cannot be signed")
	}
	key, err := s.opts.Events.Secrets.Secret(ctx, "search-cursor", 32)
	if err != nil {
		return nil, err
	}
	s.cursorSecret = key
	return key, nil
}

// codeFor is the error code of a 4xx the handlers answer themselves.
func codeFor(status int) string {
	if status == http.StatusForbidden {
		return string(audit.CodeForbidden)
	}
	return string(audit.CodeInvalid)
}

type cursorState struct {
	cursorOnce   sync.Mutex
	cursorSecret []byte
}

// searchEvents answers GET /v1/events: a page of events in keyset order and,
// when more follow, the cursor of the next page.
func (s *Server) searchEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := checkParams(q, append([]string{"limit", "cursor"}, searchParams...)...); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	now := time.Now()
	eq, status, err := s.eventQuery(r, q, now)
	if err != nil {
		writeError(w, status, codeFor(status), err.Error())
		return
	}
	limit := defaultPage
	if v, err := singleParam(q, "limit"); err != nil || v != "" {
		n, convErr := strconv.Atoi(v)
		if err != nil || convErr != nil || n < 1 || n > maxPage {
			writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), fmt.Sprintf("limit: an integer from 1 to %d (is %q)", maxPage, clip(v, 32)))
			return
		}
		limit = n
	}
	key, err := s.cursorKey(r.Context())
	if err != nil {
		s.writeStoreError(w, r, "search events", err)
		return
	}
	digest := filterDigest(q)
	if raw, err := singleParam(q, "cursor"); err != nil || raw != "" {
		c, cerr := decodeCursor(raw, key, digest, now)
		if err == nil {
			err = cerr
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
			return
		}
		eq.Order, eq.After, eq.Since, eq.Until = c.order, &c.after, c.since, c.until
	}
	eq.Limit = limit + 1 // one more tells whether another page follows
	events, err := s.opts.Events.Reader.SearchEvents(r.Context(), eq)
	if err != nil {
		s.recordQuery(r, access.ActionQuery, eq, nil, err)
		s.writeStoreError(w, r, "search events", err)
		return
	}
	next := ""
	if len(events) > limit {
		events = events[:limit]
		last := cursor{order: eq.Order, after: audit.PositionOf(&events[limit-1]), since: eq.Since, until: eq.Until,
			filters: digest, issued: now}
		next = last.encode(key)
	}
	s.recordQuery(r, access.ActionQuery, eq, events, nil)
	body := make([]byte, 0, 1024*len(events)+64)
	body = append(body, `{"events":[`...)
	for i := range events {
		if i > 0 {
			body = append(body, ',')
		}
		body = export.AppendEvent(body, &events[i])
	}
	body = append(body, ']')
	if next != "" {
		body = append(body, `,"nextCursor":"`...)
		body = append(body, next...)
		body = append(body, '"')
	}
	body = append(body, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// recordQuery records a read of events: one access record for each
// organisation whose events were read (or the organisations searched, when
// none came back).
func (s *Server) recordQuery(r *http.Request, action string, eq audit.EventQuery, events []audit.StoredEvent, err error) {
	orgs := organizationsOf(events)
	if len(orgs) == 0 {
		orgs = eq.Organizations
	}
	a := access.Access{Action: action, Organizations: orgs, Success: err == nil, TargetType: "audit_event",
		Outcome: fmt.Sprintf("%d events", len(events)),
		Details: map[string]any{"filters": redactFilters(r.URL.Query()), "resultCount": len(events)}}
	if err != nil {
		a.Outcome = err.Error()
	}
	s.record(r, a)
}

// redactFilters are the filters as a record keeps them: without the cursor,
// which is a position, not a filter.
func redactFilters(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		if k != "cursor" {
			out[k] = v
		}
	}
	return out
}

func organizationsOf(events []audit.StoredEvent) []string {
	var orgs []string
	for i := range events {
		if o := events[i].OrganizationID; o != "" && !slices.Contains(orgs, o) {
			orgs = append(orgs, o)
		}
	}
	return orgs
}

// scopedEvent reads the event named in the path. One the caller may not see
// (another organisation's, or an access record without PermAccessLog) is
// answered like a missing one: 404.
func (s *Server) scopedEvent(w http.ResponseWriter, r *http.Request, op string, known ...string) (audit.StoredEvent, bool) {
	raw := r.PathValue("id")
	seq, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || seq < 1 {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), fmt.Sprintf("id: an event id is a positive integer (is %q)", clip(raw, 32)))
		return audit.StoredEvent{}, false
	}
	if err := checkParams(r.URL.Query(), known...); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return audit.StoredEvent{}, false
	}
	e, err := s.opts.Events.Reader.GetEventBySeq(r.Context(), seq)
	p := principalOf(r.Context())
	if err == nil && (!p.InScope(e.OrganizationID) ||
		(!p.Can(audit.PermAccessLog) && slices.ContainsFunc(accessActionPrefixes, func(pre string) bool { return strings.HasPrefix(e.Action, pre) }))) {
		err = audit.Errorf(audit.CodeNotFound, "event %d: no such event", seq)
	}
	if err != nil {
		s.writeStoreError(w, r, op, err)
		return audit.StoredEvent{}, false
	}
	return e, true
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	e, ok := s.scopedEvent(w, r, "get event")
	if !ok {
		return
	}
	s.record(r, access.Access{Action: access.ActionQuery, Organizations: orgList(e.OrganizationID), Success: true,
		TargetType: "audit_event", TargetID: strconv.FormatInt(e.Seq, 10), Outcome: "1 event"})
	body := append(export.AppendEvent(nil, &e), '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

type verification struct {
	ID int64 `json:"id"`
	audit.Verification
}

func (s *Server) verifyEvent(w http.ResponseWriter, r *http.Request) {
	e, ok := s.scopedEvent(w, r, "verify event")
	if !ok {
		return
	}
	var key []byte
	if s.opts.Events.HMACKey != nil {
		key = s.opts.Events.HMACKey()
	}
	v := audit.VerifyStored(&e, key)
	if c, ok := s.inclusionCheck(r, &e); ok {
		v.Checks = append(v.Checks, c)
		v.Verified = v.Verified && c.OK
	}
	outcome := "verified"
	if !v.Verified {
		outcome = "verification failed: " + strings.Join(failedChecks(v), ", ")
	}
	s.record(r, access.Access{Action: access.ActionVerify, Organizations: orgList(e.OrganizationID), Success: true,
		TargetType: "audit_event", TargetID: strconv.FormatInt(e.Seq, 10), Outcome: outcome})
	writeJSON(w, http.StatusOK, verification{ID: e.Seq, Verification: v})
}

func failedChecks(v audit.Verification) []string {
	var names []string
	for _, c := range v.Checks {
		if !c.OK {
			names = append(names, c.Name)
		}
	}
	return names
}

// exportEvents streams every event matching the search's filters, in
// constant memory, then keeps the export's manifest (row count, first and
// last id, SHA-256 of the bytes sent) for GET /v1/exports/{id}. The
// checksum and the row count also come as trailers of the response.
func (s *Server) exportEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := checkParams(q, append([]string{"format", "gzip"}, searchParams...)...); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	formatName, err := singleParam(q, "format")
	if err == nil && formatName == "" {
		formatName = string(export.NDJSON)
	}
	var format export.Format
	if err == nil {
		format, err = export.ParseFormat(formatName)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), "format: one of ndjson, csv, json")
		return
	}
	gz := false
	if v, err := singleParam(q, "gzip"); err != nil || v != "" {
		if gz, err = strconv.ParseBool(v); err != nil {
			writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), fmt.Sprintf("gzip: true or false (is %q)", clip(v, 32)))
			return
		}
	}
	now := time.Now()
	eq, status, err := s.eventQuery(r, q, now)
	if err != nil {
		writeError(w, status, codeFor(status), err.Error())
		return
	}
	p := principalOf(r.Context())
	m := audit.ExportManifest{ID: newExportID(), Format: string(format), Gzip: gz, Filters: redactFilters(q),
		Organizations: eq.Organizations, Caller: p.ID, GeneratedAt: now.UTC()}
	if m.Organizations == nil {
		m.Organizations = []string{audit.AllOrganizations}
	}
	if !eq.Since.IsZero() {
		m.From = &eq.Since
	}
	if !eq.Until.IsZero() {
		m.To = &eq.Until
	}
	name := "audit-export-" + m.ID + "." + string(format)
	if gz {
		name += ".gz"
	}
	h := w.Header()
	h.Set("Content-Type", format.ContentType())
	if gz {
		h.Set("Content-Type", "application/gzip")
	}
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("X-Export-Id", m.ID)
	h.Set("Trailer", "X-Export-Rows, X-Export-SHA256, X-Export-Complete")
	w.WriteHeader(http.StatusOK)
	res, err := export.Stream(r.Context(), s.opts.Events.Reader, eq, format, gz, w, nil)
	m.CompletedAt, m.RowCount, m.FirstID, m.LastID = time.Now().UTC(), res.Rows, res.FirstID, res.LastID
	m.Bytes, m.SHA256, m.Complete = res.Bytes, res.SHA256, err == nil
	if err != nil {
		m.Error = err.Error()
		s.opts.Logger.Warn("export stopped early", "export", m.ID, "rows", res.Rows, "err", err)
	}
	h.Set("X-Export-Rows", strconv.FormatInt(res.Rows, 10))
	h.Set("X-Export-SHA256", res.SHA256)
	h.Set("X-Export-Complete", strconv.FormatBool(m.Complete))
	if s.opts.Events.Exports != nil {
		// The client may have gone; the manifest is kept all the same.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		if err := s.opts.Events.Exports.SaveExport(ctx, m); err != nil {
			s.opts.Logger.Warn("export manifest not kept", "export", m.ID, "err", err)
		}
	}
	a := access.Access{Action: access.ActionExport, Organizations: eq.Organizations, Success: m.Complete,
		TargetType: "audit_event", TargetID: m.ID, Outcome: fmt.Sprintf("%d events, sha256 %s", m.RowCount, m.SHA256),
		Details: map[string]any{"filters": m.Filters, "resultCount": m.RowCount, "format": m.Format}}
	s.record(r, a)
}

func newExportID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "exp_" + hex.EncodeToString(b)
}

func (s *Server) getExport(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	if s.opts.Events.Exports == nil {
		writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "export manifests are not kept: no export store")
		return
	}
	var m audit.ExportManifest
	err := checkText("id", id)
	if err == nil && (len(id) > 64 || !strings.HasPrefix(id, "exp_")) {
		err = audit.Errorf(audit.CodeNotFound, "export %q: no such export", clip(id, 64))
	}
	if err == nil {
		m, err = s.opts.Events.Exports.GetExport(r.Context(), id)
	}
	if err == nil && !m.VisibleTo(principalOf(r.Context())) {
		err = audit.Errorf(audit.CodeNotFound, "export %s: no such export", id)
	}
	if err != nil {
		if audit.ErrorCode(err) == "" {
			err = audit.Errorf(audit.CodeInvalid, "%v", err)
		}
		s.writeStoreError(w, r, "get export", err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}
