package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/report"
)

// ReportOptions configures the compliance reports.
type ReportOptions struct {
	// Generator makes reports; nil answers the report routes with 503.
	Generator *report.Generator
	// Runs keeps the scheduled reports' runs; nil answers their list with 503.
	Runs report.RunStore
}

// maxReportRequestBytes bounds a report request's body: criteria are small.
const maxReportRequestBytes = 1 << 20

func (s *Server) routeReports() {
	s.handle("POST", "/v1/reports/{type}", audit.PermReports, "a compliance report (json, csv, pdf)", s.makeReport)
	s.handle("GET", "/v1/reports/runs", audit.PermReports, "the runs of the scheduled reports", s.listReportRuns)
}

// reportFormat picks the format the Accept header asks for: JSON unless it
// names CSV or PDF; a header that accepts none of the three is a 406.
func reportFormat(accept string) (report.Format, bool) {
	if accept == "" {
		return report.JSON, true
	}
	best, bestQ := report.Format(""), -1.0
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		var f report.Format
		switch mt {
		case "text/csv":
			f = report.CSV
		case "application/pdf":
			f = report.PDF
		case "application/json", "*/*", "application/*":
			f = report.JSON
		default:
			continue
		}
		if q > 0 && q > bestQ {
			best, bestQ = f, q
		}
	}
	return best, best != ""
}

// makeReport answers POST /v1/reports/{type} with {"criteria": {...}}: the
// report within the caller's organisations, as JSON, CSV or PDF.
func (s *Server) makeReport(w http.ResponseWriter, r *http.Request) {
	g := s.opts.Reports.Generator
	if g == nil {
		writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "reports are not available: no report generator is configured")
		return
	}
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	typ, err := report.ParseType(r.PathValue("type"))
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), "type: "+strings.TrimPrefix(err.Error(), string(audit.CodeInvalid)+": "))
		return
	}
	format, ok := reportFormat(r.Header.Get("Accept"))
	if !ok {
		writeError(w, http.StatusNotAcceptable, string(audit.CodeInvalid),
			"Accept: a report is application/json, text/csv or application/pdf")
		return
	}
	criteria, err := readCriteria(w, r, g)
	if err != nil {
		status := http.StatusBadRequest
		if errors.As(err, new(*http.MaxBytesError)) {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, string(audit.CodeInvalid), strings.TrimPrefix(err.Error(), string(audit.CodeInvalid)+": "))
		return
	}
	p := principalOf(r.Context())
	orgs, err := p.ScopeOrganizations(criteria.OrganizationIDs)
	if err != nil {
		writeError(w, http.StatusForbidden, string(audit.CodeForbidden), "criteria.organizationIds: "+err.Error())
		return
	}
	rep, err := g.Generate(r.Context(), report.Request{Type: typ, Criteria: criteria, Organizations: orgs, GeneratedBy: p.ID})
	var body bytes.Buffer
	if err == nil {
		err = g.Render(r.Context(), &body, rep, format)
	}
	s.recordReport(r, typ, format, orgs, rep, err)
	if err != nil {
		s.writeStoreError(w, r, "make report", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", format.ContentType())
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="report-%s-%s.%s"`, typ.Short(), rep.Metadata.ReportID, format))
	h.Set("X-Report-Id", rep.Metadata.ReportID)
	w.WriteHeader(http.StatusOK)
	w.Write(body.Bytes())
}

// readCriteria reads {"criteria": {...}} strictly: an unknown member is an
// error, as a misspelt criterion must never widen a report.
func readCriteria(w http.ResponseWriter, r *http.Request, g *report.Generator) (report.Criteria, error) {
	var req struct {
		Criteria json.RawMessage `json:"criteria"`
	}
	if err := decodeBody(w, r, &req, maxReportRequestBytes); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty")
		}
		return report.Criteria{}, fmt.Errorf(`body: {"criteria": {...}} expected: %w`, err)
	}
	if len(req.Criteria) == 0 || string(req.Criteria) == "null" {
		return report.Criteria{}, errors.New(`criteria: required, {"criteria": {"from": …, "to": …}}`)
	}
	return report.ParseCriteria(req.Criteria, g.MaxPeriod())
}

// recordReport records the report as an access to the audit trail: one
// audit.access.report event for each organisation it covered.
func (s *Server) recordReport(r *http.Request, typ report.Type, format report.Format, orgs []string, rep *report.Report, err error) {
	a := access.Access{Action: access.ActionReport, Organizations: orgs, Success: err == nil, TargetType: "report",
		Details: map[string]any{"reportType": string(typ), "format": string(format)}}
	if rep != nil {
		a.TargetID = rep.Metadata.ReportID
		a.Outcome = fmt.Sprintf("%s report of %d events", typ, rep.Summary.TotalEvents)
		a.Details["criteria"] = rep.Metadata.Criteria
		a.Details["resultCount"] = rep.Summary.TotalEvents
	}
	if err != nil {
		a.Outcome = err.Error()
	}
	s.record(r, a)
}

// listReportRuns answers GET /v1/reports/runs[?schedule=…&limit=N&after=ID]:
// the runs of the scheduled reports the caller may see, newest first.
func (s *Server) listReportRuns(w http.ResponseWriter, r *http.Request) {
	if s.opts.Reports.Runs == nil {
		writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "report runs are not kept: no run store")
		return
	}
	q := r.URL.Query()
	if err := checkParams(q, "schedule", "limit", "after"); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	rq := report.RunQuery{Limit: defaultPage}
	var err error
	rq.Schedule, err = singleParam(q, "schedule")
	if err == nil {
		rq.Limit, err = intParam(q, "limit", 1, maxPage, defaultPage)
	}
	if err == nil {
		var after int
		after, err = intParam(q, "after", 1, 1<<62, 0)
		rq.After = int64(after)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	runs, err := s.opts.Reports.Runs.ListRuns(r.Context(), rq)
	if err != nil {
		s.writeStoreError(w, r, "list report runs", err)
		return
	}
	p := principalOf(r.Context())
	visible := []report.Run{}
	for i := range runs {
		if runs[i].VisibleTo(p) {
			visible = append(visible, runs[i])
		}
	}
	out := map[string]any{"runs": visible}
	if len(runs) == rq.Limit {
		out["nextAfter"] = runs[len(runs)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}
