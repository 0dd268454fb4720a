package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/export"
)

// defaultSearchWindow is how far back a search looks without --since, as
// GET /v1/events does.
const defaultSearchWindow = 30 * 24 * time.Hour

func newEventsCommand(configPath *string) *cobra.Command {
	events := &cobra.Command{
		Use:     "events",
		Aliases: []string{"event"},
		Short:   "Search, show, verify and export stored events; compute an event's hash",
		Long: `Reads the events in the store the configuration names (the embedded SQLite
database by default, PostgreSQL when enhancedClient.connectionString is set),
as GET /v1/events and its siblings do: the same filters, the same rendering of
an event. Every read is itself recorded in the audit trail
(audit.access.query, audit.access.verify, audit.access.export), with the
operator named as cli:<user>@<host>.`,
	}
	events.AddCommand(newEventsQueryCommand(configPath), newEventsShowCommand(configPath),
		newEventsVerifyCommand(configPath), newEventsExportCommand(configPath), newEventHashCommand())
	return events
}

// eventFilters are the search filters, as flags named after the HTTP
// parameters they mirror.
type eventFilters struct {
	orgs                                                []string
	principal, action, status, resourceType, resourceID string
	classification, correlation, session, ip            string
	since, until, order                                 string
}

func (f *eventFilters) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringSliceVar(&f.orgs, "org", nil, "only this organisation's events; repeat it or separate with commas (default: all)")
	fs.StringVar(&f.principal, "principal", "", "principalId")
	fs.StringVar(&f.action, "action", "", "an exact action, or a family written like auth.*")
	fs.StringVar(&f.status, "status", "", "attempt, success or failure")
	fs.StringVar(&f.resourceType, "resource-type", "", "targetResourceType")
	fs.StringVar(&f.resourceID, "resource-id", "", "targetResourceId")
	fs.StringVar(&f.classification, "classification", "", "PUBLIC, INTERNAL, CONFIDENTIAL or PHI")
	fs.StringVar(&f.correlation, "correlation", "", "correlationId")
	fs.StringVar(&f.session, "session", "", "sessionContext.sessionId")
	fs.StringVar(&f.ip, "ip", "", "sessionContext.ipAddress, as the producer wrote it")
	fs.StringVar(&f.since, "since", "", "events at or after this time: RFC 3339, or an age like 36h or 7d (default 30d)")
	fs.StringVar(&f.until, "until", "", "events before this time: RFC 3339, or an age like 36h or 7d")
	fs.StringVar(&f.order, "order", "", "desc (newest first, the default) or asc")
}

// maxFilterBytes bounds one filter value, as the HTTP API does.
const maxFilterBytes = 1024

// query turns the flags into a query over every organisation (an operator
// with the configuration reads the whole store). Each error names its flag.
func (f *eventFilters) query(now time.Time) (audit.EventQuery, error) {
	q := audit.EventQuery{PrincipalID: f.principal, Action: f.action,
		Status: audit.Status(strings.ToLower(f.status)), TargetResourceType: f.resourceType,
		TargetResourceID: f.resourceID, DataClassification: audit.Classification(strings.ToUpper(f.classification)),
		CorrelationID: f.correlation, SessionID: f.session, IPAddress: f.ip}
	for _, o := range f.orgs {
		if o = strings.TrimSpace(o); o != "" {
			q.Organizations = append(q.Organizations, o)
		}
	}
	if err := f.checkTexts(q.Organizations); err != nil {
		return q, err
	}
	if err := f.checkChoices(&q); err != nil {
		return q, err
	}
	var err error
	q.Since, q.Until, err = f.window(now)
	return q, err
}

// checkTexts refuses a value no store could hold or match, as the API does.
func (f *eventFilters) checkTexts(orgs []string) error {
	texts := map[string]string{"--principal": f.principal, "--action": f.action, "--resource-type": f.resourceType,
		"--resource-id": f.resourceID, "--correlation": f.correlation, "--session": f.session, "--ip": f.ip}
	for _, flag := range slices.Sorted(maps.Keys(texts)) {
		if err := checkFilterText(flag, texts[flag]); err != nil {
			return err
		}
	}
	for _, o := range orgs {
		if err := checkFilterText("--org", o); err != nil {
			return err
		}
	}
	return nil
}

// checkChoices checks the filters that take one of a few values, and sets
// the order.
func (f *eventFilters) checkChoices(q *audit.EventQuery) error {
	switch q.Status {
	case "", audit.StatusAttempt, audit.StatusSuccess, audit.StatusFailure:
	default:
		return fmt.Errorf("--status: one of attempt, success, failure (is %q)", f.status)
	}
	switch q.DataClassification {
	case "", audit.ClassPublic, audit.ClassInternal, audit.ClassConfidential, audit.ClassPHI:
	default:
		return fmt.Errorf("--classification: one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI (is %q)", f.classification)
	}
	switch f.order {
	case "desc", "":
		q.Order = audit.OrderDesc
	case "asc":
		q.Order = audit.OrderAsc
	default:
		return fmt.Errorf("--order: asc or desc (is %q)", f.order)
	}
	if strings.Contains(q.Action, "*") {
		if _, ok := q.ActionPrefix(); !ok || strings.Count(q.Action, "*") > 1 {
			return fmt.Errorf("--action: an exact action, or a family written like auth.* (is %q)", q.Action)
		}
	}
	return nil
}

// window is the time range searched: [since, until), since defaulting to the
// last 30 days.
func (f *eventFilters) window(now time.Time) (since, until time.Time, err error) {
	if since, err = parseTimeFlag("--since", f.since, now); err != nil {
		return since, until, err
	}
	if until, err = parseTimeFlag("--until", f.until, now); err != nil {
		return since, until, err
	}
	if f.since == "" {
		since = now.Add(-defaultSearchWindow)
	}
	if !until.IsZero() && !until.After(since) {
		return since, until, fmt.Errorf("--until: must be after --since (%s)", since.Format(time.RFC3339Nano))
	}
	return since, until, nil
}

func checkFilterText(flag, v string) error {
	switch {
	case len(v) > maxFilterBytes:
		return fmt.Errorf("%s: longer than %d bytes", flag, maxFilterBytes)
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%s: must not contain NUL characters", flag)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s: must be valid UTF-8", flag)
	}
	return nil
}

// parseTimeFlag reads an RFC 3339 time, or an age (36h, 7d) before now.
func parseTimeFlag(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := access.ParseLifetime(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if !strings.Contains(v, "T") {
		return time.Time{}, fmt.Errorf("%s: an RFC 3339 time such as 2026-01-02T15:04:05Z, or an age such as 36h or 7d (is %q)", flag, v)
	}
	t, err := audit.ParseQueryTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", flag, err)
	}
	return t, nil
}

// params are the filters as the HTTP API names them, for access records and
// export manifests: what the operator asked, as given.
func (f *eventFilters) params() map[string][]string {
	out := map[string][]string{}
	set := func(name, v string) {
		if v != "" {
			out[name] = []string{v}
		}
	}
	if len(f.orgs) > 0 {
		out["organizationId"] = slices.Clone(f.orgs)
	}
	set("principalId", f.principal)
	set("action", f.action)
	set("status", f.status)
	set("targetResourceType", f.resourceType)
	set("targetResourceId", f.resourceID)
	set("dataClassification", f.classification)
	set("correlationId", f.correlation)
	set("sessionId", f.session)
	set("ipAddress", f.ip)
	set("since", f.since)
	set("until", f.until)
	set("order", f.order)
	return out
}

// queryPageSize is how many events one read brings when --all pages.
const queryPageSize = export.BatchSize

func newEventsQueryCommand(configPath *string) *cobra.Command {
	var filters eventFilters
	var output string
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "query [filters] [--output table|json|ndjson] [--limit N | --all]",
		Short: "Search events, newest first, over the last 30 days unless --since says otherwise",
		Example: `  audit-worker events query --org org-a --action 'auth.*' --status failure --since 24h
  audit-worker events query --principal user-42 --all --output ndjson > user-42.ndjson`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			w, err := newEventWriter(output, c.OutOrStdout())
			if err != nil {
				return err
			}
			if limit < 1 || limit > audit.MaxQueryLimit {
				return fmt.Errorf("--limit: from 1 to %d (is %d)", audit.MaxQueryLimit, limit)
			}
			q, err := filters.query(time.Now())
			if err != nil {
				return err
			}
			return withStore(c, *configPath, func(ctx context.Context, env *cliEnv) error {
				if all {
					return queryAll(ctx, env, q, filters.params(), w)
				}
				return queryPage(ctx, env, q, filters.params(), limit, w, c.ErrOrStderr())
			})
		},
	}
	filters.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json (an array) or ndjson (one event a line)")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many events")
	cmd.Flags().BoolVar(&all, "all", false, "every matching event, read page by page")
	cmd.MarkFlagsMutuallyExclusive("limit", "all")
	return cmd
}

// queryPage shows up to limit events once their access is recorded, and says
// on stderr when more match.
func queryPage(ctx context.Context, env *cliEnv, q audit.EventQuery, params map[string][]string, limit int,
	w eventWriter, notes io.Writer) error {
	events, more, err := searchPage(ctx, env.store, q, limit)
	orgs := organizationSet{}
	for i := range events {
		orgs.add(events[i].OrganizationID)
	}
	if rerr := env.record(ctx, queryAccess(q, params, orgs, int64(len(events)), err)); err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	for i := range events {
		if err := w.write(&events[i]); err != nil {
			return err
		}
	}
	if err := w.close(); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(notes, "more than %d events match: narrow the filters, raise --limit, or use --all\n", limit)
	}
	return nil
}

// searchPage returns the first limit events of q, and whether more match.
func searchPage(ctx context.Context, r audit.EventReader, q audit.EventQuery, limit int) ([]audit.StoredEvent, bool, error) {
	q.Limit = min(limit+1, audit.MaxQueryLimit) // one more tells whether more match
	events, err := r.SearchEvents(ctx, q)
	if err != nil || len(events) < limit {
		return events, false, err
	}
	if len(events) > limit {
		return events[:limit], true, nil
	}
	// A page of the largest size: ask for the one after it.
	last := audit.PositionOf(&events[limit-1])
	q.After, q.Limit = &last, 1
	next, err := r.SearchEvents(ctx, q)
	return events, len(next) > 0, err
}

// queryAll streams every matching event, page by page in keyset order, and
// records the access once it knows what was read.
func queryAll(ctx context.Context, env *cliEnv, q audit.EventQuery, params map[string][]string, w eventWriter) error {
	q.Limit = queryPageSize
	orgs := organizationSet{}
	var rows int64
	err := func() error {
		for {
			events, err := env.store.SearchEvents(ctx, q)
			if err != nil {
				return err
			}
			for i := range events {
				orgs.add(events[i].OrganizationID)
				if err := w.write(&events[i]); err != nil {
					return err
				}
				rows++
			}
			if err := w.flush(); err != nil {
				return err
			}
			if len(events) < q.Limit {
				return w.close()
			}
			last := audit.PositionOf(&events[len(events)-1])
			q.After = &last
		}
	}()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if rerr := env.record(rctx, queryAccess(q, params, orgs, rows, err)); err == nil {
		err = rerr
	}
	return err
}

// organizationSet collects the organisations whose events were read: each
// gets an access record of its own, as over HTTP.
type organizationSet map[string]struct{}

func (s organizationSet) add(org string) {
	if org != "" {
		s[org] = struct{}{}
	}
}

func (s organizationSet) list(searched []string) []string {
	if len(s) == 0 {
		return searched
	}
	out := make([]string, 0, len(s))
	for o := range s {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

func queryAccess(q audit.EventQuery, params map[string][]string, orgs organizationSet, rows int64, err error) access.Access {
	a := access.Access{Action: access.ActionQuery, Organizations: orgs.list(q.Organizations), Success: err == nil,
		TargetType: "audit_event", Outcome: fmt.Sprintf("%d events", rows),
		Details: map[string]any{"filters": params, "resultCount": rows}}
	if err != nil {
		a.Outcome = err.Error()
	}
	return a
}

// eventWriter writes events in one output format.
type eventWriter interface {
	write(e *audit.StoredEvent) error
	flush() error // what is buffered reaches the output (between pages)
	close() error // the output is complete
}

func newEventWriter(format string, out io.Writer) (eventWriter, error) {
	bw := bufio.NewWriterSize(out, 64<<10)
	switch format {
	case "table":
		tw := &tableWriter{out: bw}
		tw.reset()
		return tw, nil
	case "json":
		return &jsonArrayWriter{out: bw}, nil
	case "ndjson":
		return &ndjsonWriter{out: bw}, nil
	}
	return nil, fmt.Errorf("--output: table, json or ndjson (is %q)", format)
}

type ndjsonWriter struct {
	out  *bufio.Writer
	line []byte
}

func (w *ndjsonWriter) write(e *audit.StoredEvent) error {
	w.line = append(export.AppendEvent(w.line[:0], e), '\n')
	_, err := w.out.Write(w.line)
	return err
}
func (w *ndjsonWriter) flush() error { return w.out.Flush() }
func (w *ndjsonWriter) close() error { return w.out.Flush() }

type jsonArrayWriter struct {
	out  *bufio.Writer
	line []byte
	rows int
}

func (w *jsonArrayWriter) write(e *audit.StoredEvent) error {
	w.line = append(w.line[:0], ",\n"...)
	if w.rows == 0 {
		w.line = append(w.line[:0], "[\n"...)
	}
	w.rows++
	w.line = export.AppendEvent(w.line, e)
	_, err := w.out.Write(w.line)
	return err
}
func (w *jsonArrayWriter) flush() error { return w.out.Flush() }
func (w *jsonArrayWriter) close() error {
	if w.rows == 0 {
		w.out.WriteString("[]\n")
	} else {
		w.out.WriteString("\n]\n")
	}
	return w.out.Flush()
}

// tableWriter aligns the events of each page in columns. Cells are cut to a
// readable width, and characters a terminal would act on are escaped: the
// values come from producers.
type tableWriter struct {
	out *bufio.Writer
	tw  *tabwriter.Writer
}

const tableCellRunes = 48

func (w *tableWriter) reset() {
	w.tw = tabwriter.NewWriter(w.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w.tw, "ID\tTIMESTAMP\tORG\tPRINCIPAL\tACTION\tSTATUS\tTARGET")
}

func (w *tableWriter) write(e *audit.StoredEvent) error {
	target := e.TargetResourceType
	if e.TargetResourceID != "" {
		target += "/" + e.TargetResourceID
	}
	_, err := fmt.Fprintf(w.tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, tableCell(e.Timestamp), tableCell(e.OrganizationID),
		tableCell(e.PrincipalID), tableCell(e.Action), tableCell(string(e.Status)), tableCell(target))
	return err
}

func (w *tableWriter) flush() error {
	if err := w.tw.Flush(); err != nil {
		return err
	}
	return w.out.Flush()
}

func (w *tableWriter) close() error { return w.flush() }

// tableCell makes a value safe and short for a table: "-" when empty, Go
// escapes when it holds anything but printable characters (a tab would
// break the columns, an escape sequence would drive the terminal), and cut
// to tableCellRunes.
func tableCell(v string) string {
	if v == "" {
		return "-"
	}
	return truncate(printable(v), tableCellRunes)
}

// printable is v, or v in Go's escaped form when it holds anything but
// printable characters.
func printable(v string) string {
	if strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(v)
	}
	return v
}

// parseEventID reads an event id (its sequence number) from the command line.
func parseEventID(arg string) (int64, error) {
	seq, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || seq < 1 {
		return 0, audit.Errorf(audit.CodeInvalid, "ID: an event id is a positive integer (is %q)", truncate(arg, 32))
	}
	return seq, nil
}

func newEventsShowCommand(configPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Print one event as JSON, as GET /v1/events/{id} answers it",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			seq, err := parseEventID(args[0])
			if err != nil {
				return err
			}
			return withStore(c, *configPath, func(ctx context.Context, env *cliEnv) error {
				e, err := env.store.GetEventBySeq(ctx, seq)
				a := access.Access{Action: access.ActionQuery, Organizations: orgList(e.OrganizationID), Success: err == nil,
					TargetType: "audit_event", TargetID: strconv.FormatInt(seq, 10), Outcome: "1 event"}
				if err != nil {
					a.Outcome = err.Error()
				}
				if rerr := env.record(ctx, a); err == nil {
					err = rerr
				}
				if err != nil {
					return err
				}
				_, err = c.OutOrStdout().Write(append(export.AppendEvent(nil, &e), '\n'))
				return err
			})
		},
	}
}

func orgList(org string) []string {
	if org == "" {
		return nil
	}
	return []string{org}
}

// eventVerification is the answer of events verify --output json, in the
// shape of GET /v1/events/{id}/verify.
type eventVerification struct {
	ID int64 `json:"id"`
	audit.Verification
}

func newEventsVerifyCommand(configPath *string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "verify ID [--output table|json]",
		Short: "Recompute an event's producer hash, signature and record hash; exit 1 if one fails",
		Long: `Recomputes, from the stored row alone, the producer hash, the HMAC signature
(with security.encryptionKey, when the event is signed and the key is set) and
the record hash over every stored value, and compares them with what the row
holds. A row changed after it was stored fails at least the record hash. The
command exits with status 1 when the event is not verified, naming the checks
that failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output: table or json (is %q)", output)
			}
			seq, err := parseEventID(args[0])
			if err != nil {
				return err
			}
			return withStore(c, *configPath, func(ctx context.Context, env *cliEnv) error {
				return verifyEvent(ctx, env, seq, output, c.OutOrStdout())
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func verifyEvent(ctx context.Context, env *cliEnv, seq int64, output string, out io.Writer) error {
	e, err := env.store.GetEventBySeq(ctx, seq)
	if err != nil {
		return errors.Join(err, env.record(ctx, access.Access{Action: access.ActionVerify, TargetType: "audit_event",
			TargetID: strconv.FormatInt(seq, 10), Outcome: err.Error()}))
	}
	v := audit.VerifyStored(&e, []byte(env.cfg.Security.EncryptionKey))
	var failed []string
	for _, c := range v.Checks {
		if !c.OK {
			failed = append(failed, c.Name)
		}
	}
	outcome := "verified"
	if !v.Verified {
		outcome = "verification failed: " + strings.Join(failed, ", ")
	}
	if err := env.record(ctx, access.Access{Action: access.ActionVerify, Organizations: orgList(e.OrganizationID),
		Success: true, TargetType: "audit_event", TargetID: strconv.FormatInt(seq, 10), Outcome: outcome}); err != nil {
		return err
	}
	if output == "json" {
		err = json.NewEncoder(out).Encode(eventVerification{ID: seq, Verification: v})
	} else {
		err = writeVerification(out, seq, v)
	}
	if err != nil {
		return err
	}
	if !v.Verified {
		return audit.Errorf(audit.CodeIntegrity, "event %d is not verified: %s failed", seq, strings.Join(failed, ", "))
	}
	return nil
}

func writeVerification(out io.Writer, seq int64, v audit.Verification) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tEXPECTED\tFOUND\tNOTE")
	for _, c := range v.Checks {
		result := "ok"
		if !c.OK {
			result = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, result, dash(c.Expected), dash(c.Found), dash(c.Note))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "verified"
	if !v.Verified {
		verdict = "NOT verified"
	}
	_, err := fmt.Fprintf(out, "event %d: %s\n", seq, verdict)
	return err
}

// dash is a verification's value in full (a hash is compared by eye), made
// printable, or "-" when there is none.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return printable(s)
}

// newEventHashCommand is the producer-hash tool (events hash, and event hash
// as before).
func newEventHashCommand() *cobra.Command {
	var hmacKey string
	hash := &cobra.Command{
		Use:   "hash",
		Short: "Print the producer hash (and HMAC signature) of one event read on stdin",
		Long: `Reads one event JSON on stdin and prints {"hash":"…"} computed exactly as the
Node producer does, plus "signature" (HMAC-SHA256 over the hash) when a key is
given with --hmac-key or $AUDIT_HMAC_KEY. Use it to debug a producer whose
events are refused with integrity_violation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return hashEvent(cmd.InOrStdin(), cmd.OutOrStdout(), hmacKey)
		},
	}
	hash.Flags().StringVar(&hmacKey, "hmac-key", os.Getenv("AUDIT_HMAC_KEY"),
		"security.encryptionKey to sign with (prefer $AUDIT_HMAC_KEY: flags show in ps)")
	return hash
}

// exportOptions are what events export writes, and where.
type exportOptions struct {
	format export.Format
	gzip   bool
	path   string
	force  bool
}

func newEventsExportCommand(configPath *string) *cobra.Command {
	var filters eventFilters
	var format string
	var opts exportOptions
	cmd := &cobra.Command{
		Use:   "export [filters] --format ndjson|csv|json [--gzip] --out FILE",
		Short: "Export every matching event to FILE, with FILE.sha256 and FILE.manifest.json",
		Long: `Streams every event matching the filters (the last 30 days unless --since says
otherwise) to FILE in constant memory, as GET /v1/events/export does: NDJSON
(one event a line, as the API renders it), CSV (the original system's columns
first, cells a spreadsheet would run neutralised) or a JSON array, optionally
gzip-compressed. The file is written under a temporary name and renamed to FILE
only once complete. Next to it go FILE.sha256 (checked with sha256sum -c) and
FILE.manifest.json (row count, first and last id, byte count, SHA-256 of the
file, filters, who and when), which is also kept in the store for
GET /v1/exports/{id}. On a terminal a progress line shows the rows written, the
rate and, when the store counts the matching rows within 2 s, the time left.`,
		Example: `  audit-worker events export --org org-a --since 2026-01-01T00:00:00Z --until 2026-02-01T00:00:00Z \
      --format csv --gzip --out org-a-2026-01.csv.gz`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var err error
			if opts.format, err = export.ParseFormat(format); err != nil {
				return fmt.Errorf("--format: one of ndjson, csv, json (is %q)", format)
			}
			if err := checkExportPath(opts.path, opts.force); err != nil {
				return err
			}
			q, err := filters.query(time.Now())
			if err != nil {
				return err
			}
			return withStore(c, *configPath, func(ctx context.Context, env *cliEnv) error {
				return exportEvents(ctx, env, q, filters.params(), opts, c.OutOrStdout(), c.ErrOrStderr())
			})
		},
	}
	filters.register(cmd)
	cmd.Flags().StringVar(&format, "format", "ndjson", "ndjson, csv or json")
	cmd.Flags().BoolVar(&opts.gzip, "gzip", false, "gzip-compress the file (the checksum is of the compressed bytes)")
	cmd.Flags().StringVar(&opts.path, "out", "", "the file to write (required)")
	cmd.Flags().BoolVar(&opts.force, "force", false, "replace FILE (and its .sha256 and .manifest.json) if it exists")
	cmd.MarkFlagRequired("out")
	return cmd
}

// checkExportPath refuses an export that would overwrite a file unasked, or
// write into a directory that is not there, before any event is read.
func checkExportPath(path string, force bool) error {
	if path == "" || strings.HasSuffix(path, string(filepath.Separator)) {
		return fmt.Errorf("--out: a file name is required (is %q)", path)
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		return fmt.Errorf("--out: directory %s does not exist", filepath.Dir(path))
	}
	for _, p := range []string{path, path + ".sha256", path + ".manifest.json"} {
		st, err := os.Stat(p)
		switch {
		case err == nil && st.IsDir():
			return fmt.Errorf("--out: %s is a directory", p)
		case err == nil && !force:
			return fmt.Errorf("--out: %s exists (--force replaces it)", p)
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("--out: %w", err)
		}
	}
	return nil
}

// eventCounter is a store that can count a search's events: the export's
// time left comes from it.
type eventCounter interface {
	CountEvents(ctx context.Context, q audit.EventQuery) (int64, error)
}

// countBudget is how long an export waits for the count of its rows; a
// count that takes longer is not cheap, and the export shows no time left.
const countBudget = 2 * time.Second

// exportEvents writes the export and its checksum and manifest files, keeps
// the manifest in the store and records the access; a failed export leaves
// no FILE, and its manifest (complete: false) and access are kept all the same.
func exportEvents(ctx context.Context, env *cliEnv, q audit.EventQuery, params map[string][]string, opts exportOptions,
	out, progressOut io.Writer) error {
	m := audit.ExportManifest{ID: newExportID(), Format: string(opts.format), Gzip: opts.gzip, Filters: params,
		Organizations: q.Organizations, Caller: cliPrincipal().ID, GeneratedAt: time.Now().UTC()}
	if m.Organizations == nil {
		m.Organizations = []string{audit.AllOrganizations}
	}
	if !q.Since.IsZero() {
		m.From = &q.Since
	}
	if !q.Until.IsZero() {
		m.To = &q.Until
	}
	total := countInBackground(ctx, env.store, q)
	p := newExportProgress(progressOut, isTerminal(progressOut), total.get)
	res, err := writeExportFile(ctx, env.store, q, opts, p.update)
	total.stop()
	p.done()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("export interrupted after %d events; %s was not written: %w", res.Rows, opts.path, ctx.Err())
	}
	m.CompletedAt, m.RowCount, m.FirstID, m.LastID = time.Now().UTC(), res.Rows, res.FirstID, res.LastID
	m.Bytes, m.SHA256, m.Complete = res.Bytes, res.SHA256, err == nil
	if err == nil {
		err = writeExportSidecars(opts.path, m)
	}
	if err != nil {
		m.Complete, m.Error = false, err.Error()
	}
	// An interrupted export still leaves its manifest and its access record.
	keepCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := env.store.SaveExport(keepCtx, m); serr != nil {
		err = errors.Join(err, fmt.Errorf("keep the export's manifest: %w", serr))
	}
	if rerr := env.record(keepCtx, exportAccess(m)); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return err
	}
	elapsed := m.CompletedAt.Sub(m.GeneratedAt)
	_, err = fmt.Fprintf(out, "exported %s events to %s (%s, %s) in %s, %s events/s; sha256 %s; export %s\n",
		groupDigits(m.RowCount), opts.path, exportKind(opts), byteSize(m.Bytes), elapsed.Round(10*time.Millisecond),
		groupDigits(int64(float64(m.RowCount)/max(elapsed.Seconds(), 1e-3))), m.SHA256, m.ID)
	return err
}

func exportKind(opts exportOptions) string {
	if opts.gzip {
		return string(opts.format) + ", gzip"
	}
	return string(opts.format)
}

func exportAccess(m audit.ExportManifest) access.Access {
	a := access.Access{Action: access.ActionExport, Success: m.Complete, TargetType: "audit_event", TargetID: m.ID,
		Outcome: fmt.Sprintf("%d events, sha256 %s", m.RowCount, m.SHA256),
		Details: map[string]any{"filters": m.Filters, "resultCount": m.RowCount, "format": m.Format}}
	if !slices.Contains(m.Organizations, audit.AllOrganizations) {
		a.Organizations = m.Organizations
	}
	if !m.Complete {
		a.Outcome = fmt.Sprintf("stopped after %d events: %s", m.RowCount, m.Error)
	}
	return a
}

// writeExportFile streams the export into a temporary file beside path and
// renames it to path once it is complete and synced; on any error the
// temporary file is removed and path is left as it was.
func writeExportFile(ctx context.Context, r audit.EventReader, q audit.EventQuery, opts exportOptions,
	progress func(rows int64)) (export.Result, error) {
	tmp, err := os.CreateTemp(filepath.Dir(opts.path), "."+filepath.Base(opts.path)+".*.partial")
	if err != nil {
		return export.Result{}, fmt.Errorf("create the export file: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	res, err := export.Stream(ctx, r, q, opts.format, opts.gzip, tmp, progress)
	if err != nil {
		return res, err
	}
	if err := tmp.Sync(); err != nil {
		return res, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return res, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), opts.path); err != nil {
		return res, fmt.Errorf("rename the export to %s: %w", opts.path, err)
	}
	renamed = true
	return res, nil
}

// writeExportSidecars writes FILE.sha256, in the format sha256sum -c reads,
// and FILE.manifest.json.
func writeExportSidecars(path string, m audit.ExportManifest) error {
	sum := fmt.Sprintf("%s  %s\n", m.SHA256, filepath.Base(path))
	if err := writeFileAtomically(path+".sha256", []byte(sum)); err != nil {
		return err
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the manifest: %w", err)
	}
	return writeFileAtomically(path+".manifest.json", append(manifest, '\n'))
}

func writeFileAtomically(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func newExportID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "exp_" + hex.EncodeToString(b)
}

// backgroundCount counts an export's rows while the export runs, within
// countBudget; get returns -1 until the count is known, and for good when
// the store cannot count or takes too long.
type backgroundCount struct {
	n      atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func countInBackground(ctx context.Context, r audit.EventReader, q audit.EventQuery) *backgroundCount {
	c := &backgroundCount{cancel: func() {}}
	c.n.Store(-1)
	counter, ok := r.(eventCounter)
	if !ok {
		return c
	}
	var countCtx context.Context
	countCtx, c.cancel = context.WithTimeout(ctx, countBudget)
	c.wg.Go(func() {
		if n, err := counter.CountEvents(countCtx, q); err == nil {
			c.n.Store(n)
		}
	})
	return c
}

func (c *backgroundCount) get() int64 { return c.n.Load() }

// stop ends a count still running and waits for it.
func (c *backgroundCount) stop() {
	c.cancel()
	c.wg.Wait()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// exportProgress shows, on a terminal, one line refreshed in place: rows
// written, rate, and time left when the total is known. Elsewhere (a log, a
// pipe) it writes nothing: the command's summary line says it all.
type exportProgress struct {
	out      io.Writer
	terminal bool
	total    func() int64
	start    time.Time
	last     time.Time
	shown    bool
	now      func() time.Time
}

// progressEvery is how often the line is redrawn at most.
const progressEvery = 250 * time.Millisecond

func newExportProgress(out io.Writer, terminal bool, total func() int64) *exportProgress {
	p := &exportProgress{out: out, terminal: terminal, total: total, now: time.Now}
	p.start = p.now()
	return p
}

func (p *exportProgress) update(rows int64) {
	if !p.terminal {
		return
	}
	now := p.now()
	if p.shown && now.Sub(p.last) < progressEvery {
		return
	}
	p.last, p.shown = now, true
	fmt.Fprintf(p.out, "\r\x1b[K%s", progressLine(rows, p.total(), now.Sub(p.start)))
}

// done ends the progress line, so that what follows starts on a line of its own.
func (p *exportProgress) done() {
	if p.terminal && p.shown {
		fmt.Fprint(p.out, "\r\x1b[K")
	}
}

// progressLine says how far an export is: "120,000 / 1,000,000 rows (12%),
// 40,000 rows/s, 22s left"; without a total, only the rows and the rate.
func progressLine(rows, total int64, elapsed time.Duration) string {
	rate := float64(rows) / max(elapsed.Seconds(), 1e-3)
	line := groupDigits(rows) + " rows"
	if total >= 0 {
		total = max(total, rows) // rows stored since the count
		pct := int64(100)
		if total > 0 {
			pct = rows * 100 / total
		}
		line = fmt.Sprintf("%s / %s rows (%d%%)", groupDigits(rows), groupDigits(total), pct)
	}
	line += fmt.Sprintf(", %s rows/s", groupDigits(int64(rate)))
	if total >= 0 && rate > 0 {
		left := time.Duration(float64(total-rows) / rate * float64(time.Second))
		line += ", " + left.Round(time.Second).String() + " left"
	}
	return line
}

// groupDigits writes n with thousands separated by commas.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
