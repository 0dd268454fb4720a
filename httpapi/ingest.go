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
	"slices"
	"strconv"
	"strings"
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

// Media types ingest accepts; a request without Content-Type is JSON.
var (
	jsonTypes   = []string{"application/json"}
	ndjsonTypes = []string{"application/x-ndjson", "application/ndjson", "application/jsonl"}
)

// ingest accepts one event (a JSON object), a JSON array of events, or NDJSON
// (one event per line), and answers once they are durable with one result per
// event. An event that is not even JSON is still kept, as a dead letter.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	if !paramsOK(w, r) {
		return
	}
	ndjson, err := ingestMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		writeError(w, http.StatusUnsupportedMediaType, string(audit.CodeInvalid), err.Error())
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 || !printableASCII(key) {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), "Idempotency-Key must be at most 255 printable ASCII characters")
		return
	}
	reserved, ok := s.admit(w, r)
	if !ok {
		return
	}
	defer s.inFlight.free(reserved)

	body, err := readBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.inFlight.refused("too_large")
			writeError(w, http.StatusRequestEntityTooLarge, string(audit.CodeInvalid), fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), "reading request body: "+err.Error())
		return
	}
	payloads, single, err := splitEvents(body, ndjson)
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	if len(payloads) > s.opts.MaxEvents {
		writeError(w, http.StatusRequestEntityTooLarge, string(audit.CodeInvalid), fmt.Sprintf("%d events in one request, the limit is %d", len(payloads), s.opts.MaxEvents))
		return
	}
	s.submit(w, r, payloads, single, key)
}

// admit reserves the request's bytes in the ingest budget before its body is
// read: its Content-Length, or the body limit when the length is unknown. It
// answers 413 to a body that can never fit and 503 when the budget stays
// full, and then returns false.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (reserved int64, ok bool) {
	if r.ContentLength > s.opts.MaxBodyBytes {
		s.inFlight.refused("too_large")
		writeError(w, http.StatusRequestEntityTooLarge, string(audit.CodeInvalid),
			fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, s.opts.MaxBodyBytes))
		return 0, false
	}
	n := r.ContentLength
	if n < 0 {
		n = s.opts.MaxBodyBytes
	}
	switch err := s.inFlight.acquire(r.Context(), n); {
	case err == nil:
		return n, true
	case errors.Is(err, errOverBudget):
		writeError(w, http.StatusRequestEntityTooLarge, string(audit.CodeInvalid),
			fmt.Sprintf("request body of %d bytes exceeds the ingest budget of %d bytes", n, s.inFlight.budget))
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable),
			"too many request bytes in flight, retry later: nothing was stored")
	}
	return 0, false // or the client went away
}

// submit hands the payloads to the pipeline and answers with their outcomes.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, payloads [][]byte, single bool, key string) {
	received := time.Now()
	producer := requestTrace(r)
	// The sender's organisations: an event of another one is rejected on its own.
	var orgs []string
	if sender := principalOf(r.Context()); !sender.AllOrgs() {
		orgs = sender.Organizations
	}
	inputs := make([]pipeline.Input, len(payloads))
	for i, p := range payloads {
		inputs[i] = pipeline.Input{Payload: p, Source: "http", ReceivedAt: received, Trace: producer, Organizations: orgs}
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

// ingestMediaType reports whether a Content-Type means NDJSON, and refuses
// one that is neither JSON nor NDJSON. No Content-Type means JSON.
func ingestMediaType(contentType string) (ndjson bool, err error) {
	if strings.TrimSpace(contentType) == "" {
		return false, nil
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	switch {
	case err != nil:
		return false, fmt.Errorf("Content-Type %q is malformed: %v; accepted: %s", contentType, err, acceptedTypes())
	case slices.Contains(jsonTypes, mediaType):
		return false, nil
	case slices.Contains(ndjsonTypes, mediaType):
		return true, nil
	}
	return false, fmt.Errorf("Content-Type %s is not accepted; accepted: %s", mediaType, acceptedTypes())
}

func acceptedTypes() string {
	return strings.Join(slices.Concat(jsonTypes, ndjsonTypes), ", ") + " (or none, meaning JSON)"
}

// readBody reads the request body up to limit bytes. With a known length it
// allocates the body once, instead of growing a buffer to twice its size.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength < 0 {
		return io.ReadAll(body)
	}
	buf := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// splitEvents cuts a body into event payloads, keeping each one's bytes exactly.
// Lines are events only when the Content-Type says NDJSON; otherwise a body is
// a JSON array, or else one event (valid JSON or not: the pipeline judges it).
// single reports a body that was one event.
func splitEvents(body []byte, ndjson bool) (payloads [][]byte, single bool, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, false, errors.New("request body is empty")
	}
	switch {
	case ndjson:
		for line := range bytes.SplitSeq(trimmed, []byte("\n")) {
			if line = bytes.TrimSpace(line); len(line) > 0 {
				payloads = append(payloads, line)
			}
		}
		return payloads, false, nil
	case trimmed[0] == '[':
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
	default:
		return [][]byte{trimmed}, true, nil
	}
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
