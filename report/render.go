package report

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/export"
)

// Format is a report's file format.
type Format string

const (
	JSON Format = "json"
	CSV  Format = "csv"
	PDF  Format = "pdf"
)

// ParseFormat returns the format named s, or a CodeInvalid error.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case JSON, CSV, PDF:
		return f, nil
	}
	return "", audit.Errorf(audit.CodeInvalid, "format %q: one of json, csv, pdf", clip(s))
}

// ContentType is the format's media type.
func (f Format) ContentType() string {
	switch f {
	case CSV:
		return "text/csv; charset=utf-8"
	case PDF:
		return "application/pdf"
	}
	return "application/json"
}

// Render writes the report in format f, reading its listed events from the
// store as it goes.
func (g *Generator) Render(ctx context.Context, w io.Writer, r *Report, f Format) error {
	switch f {
	case CSV:
		return g.WriteCSV(ctx, w, r)
	case PDF:
		return g.WritePDF(ctx, w, r)
	}
	return g.WriteJSON(ctx, w, r)
}

// WriteJSON writes the report as one JSON object; its "events" are the
// listed events, as the API renders events, streamed from the store.
func (g *Generator) WriteJSON(ctx context.Context, w io.Writer, r *Report) error {
	head, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(head[:len(head)-1]) // without the closing brace
	if r.Listed != nil {
		bw.WriteString(`,"events":[`)
		n := 0
		var line []byte
		err = g.ListedEvents(ctx, r, func(e *audit.StoredEvent) error {
			line = line[:0]
			if n > 0 {
				line = append(line, ',')
			}
			line = export.AppendEvent(append(line, '\n'), e)
			n++
			_, err := bw.Write(line)
			return err
		})
		if err != nil {
			return err
		}
		bw.WriteString("]")
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// table is one of a report's tables, as the CSV and the PDF show it.
type table struct {
	title  string
	header []string
	rows   [][]string
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// tables lists the report's tables: its summary, its own numbers, the
// definitions.
func (r *Report) tables() []table {
	m := r.Metadata
	crit, _ := json.Marshal(m.Criteria)
	meta := table{title: "Report", header: []string{"field", "value"}, rows: [][]string{
		{"reportId", m.ReportID}, {"reportType", string(m.ReportType)},
		{"generatedAt", m.GeneratedAt.Format(time.RFC3339)}, {"generatedBy", m.GeneratedBy},
		{"organizations", fmt.Sprint(m.Organizations)}, {"from", m.Criteria.From.Format(time.RFC3339Nano)},
		{"to", m.Criteria.To.Format(time.RFC3339Nano)}, {"criteria", string(crit)},
		{"definitionsVersion", m.DefinitionsVersion},
	}}
	if m.Checkpoint != nil {
		meta.rows = append(meta.rows, []string{"checkpoint", fmt.Sprintf("%s, %d rows, root %s", m.Checkpoint.Origin, m.Checkpoint.Size, m.Checkpoint.RootHash)})
	}
	s := r.Summary
	summary := table{title: "Summary", header: []string{"measure", "value"}, rows: [][]string{
		{"totalEvents", itoa(s.TotalEvents)}, {"uniquePrincipals", itoa(s.UniquePrincipals)},
		{"uniqueResources", itoa(s.UniqueResources)}, {"integrityViolations", itoa(s.IntegrityViolations)},
	}}
	if s.TimeRange != nil {
		summary.rows = append(summary.rows, []string{"earliest", s.TimeRange.Earliest.Format(time.RFC3339Nano)},
			[]string{"latest", s.TimeRange.Latest.Format(time.RFC3339Nano)})
	}
	out := []table{meta, summary, countTable("Events by status", "status", s.EventsByStatus),
		countTable("Events by data classification", "dataClassification", s.EventsByDataClassification),
		countTable("Events by action", "action", s.EventsByAction)}
	if h := r.HIPAA; h != nil {
		out = append(out, table{title: "HIPAA", header: []string{"measure", "value"}, rows: [][]string{
			{"phiEvents", itoa(h.PHIEvents)}, {"phiAccessEvents", itoa(h.PHIAccessEvents)},
			{"phiModificationEvents", itoa(h.PHIModificationEvents)}, {"unauthorizedAttempts", itoa(h.UnauthorizedAttempts)},
			{"emergencyAccess", itoa(h.EmergencyAccess)}, {"breakGlassEvents", itoa(h.BreakGlassEvents)},
			{"afterHoursAccessEvents", itoa(h.AfterHoursAccessEvents)}}})
		by := table{title: "PHI activity by principal", header: []string{"principalId", "phiEvents", "accesses",
			"modifications", "failures", "distinctPatients", "afterHoursAccesses"}}
		for _, p := range h.ByPrincipal {
			by.rows = append(by.rows, []string{p.PrincipalID, itoa(p.PHIEvents), itoa(p.Accesses), itoa(p.Modifications),
				itoa(p.Failures), itoa(p.DistinctPatients), itoa(p.AfterHoursAccesses)})
		}
		risk := table{title: "Risk assessment", header: []string{"type", "severity", "principalId", "count", "description"}}
		for _, f := range r.Risk.Findings {
			risk.rows = append(risk.rows, []string{f.Type, f.Severity, f.PrincipalID, itoa(f.Count), f.Description})
		}
		out = append(out, by, risk)
	}
	if gd := r.GDPR; gd != nil {
		d, c := gd.DataSubjectRights, gd.ConsentEvents
		out = append(out, table{title: "GDPR", header: []string{"measure", "value"}, rows: [][]string{
			{"personalDataEvents", itoa(gd.PersonalDataEvents)}, {"rights: access", itoa(d.Access)},
			{"rights: rectification", itoa(d.Rectification)}, {"rights: erasure", itoa(d.Erasure)},
			{"rights: portability", itoa(d.Portability)}, {"rights: restriction", itoa(d.Restriction)},
			{"rights: objection", itoa(d.Objection)}, {"consent: total", itoa(c.Total)}, {"consent: given", itoa(c.Given)},
			{"consent: withdrawn", itoa(c.Withdrawn)}, {"consent: updated", itoa(c.Updated)}, {"consent: other", itoa(c.Other)},
			{"crossBorderTransfers", itoa(gd.CrossBorderTransfers)}, {"dataBreaches", itoa(gd.DataBreaches)}}},
			countTable("Legal basis of personal data", "legalBasis", gd.LegalBasisBreakdown))
		if rp := gd.RecordOfProcessing; rp != nil {
			join := func(v []string) string { b, _ := json.Marshal(v); return string(b) }
			out = append(out, table{title: "Record of processing activities (Art. 30)", header: []string{"field", "value"},
				rows: [][]string{{"controller", rp.Controller}, {"purposes", join(rp.Purposes)},
					{"dataSubjectCategories", join(rp.DataSubjectCategories)}, {"personalDataCategories", join(rp.PersonalDataCategories)},
					{"recipientCategories", join(rp.RecipientCategories)}, {"transferSafeguards", rp.TransferSafeguards},
					{"erasureTimeLimits", rp.ErasureTimeLimits}, {"securityMeasures", join(rp.SecurityMeasures)}}})
		}
	}
	if gen := r.General; gen != nil {
		out = append(out, keyCountTable("Failures by action", "action", gen.FailuresByAction),
			keyCountTable("Failures by principal", "principalId", gen.FailuresByPrincipal),
			keyCountTable("Top principals", "principalId", gen.TopPrincipals))
		res := table{title: "Top resources", header: []string{"type", "id", "count"}}
		for _, rc := range gen.TopResources {
			res.rows = append(res.rows, []string{rc.Type, rc.ID, itoa(rc.Count)})
		}
		hours := table{title: "Activity by local hour", header: []string{"hour", "events"}}
		for _, h := range gen.ActivityByHour {
			hours.rows = append(hours.rows, []string{strconv.Itoa(h.Hour), itoa(h.Events)})
		}
		acc := table{title: "Who read the audit trail", header: []string{"principalId", "action", "count"}}
		for _, a := range gen.AccessRecords.By {
			acc.rows = append(acc.rows, []string{a.PrincipalID, a.Action, itoa(a.Count)})
		}
		out = append(out, res, hours, acc)
	}
	if res := r.Results; res != nil {
		rate := "-"
		if res.VerificationRate != nil {
			rate = strconv.FormatFloat(*res.VerificationRate, 'f', 2, 64) + " %"
		}
		out = append(out, table{title: "Integrity", header: []string{"measure", "value"}, rows: [][]string{
			{"totalEvents", itoa(res.TotalEvents)}, {"verifiedEvents", itoa(res.VerifiedEvents)},
			{"failedVerifications", itoa(res.FailedVerifications)}, {"verificationRate", rate}}})
		checks := table{title: "Checks", header: []string{"check", "checked", "passed", "failed", "notVerifiable"}}
		for _, name := range slices.Sorted(maps.Keys(res.Checks)) {
			c := res.Checks[name]
			checks.rows = append(checks.rows, []string{name, itoa(c.Checked), itoa(c.Passed), itoa(c.Failed), itoa(c.NotVerifiable)})
		}
		out = append(out, checks, countTable("Not verifiable", "check: reason", res.NotVerifiable))
		fails := table{title: "Failures", header: []string{"id", "timestamp", "check", "expected", "found"}}
		for _, f := range r.Failures {
			fails.rows = append(fails.rows, []string{itoa(f.ID), f.Timestamp.Format(time.RFC3339Nano), f.Check, f.Expected, f.Found})
		}
		out = append(out, fails)
	}
	act := table{title: "Activity by local " + r.Activity.Unit, header: []string{r.Activity.Unit, "events", "failures"}}
	for _, b := range r.Activity.Buckets {
		act.rows = append(act.rows, []string{b.Start, itoa(b.Events), itoa(b.Failures)})
	}
	defs := table{title: "Definitions", header: []string{"name", "formula"}}
	for _, d := range m.Definitions {
		defs.rows = append(defs.rows, []string{d.Name, d.Formula})
	}
	if r.Listed != nil {
		defs.rows = append(defs.rows, []string{"listed events", r.Listed.Formula})
	}
	return append(out, act, defs)
}

func countTable(title, key string, m map[string]int64) table {
	t := table{title: title, header: []string{key, "count"}}
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return int(m[b] - m[a]) })
	for _, k := range keys {
		t.rows = append(t.rows, []string{k, itoa(m[k])})
	}
	return t
}

func keyCountTable(title, key string, cs []KeyCount) table {
	t := table{title: title, header: []string{key, "count"}}
	for _, c := range cs {
		t.rows = append(t.rows, []string{c.Key, itoa(c.Count)})
	}
	return t
}

// WriteCSV writes the report's tables, each as a title row, a header row
// and its rows, with an empty row between, then the listed events as the
// export's CSV writes them. Every cell passes the export's formula guard.
func (g *Generator) WriteCSV(ctx context.Context, w io.Writer, r *Report) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	write := func(cells []string) error {
		row := make([]string, len(cells))
		for i, c := range cells {
			row[i] = export.Neutralize(c)
		}
		return cw.Write(row)
	}
	for _, t := range r.tables() {
		if err := write([]string{"# " + t.title}); err != nil {
			return err
		}
		write(t.header)
		for _, row := range t.rows {
			write(row)
		}
		write([]string{""})
	}
	if r.Listed != nil {
		write([]string{fmt.Sprintf("# Listed events: %s (%d of %d)", r.Listed.Description, r.Listed.Listed, r.Listed.Total)})
		write(export.CSVHeader)
		var cells []string
		err := g.ListedEvents(ctx, r, func(e *audit.StoredEvent) error {
			cells = export.CSVRecord(cells, e)
			return cw.Write(cells)
		})
		if err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}
