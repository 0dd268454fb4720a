package export_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/export"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/sqlite"
)

func openStore(t testing.TB, records []audit.Record) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i := 0; i < len(records); i += 1000 {
		if _, err := s.StoreBatch(context.Background(), audit.Batch{Records: records[i:min(i+1000, len(records))]}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// hostile returns records whose strings test the renderers: quotes, commas,
// newlines, text beyond ASCII, and cells a spreadsheet would run.
func hostile() []audit.Record {
	g := eventgen.New(3)
	recs := g.Records(6, "export-test")
	values := []string{`=HYPERLINK("http://evil.example","click")`, "+1+2", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"}
	for i := range recs {
		r := &recs[i]
		r.OutcomeDescription = values[i] + `, "quoted", line1` + "\nline2 ünïcödé 🩺"
		r.PrincipalID = values[(i+1)%len(values)]
		r.RecordHash = r.ComputeRecordHash()
	}
	return recs
}

func all(t *testing.T, s audit.EventReader) []audit.StoredEvent {
	t.Helper()
	events, err := s.SearchEvents(context.Background(), audit.EventQuery{Order: audit.OrderAsc, Limit: audit.MaxQueryLimit})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func TestAppendEventIsTheEventAsSent(t *testing.T) {
	s := openStore(t, hostile())
	for _, e := range all(t, s) {
		line := export.AppendEvent(nil, &e)
		var got map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, line)
		}
		if got["timestamp"] != e.Timestamp || got["outcomeDescription"] != e.OutcomeDescription ||
			got["principalId"] != e.PrincipalID || got["id"] != float64(e.Seq) || got["recordHash"] != e.RecordHash {
			t.Errorf("rendered %s", line)
		}
		// details byte for byte
		if !bytes.Contains(line, append([]byte(`"details":`), e.Details...)) {
			t.Errorf("details not copied byte for byte:\n%s\n%s", e.Details, line)
		}
		integrity := got["integrity"].(map[string]any)
		if integrity["hashVerified"] != true || integrity["signatureVerified"] != false {
			t.Errorf("integrity = %v", integrity)
		}
	}
}

func TestNDJSONIsTheSearchResultsByteForByte(t *testing.T) {
	s := openStore(t, eventgen.New(4).Records(5000, "export-test"))
	var out bytes.Buffer
	q := audit.EventQuery{Order: audit.OrderAsc}
	res, err := export.Stream(context.Background(), s, q, export.NDJSON, false, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := all(t, s)
	var want bytes.Buffer
	for i := range events {
		want.Write(export.AppendEvent(nil, &events[i]))
		want.WriteByte('\n')
	}
	if !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Fatalf("the export differs from the search results (%d vs %d bytes)", out.Len(), want.Len())
	}
	sum := sha256.Sum256(out.Bytes())
	if res.Rows != 5000 || res.FirstID != events[0].Seq || res.LastID != events[4999].Seq ||
		res.Bytes != int64(out.Len()) || res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("result = %+v", res)
	}
}

func TestCSVReadsBackAsTheRows(t *testing.T) {
	recs := append(hostile(), eventgen.New(5).Records(2500, "export-test")...)
	s := openStore(t, recs)
	var out bytes.Buffer
	res, err := export.Stream(context.Background(), s, audit.EventQuery{Order: audit.OrderAsc}, export.CSV, false, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	events := all(t, s)
	if len(rows) != len(events)+1 || res.Rows != int64(len(events)) || strings.Join(rows[0], ",") != strings.Join(export.CSVHeader, ",") {
		t.Fatalf("%d rows (header %v), want %d events + header", len(rows), rows[0], len(events))
	}
	if strings.Join(rows[0][:15], "|") != "ID|Timestamp|Principal ID|Organization ID|Action|Target Resource Type|Target Resource ID|Status|Outcome Description|Data Classification|IP Address|User Agent|Session ID|Integrity Status|Correlation ID" {
		t.Errorf("the original's 15 columns must come first: %v", rows[0][:15])
	}
	unneutral := func(c string) string {
		if strings.HasPrefix(c, "'") && len(c) > 1 && strings.ContainsRune("=+-@\t\r", rune(c[1])) {
			return c[1:]
		}
		return c
	}
	for i, e := range events {
		row := rows[i+1]
		if row[0] != strconv.FormatInt(e.Seq, 10) || unneutral(row[8]) != e.OutcomeDescription ||
			unneutral(row[2]) != e.PrincipalID || row[len(row)-1] != string(e.Details) || row[10] != e.SessionContext.IPAddress {
			t.Fatalf("row %d = %q\nevent %+v", i, row, e.Event)
		}
		for j, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("row %d column %s starts with %q: a spreadsheet would run it", i, export.CSVHeader[j], cell[:1])
			}
		}
	}
}

// TestCSVIsEncodingCSVByteForByte holds the CSV renderer to the bytes
// encoding/csv writes for CSVRecord's cells, on cells that need quoting,
// neutralising, both, or neither.
func TestCSVIsEncodingCSVByteForByte(t *testing.T) {
	s := openStore(t, hostile())
	events := all(t, s)
	odd := []string{"", " lead", "\u00a0nbsp", "\u3000ideographic", `\.`, `\.x`, "a,b", `say "hi"`, "cr\rlf\n",
		"=1,2", "-\"q\"", "\t x", "\r\n", "'", "ünï", "\x85next", "plain"}
	for i, v := range odd {
		e := events[i%len(events)]
		e.OutcomeDescription, e.TargetResourceID, e.CorrelationID = v, v, odd[(i+3)%len(odd)]
		e.Details = []byte(v)
		lat := float64(i) * -1.5
		e.ProcessingLatency = &lat
		if i%2 == 0 {
			e.ProcessingLatency, e.SessionContext = nil, nil
		}
		events = append(events, e)
	}
	var want bytes.Buffer
	cw := csv.NewWriter(&want)
	var cells []string
	var got []byte
	for i := range events {
		cells = export.CSVRecord(cells, &events[i])
		if err := cw.Write(cells); err != nil {
			t.Fatal(err)
		}
		cw.Flush()
		start := len(got)
		got = export.AppendCSVRecord(got, &events[i])
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("row %d:\n got %q\nwant %q", i, got[start:], want.Bytes()[start:])
		}
	}
}

// TestStreamStopsItsReaderWhenTheWriterFails: a destination that goes away
// ends the stream with its error, and the read-ahead goroutine with it
// (TestMain checks that no goroutine is left).
func TestStreamStopsItsReaderWhenTheWriterFails(t *testing.T) {
	s := openStore(t, eventgen.New(9).Records(3*export.BatchSize, "export-test"))
	res, err := export.Stream(context.Background(), s, audit.EventQuery{Order: audit.OrderAsc}, export.NDJSON, false,
		&failingWriter{left: 100 << 10}, nil)
	if !errors.Is(err, errGone) || res.Rows == 0 || res.Rows >= 3*export.BatchSize {
		t.Fatalf("rows %d, err %v; want the writer's error part way", res.Rows, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := export.Stream(ctx, s, audit.EventQuery{Order: audit.OrderAsc}, export.CSV, false, io.Discard, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: err %v", err)
	}
}

var errGone = errors.New("client went away")

// failingWriter takes left bytes, then fails.
type failingWriter struct{ left int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		return 0, errGone
	}
	f.left -= len(p)
	return len(p), nil
}

func TestNeutralize(t *testing.T) {
	for in, want := range map[string]string{"": "", "=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@x": "'@x",
		"\tx": "'\tx", "\rx": "'\rx", "plain": "plain", "a=b": "a=b", "'=x": "'=x"} {
		if got := export.Neutralize(in); got != want {
			t.Errorf("Neutralize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJSONAndGzip(t *testing.T) {
	s := openStore(t, eventgen.New(6).Records(3000, "export-test"))
	var out bytes.Buffer
	res, err := export.Stream(context.Background(), s, audit.EventQuery{Order: audit.OrderDesc}, export.JSON, true, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out.Bytes())
	if res.SHA256 != hex.EncodeToString(sum[:]) || res.Bytes != int64(out.Len()) {
		t.Errorf("the checksum must be of the compressed bytes sent: %+v", res)
	}
	zr, err := gzip.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	var events []map[string]any
	if err := json.NewDecoder(zr).Decode(&events); err != nil {
		t.Fatal(err)
	}
	if len(events) != 3000 || events[0]["id"].(float64) < events[2999]["id"].(float64) {
		t.Errorf("%d events, first id %v last id %v (want newest first)", len(events), events[0]["id"], events[2999]["id"])
	}
	// An empty result is still a valid document.
	out.Reset()
	if _, err := export.Stream(context.Background(), s, audit.EventQuery{Order: audit.OrderAsc, Organizations: []string{"none"}},
		export.JSON, false, &out, nil); err != nil || strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("empty export = %q, %v", out.String(), err)
	}
}

// failingReader fails after its first page, as a store that goes away.
type failingReader struct {
	audit.EventReader
	calls int
}

func (f *failingReader) SearchEvents(ctx context.Context, q audit.EventQuery) ([]audit.StoredEvent, error) {
	if f.calls++; f.calls > 1 {
		return nil, audit.Errorf(audit.CodeUnavailable, "store went away")
	}
	return f.EventReader.SearchEvents(ctx, q)
}

func TestStreamReportsHowFarItGot(t *testing.T) {
	s := openStore(t, eventgen.New(7).Records(export.BatchSize+10, "export-test"))
	var out bytes.Buffer
	res, err := export.Stream(context.Background(), &failingReader{EventReader: s}, audit.EventQuery{Order: audit.OrderAsc},
		export.NDJSON, false, &out, nil)
	if !audit.IsTransient(err) || res.Rows != export.BatchSize {
		t.Fatalf("rows %d, err %v; want %d rows and the store's error", res.Rows, err, export.BatchSize)
	}
	lines := 0
	for sc := bufio.NewScanner(&out); sc.Scan(); lines++ {
	}
	if lines != export.BatchSize {
		t.Errorf("%d lines written, want the %d of the first page", lines, export.BatchSize)
	}
}

func TestParseFormat(t *testing.T) {
	for _, ok := range []string{"ndjson", "csv", "json"} {
		if _, err := export.ParseFormat(ok); err != nil {
			t.Error(err)
		}
	}
	if _, err := export.ParseFormat("xml"); audit.ErrorCode(err) != audit.CodeInvalid {
		t.Errorf("xml: %v", err)
	}
}

var sink = io.Discard

func BenchmarkStreamNDJSON(b *testing.B) { benchStream(b, export.NDJSON) }
func BenchmarkStreamCSV(b *testing.B)    { benchStream(b, export.CSV) }

func benchStream(b *testing.B, f export.Format) {
	s := openStore(b, eventgen.New(8).Records(20000, "export-bench"))
	b.ResetTimer()
	start, cpuStart := time.Now(), cpuTime(b)
	rows := int64(0)
	for b.Loop() {
		res, err := export.Stream(context.Background(), s, audit.EventQuery{Order: audit.OrderAsc}, f, false, sink, nil)
		if err != nil {
			b.Fatal(err)
		}
		rows += res.Rows
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
	// CPU time per row is the work an export costs, which a host shared with
	// other jobs changes less than it changes the rows per second.
	b.ReportMetric(float64((cpuTime(b)-cpuStart).Nanoseconds())/float64(rows), "cpu-ns/row")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
