package report

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"

	audit "github.com/smartlogs/audit-worker"
)

// pdfTableRows bounds the rows a summary table shows in the PDF; the JSON
// and the CSV have them all.
const pdfTableRows = 200

// page geometry, in millimetres (A4 portrait, 10 mm margins).
const (
	pageWidth  = 190.0
	lineHeight = 5.0
)

// pdfDoc wraps fpdf with the report's styles. Text goes through the core
// fonts' code page (Windows-1252); a character outside it prints as '?'.
type pdfDoc struct {
	*fpdf.Fpdf
	tr func(string) string
}

// WritePDF writes the report as a PDF document: a title page, the criteria,
// the summary tables, a chart of activity over time, and the listed events.
// Its text is real text (the core Helvetica font), so it can be searched
// and extracted.
func (g *Generator) WritePDF(ctx context.Context, w io.Writer, r *Report) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(10, 10, 10)
	pdf.SetAutoPageBreak(true, 12)
	pdf.SetCreator("audit-worker", true)
	pdf.SetTitle(r.Metadata.ReportType.Title()+" "+r.Metadata.ReportID, true)
	pdf.SetCompression(true)
	d := &pdfDoc{Fpdf: pdf, tr: pdf.UnicodeTranslatorFromDescriptor("")}
	pdf.SetFooterFunc(func() {
		pdf.SetY(-10)
		pdf.SetFont("Helvetica", "", 7)
		pdf.CellFormat(0, 4, d.tr(fmt.Sprintf("%s · %s · page %d", r.Metadata.ReportID, r.Metadata.ReportType, pdf.PageNo())),
			"", 0, "C", false, 0, "")
	})
	d.titlePage(r)
	tables := r.tables()
	pdf.AddPage()
	d.heading("Criteria and scope")
	d.table(tables[0])
	d.heading("Activity over time")
	d.chart(r.Activity)
	for _, t := range tables[1:] {
		d.heading(t.title)
		d.table(t)
	}
	if r.Listed != nil {
		pdf.AddPage()
		d.heading(fmt.Sprintf("Listed events: %s", r.Listed.Description))
		d.text(fmt.Sprintf("%d events meet %s; %d listed.", r.Listed.Total, r.Listed.Formula, r.Listed.Listed))
		widths := []float64{34, 30, 46, 44, 16, 20}
		d.row([]string{"time (UTC)", "principal", "action", "resource", "status", "class"}, widths, true)
		err := g.ListedEvents(ctx, r, func(e *audit.StoredEvent) error {
			resource := e.TargetResourceType
			if e.TargetResourceID != "" {
				resource += "/" + e.TargetResourceID
			}
			d.row([]string{e.Time.UTC().Format("2006-01-02 15:04:05"), e.PrincipalID, e.Action, resource,
				string(e.Status), string(e.DataClassification)}, widths, false)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := pdf.Error(); err != nil {
		return fmt.Errorf("render PDF: %w", err)
	}
	return pdf.Output(w)
}

func (d *pdfDoc) titlePage(r *Report) {
	m := r.Metadata
	d.AddPage()
	d.SetFont("Helvetica", "B", 22)
	d.Ln(30)
	d.MultiCell(0, 10, d.tr(m.ReportType.Title()+" report"), "", "L", false)
	d.SetFont("Helvetica", "", 11)
	d.Ln(4)
	lines := []string{
		"Report type: " + string(m.ReportType),
		"Organizations: " + strings.Join(m.Organizations, ", "),
		"Period: " + m.Criteria.From.Format(time.RFC3339) + " to " + m.Criteria.To.Format(time.RFC3339) + " (end excluded)",
		"Generated at: " + m.GeneratedAt.Format(time.RFC3339) + " by " + m.GeneratedBy,
		"Report id: " + m.ReportID,
		"Definitions version: " + m.DefinitionsVersion,
		fmt.Sprintf("Total events: %d", r.Summary.TotalEvents),
	}
	if m.Checkpoint != nil {
		lines = append(lines, fmt.Sprintf("Checkpoint: %s, %d rows, root %s", m.Checkpoint.Origin, m.Checkpoint.Size, m.Checkpoint.RootHash))
	}
	for _, l := range lines {
		d.MultiCell(0, 7, d.tr(l), "", "L", false)
	}
	d.Ln(6)
	d.SetFont("Helvetica", "I", 9)
	d.MultiCell(0, 5, d.tr("Every number is computed in the database from the stored events by the formulas listed "+
		"under Definitions; an auditor can recompute each one from the events."), "", "L", false)
}

func (d *pdfDoc) heading(s string) {
	if d.GetY() > 250 {
		d.AddPage()
	}
	d.Ln(3)
	d.SetFont("Helvetica", "B", 12)
	d.MultiCell(0, 7, d.tr(s), "", "L", false)
}

func (d *pdfDoc) text(s string) {
	d.SetFont("Helvetica", "", 8)
	d.MultiCell(0, 4, d.tr(s), "", "L", false)
	d.Ln(1)
}

// table prints a table with equal columns, the first wider for two-column
// tables of names and values.
func (d *pdfDoc) table(t table) {
	n := len(t.header)
	widths := make([]float64, n)
	if n == 2 {
		widths[0], widths[1] = 60, pageWidth-60
	} else {
		for i := range widths {
			widths[i] = pageWidth / float64(n)
		}
	}
	d.row(t.header, widths, true)
	for i, row := range t.rows {
		if i == pdfTableRows {
			d.text(fmt.Sprintf("… %d more rows in the JSON and CSV forms of this report.", len(t.rows)-pdfTableRows))
			break
		}
		d.row(row, widths, false)
	}
}

// row prints one row, each cell cut to its width.
func (d *pdfDoc) row(cells []string, widths []float64, header bool) {
	if header {
		d.SetFont("Helvetica", "B", 8)
		d.SetFillColor(225, 230, 240)
	} else {
		d.SetFont("Helvetica", "", 7.5)
	}
	for i, c := range cells {
		d.CellFormat(widths[i], lineHeight, d.fit(d.tr(c), widths[i]-1.5), "1", 0, "L", header, 0, "")
	}
	d.Ln(-1)
}

// fit cuts s to the width w, marking the cut with "...".
func (d *pdfDoc) fit(s string, w float64) string {
	if d.GetStringWidth(s) <= w {
		return s
	}
	for len(s) > 0 && d.GetStringWidth(s+"...") > w {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// chart draws the events of each bucket as bars, failures in red, with the
// first and last bucket and the largest count as labels.
func (d *pdfDoc) chart(a Activity) {
	if len(a.Buckets) == 0 {
		d.text("No events in the period.")
		return
	}
	const height = 50.0
	if d.GetY()+height+14 > 280 {
		d.AddPage()
	}
	x0, y0 := 20.0, d.GetY()+2
	width := pageWidth - 15
	var peak int64
	for _, b := range a.Buckets {
		peak = max(peak, b.Events)
	}
	d.SetDrawColor(80, 80, 80)
	d.Line(x0, y0, x0, y0+height)
	d.Line(x0, y0+height, x0+width, y0+height)
	bar := width / float64(len(a.Buckets))
	for i, b := range a.Buckets {
		h := height * float64(b.Events) / float64(max(peak, 1))
		f := height * float64(b.Failures) / float64(max(peak, 1))
		x := x0 + float64(i)*bar + bar*0.1
		d.SetFillColor(70, 110, 180)
		d.Rect(x, y0+height-h, bar*0.8, h, "F")
		if f > 0 {
			d.SetFillColor(200, 60, 60)
			d.Rect(x, y0+height-f, bar*0.8, f, "F")
		}
	}
	d.SetFont("Helvetica", "", 7)
	d.Text(x0-9, y0+3, fmt.Sprint(peak))
	d.Text(x0-3, y0+height, "0")
	d.Text(x0, y0+height+4, d.tr(a.Buckets[0].Start))
	last := a.Buckets[len(a.Buckets)-1].Start
	d.Text(x0+width-d.GetStringWidth(last), y0+height+4, d.tr(last))
	d.SetY(y0 + height + 6)
	d.text(fmt.Sprintf("Events per local %s (blue), of which failures (red); %d %ss with events.", a.Unit, len(a.Buckets), a.Unit))
}
