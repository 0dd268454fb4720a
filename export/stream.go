package export

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
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
// the round trips few, small enough to keep memory flat (a batch being
// written, one read ahead and one being read are in memory at once).
const BatchSize = 2000

// chunkSize is how much rendered text gathers before it goes to the
// destination: big enough that hashing, compressing and the HTTP writer see
// few large writes, small enough to stay in the CPU's cache.
const chunkSize = 64 << 10

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
// keyset batches, so memory stays flat however many rows match, and reads the
// next batch while it writes the current one. progress, when set, is told the
// running row count after each batch. On an error the Result says how far it
// got; the output is then incomplete.
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
	res, err := stream(ctx, r, q, format, out, progress)
	if zw != nil {
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
	}
	res.Bytes, res.SHA256 = counted.n, hexSum(sum)
	return res, err
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// batch is one read of the store: its events, or the error that ended the
// reading.
type batch struct {
	events []audit.StoredEvent
	err    error
}

// readAhead reads q's keyset batches in order and sends them on the returned
// channel, one batch ahead of the writer, until the last batch or an error
// (which it sends too); it closes the channel when it stops. stop, for a
// writer that gives up early, cancels the read under way and returns once the
// reading goroutine is gone.
func readAhead(ctx context.Context, r audit.EventReader, q audit.EventQuery) (batches <-chan batch, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan batch, 1)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		q.Limit, q.After = BatchSize, nil
		for {
			events, err := r.SearchEvents(ctx, q)
			select {
			case ch <- batch{events, err}:
			case <-quit:
				return
			}
			if err != nil || len(events) < q.Limit {
				return
			}
			last := audit.PositionOf(&events[len(events)-1])
			q.After = &last
		}
	}()
	return ch, func() {
		close(quit)
		cancel()
		<-done
	}
}

func stream(ctx context.Context, r audit.EventReader, q audit.EventQuery, format Format, w io.Writer,
	progress func(rows int64)) (res Result, err error) {
	batches, stop := readAhead(ctx, r, q)
	defer stop()

	buf := make([]byte, 0, chunkSize+4<<10)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}
	switch format {
	case CSV:
		buf = appendCSVRow(buf, CSVHeader)
	case JSON:
		buf = append(buf, '[')
	}
	for b := range batches {
		if b.err != nil {
			// What was rendered goes out: the Result counts it.
			if err := flush(); err != nil {
				return res, fmt.Errorf("export: write row %d: %w", res.Rows, err)
			}
			return res, fmt.Errorf("export: read events after %d rows: %w", res.Rows, b.err)
		}
		for i := range b.events {
			e := &b.events[i]
			switch format {
			case CSV:
				buf = AppendCSVRecord(buf, e)
			case NDJSON:
				buf = append(AppendEvent(buf, e), '\n')
			case JSON:
				if res.Rows > 0 {
					buf = append(buf, ',')
				}
				buf = AppendEvent(append(buf, '\n'), e)
			}
			if len(buf) >= chunkSize {
				if err := flush(); err != nil {
					return res, fmt.Errorf("export: write row %d: %w", res.Rows+1, err)
				}
			}
			if res.Rows == 0 {
				res.FirstID = e.Seq
			}
			res.Rows++
			res.LastID = e.Seq
		}
		if progress != nil {
			progress(res.Rows)
		}
	}
	if format == JSON {
		if res.Rows > 0 {
			buf = append(buf, '\n')
		}
		buf = append(buf, "]\n"...)
	}
	if err := flush(); err != nil {
		return res, fmt.Errorf("export: write row %d: %w", res.Rows, err)
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
