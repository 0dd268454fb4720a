package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/pipeline"
)

// DeadLetterStore is where refused events are kept; both stores implement it.
type DeadLetterStore interface {
	ListDeadLetters(ctx context.Context, afterID int64, limit int) ([]audit.StoredDeadLetter, error)
	DeleteDeadLetter(ctx context.Context, id int64) error
}

// Limits of the dead-letter list.
const (
	defaultDeadLetterPage = 100
	maxDeadLetterPage     = 500
	// deadLetterScan bounds how many dead letters one list request reads
	// while it looks for those of a reason and of the caller's organisations.
	deadLetterScan = 20000
)

func (s *Server) routeDeadLetters() {
	s.handle("GET", "/v1/dead-letters", audit.PermDeadLetters, "list dead letters", s.withDeadLetters(s.listDeadLetters))
	s.handle("GET", "/v1/dead-letters/{id}", audit.PermDeadLetters, "one dead letter", s.withDeadLetters(s.getDeadLetter))
	s.handle("POST", "/v1/dead-letters/{id}/redrive", audit.PermDeadLetters, "send a dead letter through the pipeline again",
		s.withDeadLetters(s.redriveDeadLetter))
}

func (s *Server) withDeadLetters(h func(w http.ResponseWriter, r *http.Request, store DeadLetterStore)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.DeadLetters == nil {
			writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "dead letters are not available: no store")
			return
		}
		h(w, r, s.opts.DeadLetters)
	}
}

// deadLetterView is a dead letter as the API shows it: the payload as JSON
// when it is JSON, else as a string.
type deadLetterView struct {
	ID             int64              `json:"id"`
	IdempotencyKey string             `json:"idempotencyKey"`
	Source         string             `json:"source"`
	Reason         string             `json:"reason"`
	Message        string             `json:"message"`
	Errors         []audit.FieldError `json:"errors,omitempty"`
	Count          int                `json:"count"`
	OrganizationID string             `json:"organizationId,omitempty"`
	ReceivedAt     time.Time          `json:"receivedAt"`
	FirstFailedAt  time.Time          `json:"firstFailedAt"`
	Payload        json.RawMessage    `json:"payload"`
}

func viewDeadLetter(d *audit.StoredDeadLetter) deadLetterView {
	v := deadLetterView{ID: d.ID, IdempotencyKey: d.IdempotencyKey, Source: d.Source, Reason: d.Reason,
		Message: d.Message, Errors: d.Errors, Count: d.Count, OrganizationID: d.OrganizationID(),
		ReceivedAt: d.ReceivedAt, FirstFailedAt: d.StoredAt, Payload: d.Payload}
	if !json.Valid(d.Payload) {
		v.Payload, _ = json.Marshal(string(d.Payload))
	}
	return v
}

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request, store DeadLetterStore) {
	q := r.URL.Query()
	if err := checkParams(q, "reason", "limit", "after"); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	reason, err := singleParam(q, "reason")
	limit, after := defaultDeadLetterPage, int64(0)
	if err == nil {
		limit, err = intParam(q, "limit", 1, maxDeadLetterPage, defaultDeadLetterPage)
	}
	if err == nil {
		var a int
		a, err = intParam(q, "after", 0, 1<<62, 0)
		after = int64(a)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	p := principalOf(r.Context())
	views := []deadLetterView{}
	scanned, next := 0, int64(0)
	for len(views) < limit && scanned < deadLetterScan {
		page, err := store.ListDeadLetters(r.Context(), after, 500)
		if err != nil {
			s.writeStoreError(w, r, "list dead letters", err)
			return
		}
		for i := range page {
			d := &page[i]
			after = d.ID
			if (reason == "" || d.Reason == reason) && p.InScope(d.OrganizationID()) {
				views = append(views, viewDeadLetter(d))
				if len(views) == limit {
					break
				}
			}
		}
		scanned += len(page)
		if len(page) < 500 {
			after = 0 // the end: no next page
			break
		}
	}
	if after != 0 && (len(views) == limit || scanned >= deadLetterScan) {
		next = after
	}
	s.record(r, access.Access{Action: access.ActionDLQRead, Organizations: scopeOrgs(p), Success: true,
		TargetType: "dead_letter", Outcome: fmt.Sprintf("%d dead letters", len(views)),
		Details: map[string]any{"filters": q, "resultCount": len(views)}})
	out := map[string]any{"deadLetters": views}
	if next != 0 {
		out["nextAfter"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

// scopeOrgs is the organisations a principal's access concerns when it is
// not about one in particular: its scope, or none for every organisation.
func scopeOrgs(p audit.Principal) []string {
	if p.AllOrgs() {
		return nil
	}
	return p.Organizations
}

// scopedDeadLetter reads the dead letter named in the path; one of another
// organisation is answered like a missing one (404).
func (s *Server) scopedDeadLetter(w http.ResponseWriter, r *http.Request, store DeadLetterStore) (audit.StoredDeadLetter, bool) {
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), fmt.Sprintf("id: a dead letter id is a positive integer (is %q)", clip(raw, 32)))
		return audit.StoredDeadLetter{}, false
	}
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return audit.StoredDeadLetter{}, false
	}
	dls, err := store.ListDeadLetters(r.Context(), id-1, 1)
	if err == nil && (len(dls) == 0 || dls[0].ID != id || !principalOf(r.Context()).InScope(dls[0].OrganizationID())) {
		err = audit.Errorf(audit.CodeNotFound, "dead letter %d: no such dead letter", id)
	}
	if err != nil {
		s.writeStoreError(w, r, "get dead letter", err)
		return audit.StoredDeadLetter{}, false
	}
	return dls[0], true
}

func (s *Server) getDeadLetter(w http.ResponseWriter, r *http.Request, store DeadLetterStore) {
	d, ok := s.scopedDeadLetter(w, r, store)
	if !ok {
		return
	}
	s.record(r, access.Access{Action: access.ActionDLQRead, Organizations: orgList(d.OrganizationID()), Success: true,
		TargetType: "dead_letter", TargetID: strconv.FormatInt(d.ID, 10), Outcome: "1 dead letter"})
	writeJSON(w, http.StatusOK, viewDeadLetter(&d))
}

// redriveDeadLetter sends a refused event through the pipeline again, with
// its idempotency key (so it is stored at most once), after a fix of the
// configuration or the store. Stored (or found stored), the dead letter is
// removed; refused again, it stays, its count raised.
func (s *Server) redriveDeadLetter(w http.ResponseWriter, r *http.Request, store DeadLetterStore) {
	// The route takes no body: a client sending one expects something this
	// route does not do. An empty object is what some clients always send.
	var none struct{}
	if err := decodeBody(w, r, &none, maxKeyRequest); err != nil && !errors.Is(err, io.EOF) {
		writeBodyError(w, err)
		return
	}
	d, ok := s.scopedDeadLetter(w, r, store)
	if !ok {
		return
	}
	if s.opts.Ingester == nil {
		writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "the pipeline is not available")
		return
	}
	outcomes, err := s.opts.Ingester.Submit(r.Context(), []pipeline.Input{{Payload: d.Payload,
		IdempotencyKey: d.IdempotencyKey, Source: d.Source, ReceivedAt: time.Now()}})
	if err != nil {
		s.writeStoreError(w, r, "redrive dead letter", err)
		return
	}
	o := outcomes[0]
	removed := false
	if o.Status != pipeline.StatusRejected {
		if err := store.DeleteDeadLetter(r.Context(), d.ID); err != nil && audit.ErrorCode(err) != audit.CodeNotFound {
			s.opts.Logger.Warn("a redriven dead letter was stored but not removed", "deadLetter", d.ID, "err", err)
		} else {
			removed = true
		}
	}
	s.record(r, access.Access{Action: access.AccessAction("redrive"), Organizations: orgList(d.OrganizationID()),
		Success: o.Status != pipeline.StatusRejected, TargetType: "dead_letter", TargetID: strconv.FormatInt(d.ID, 10),
		Outcome: string(o.Status) + " " + o.Reason})
	writeJSON(w, http.StatusOK, map[string]any{"deadLetter": d.ID, "outcome": o, "removed": removed})
}

// intParam reads an optional integer parameter within [lo, hi].
func intParam(q url.Values, name string, lo, hi, def int) (int, error) {
	v, err := singleParam(q, name)
	if err != nil || v == "" {
		return def, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: an integer from %d to %d (is %q)", name, lo, hi, clip(v, 32))
	}
	return n, nil
}
