package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/pipeline"
)

type ingestResponse struct {
	Stored     int                `json:"stored"`
	Duplicates int                `json:"duplicates"`
	Rejected   int                `json:"rejected"`
	Results    []pipeline.Outcome `json:"results"`
}

// ingest accepts one event (a JSON object), a JSON array of events, or NDJSON
// (one event per line), and answers once they are durable with one result per
// event. An event that is not even JSON is still kept, as a dead letter.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid", fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid", "reading request body: "+err.Error())
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 || !printableASCII(key) {
		writeError(w, http.StatusBadRequest, "invalid", "Idempotency-Key must be at most 255 printable ASCII characters")
		return
	}
	payloads, single, err := splitEvents(body, r.Header.Get("Content-Type"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	if len(payloads) > s.opts.MaxEvents {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid", fmt.Sprintf("%d events in one request, the limit is %d", len(payloads), s.opts.MaxEvents))
		return
	}

	received := time.Now()
	producer := requestTrace(r)
	inputs := make([]pipeline.Input, len(payloads))
	for i, p := range payloads {
		inputs[i] = pipeline.Input{Payload: p, Source: "http", ReceivedAt: received, Trace: producer}
		switch {
		case key != "" && single:
			inputs[i].IdempotencyKey = "http:" + key
		case key != "":
			inputs[i].IdempotencyKey = "http:" + key + "/" + strconv.Itoa(i)
		}
	}
	outcomes, err := s.opts.Ingester.Submit(r.Context(), inputs)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away; a retry with the same keys will not duplicate
		}
		s.opts.Logger.Warn("ingest failed", "events", len(inputs), "err", err)
		if audit.IsTransient(err) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "events were not stored, retry later: "+err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, "internal", "events were not stored: "+err.Error())
		return
	}

	resp := ingestResponse{Results: outcomes}
	for _, o := range outcomes {
		switch o.Status {
		case pipeline.StatusStored:
			resp.Stored++
		case pipeline.StatusDuplicate:
			resp.Duplicates++
		case pipeline.StatusRejected:
			resp.Rejected++
		}
	}
	code := http.StatusOK
	if single && resp.Rejected == 1 {
		code = http.StatusUnprocessableEntity
	}
	writeJSON(w, code, resp)
}

// splitEvents cuts a body into event payloads, keeping each one's bytes exactly.
// single reports a body that was one JSON object.
func splitEvents(body []byte, contentType string) (payloads [][]byte, single bool, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, false, errors.New("request body is empty")
	}
	mediaType, _, _ := mime.ParseMediaType(contentType)
	ndjson := mediaType == "application/x-ndjson" || mediaType == "application/jsonl"
	switch {
	case !ndjson && trimmed[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, false, fmt.Errorf("request body is not a valid JSON array: %w", err)
		}
		if len(items) == 0 {
			return nil, false, errors.New("request body is an empty array")
		}
		payloads = make([][]byte, len(items))
		for i, it := range items {
			payloads[i] = it
		}
		return payloads, false, nil
	case !ndjson && (trimmed[0] != '{' || json.Valid(trimmed)):
		return [][]byte{trimmed}, true, nil
	}
	for line := range bytes.SplitSeq(trimmed, []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			payloads = append(payloads, line)
		}
	}
	return payloads, false, nil
}

// requestTrace is the caller's span from the W3C traceparent/tracestate
// headers (invalid when absent or malformed); the batch span links to it. The
// propagator is a local value: the global one is never configured here.
func requestTrace(r *http.Request) trace.SpanContext {
	if r.Header.Get("traceparent") == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(r.Header))
	return trace.SpanContextFromContext(ctx)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
