package export

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	audit "github.com/smartlogs/audit-worker"
)

// Format is an export's file format.
type Format string

const (
	NDJSON Format = "ndjson" // one event (as the API renders it) per line
	CSV    Format = "csv"    // CSVHeader, then one row per event
	JSON   Format = "json"   // one JSON array of events
)

// ParseFormat returns the format named s, or a CodeInvalid error.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case NDJSON, CSV, JSON:
		return f, nil
	}
	return "", audit.Errorf(audit.CodeInvalid, "format %q: one of ndjson, csv, json", s)
}

// ContentType is the media type of a format.
func (f Format) ContentType() string {
	switch f {
	case CSV:
		return "text/csv; charset=utf-8"
	case NDJSON:
		return "application/x-ndjson"
	}
	return "application/json"
}

// BatchSize is how many events one read of the store brings: enough to keep
// the round trips few, small enough to keep memory flat.
const BatchSize = 2000

// Result is what a stream wrote: the facts of its manifest.
type Result struct {
	Rows    int64
	FirstID int64 // Seq of the first event written; 0 when none
	LastID  int64
	Bytes   int64  // bytes written to the destination (compressed, when gzip)
	SHA256  string // hex SHA-256 of exactly those bytes
}

// Stream writes every event matching q (q.Limit and q.After are managed
// here) to w in format, gzip-compressed when gz is set. It reads the store in
// keyset batches, so memory stays flat however many rows match. progress,
// when set, is told the running row count after each batch. On an error the
// Result says how far it got; the output is then incomplete.
func Stream(ctx context.Context, r audit.EventReader, q audit.EventQuery, format Format, gz bool,
	w io.Writer, progress func(rows int64)) (Result, error) {
	sum := sha256.New()
	counted := &countingWriter{w: io.MultiWriter(w, sum)}
	var out io.Writer = counted
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(counted)
		out = zw
	}
	buf := bufio.NewWriterSize(out, 64<<10)
	res, err := stream(ctx, r, q, format, buf, progress)
	if ferr := buf.Flush(); err == nil {
		err = ferr
	}
	if zw != nil {
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
	}
	res.Bytes, res.SHA256 = counted.n, hexSum(sum)
	return res, err
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func stream(ctx context.Context, r audit.EventReader, q audit.EventQuery, format Format, w *bufio.Writer,
	progress func(rows int64)) (Result, error) {
	var res Result
	q.Limit, q.After = BatchSize, nil
	var csvw *csv.Writer
	var cells []string
	var line []byte
	switch format {
	case CSV:
		csvw = csv.NewWriter(w)
		if err := csvw.Write(CSVHeader); err != nil {
			return res, err
		}
	case JSON:
		w.WriteString("[")
	}
	for {
		events, err := r.SearchEvents(ctx, q)
		if err != nil {
			return res, fmt.Errorf("export: read events after %d rows: %w", res.Rows, err)
		}
		for i := range events {
			e := &events[i]
			switch format {
			case CSV:
				cells = CSVRecord(cells, e)
				err = csvw.Write(cells)
			case NDJSON:
				line = append(AppendEvent(line[:0], e), '\n')
				_, err = w.Write(line)
			case JSON:
				line = line[:0]
				if res.Rows > 0 {
					line = append(line, ',')
				}
				line = AppendEvent(append(line, '\n'), e)
				_, err = w.Write(line)
			}
			if err != nil {
				return res, fmt.Errorf("export: write row %d: %w", res.Rows+1, err)
			}
			if res.Rows == 0 {
				res.FirstID = e.Seq
			}
			res.Rows++
			res.LastID = e.Seq
		}
		if csvw != nil {
			if csvw.Flush(); csvw.Error() != nil {
				return res, fmt.Errorf("export: write csv: %w", csvw.Error())
			}
		}
		if progress != nil {
			progress(res.Rows)
		}
		if len(events) < q.Limit {
			break
		}
		last := audit.PositionOf(&events[len(events)-1])
		q.After = &last
	}
	if format == JSON {
		if res.Rows > 0 {
			w.WriteString("\n")
		}
		w.WriteString("]\n")
	}
	return res, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
