package telemetry

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingConfig configures tracing.
type TracingConfig struct {
	Enabled     bool
	ServiceName string // resource attribute service.name; default "audit-worker"
	// SampleRate is the share of traces exported over OTLP, 0 to 1. The
	// in-memory store keeps every span regardless.
	SampleRate float64
	// OTLPEndpoint is the http(s) URL of an OTLP/HTTP collector; a URL without
	// a path gets the standard /v1/traces. Empty: nothing is exported.
	OTLPEndpoint string
	Headers      map[string]string // sent with every export (an API key, say)
	MaxSpans     int               // in-memory store size; default DefaultMaxSpans
	Logger       *slog.Logger      // export failures are logged here; default: discarded
}

// Tracing owns the worker's tracer provider: every span goes to the in-memory
// SpanStore, and a sampled share of traces to an OTLP collector. It is passed
// to the parts that trace; the global OpenTelemetry provider is never set.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when disabled
	store    *SpanStore
}

// NewTracing builds the tracer provider cfg describes. The exporter connects
// lazily, so an unreachable collector does not stop the worker from starting.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	if !cfg.Enabled {
		return &Tracing{provider: noop.NewTracerProvider(), store: &SpanStore{}}, nil
	}
	if math.IsNaN(cfg.SampleRate) || cfg.SampleRate < 0 || cfg.SampleRate > 1 {
		return nil, fmt.Errorf("tracing: sample rate %v is not between 0 and 1", cfg.SampleRate)
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = "audit-worker"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	res, err := resource.Merge(resource.Default(),
		resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	store := NewSpanStore(cfg.MaxSpans)
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		// Every span is recorded so that the store sees it; export sampling
		// happens after recording (sampledProcessor).
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(store),
	}
	if cfg.OTLPEndpoint != "" {
		exp, err := newOTLPExporter(ctx, cfg)
		if err != nil {
			return nil, err
		}
		batcher := sdktrace.NewBatchSpanProcessor(&loggingExporter{SpanExporter: exp, log: cfg.Logger})
		opts = append(opts, sdktrace.WithSpanProcessor(newSampledProcessor(batcher, cfg.SampleRate)))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracing{provider: tp, sdk: tp, store: store}, nil
}

func newOTLPExporter(ctx context.Context, cfg TracingConfig) (sdktrace.SpanExporter, error) {
	u, err := url.Parse(cfg.OTLPEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing: OTLP endpoint %q is not an http(s) URL", cfg.OTLPEndpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.String())}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", u.Redacted(), err)
	}
	return exp, nil
}

// Tracer returns a named tracer (a no-op one when tracing is disabled).
func (t *Tracing) Tracer(name string) trace.Tracer { return t.provider.Tracer(name) }

// Enabled reports whether spans are recorded. Parts that accept a nil tracer
// (bullmq.WorkerOptions, pipeline.Instruments) skip even the no-op tracer's
// small per-batch cost when given nil instead.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// Store is the in-memory span store (empty when tracing is disabled).
func (t *Tracing) Store() *SpanStore { return t.store }

// Shutdown ends span processing and exports what is still queued, within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// sampledProcessor passes to next only the spans of sampled traces.
//
// Export sampling is done here and not by the SDK sampler because a span the
// sampler drops is never recorded, and the in-memory store must see every
// span. The decision depends on the trace id alone (like TraceIDRatioBased),
// so a trace is exported whole or not at all.
type sampledProcessor struct {
	next  sdktrace.SpanProcessor
	bound uint64 // a trace is exported when its id's low 63 bits are below bound
}

func newSampledProcessor(next sdktrace.SpanProcessor, rate float64) *sampledProcessor {
	return &sampledProcessor{next: next, bound: uint64(rate * (1 << 63))}
}

func (p *sampledProcessor) sampled(id trace.TraceID) bool {
	return p.bound >= 1<<63 || binary.BigEndian.Uint64(id[8:16])>>1 < p.bound
}

func (p *sampledProcessor) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) {
	if p.sampled(s.SpanContext().TraceID()) {
		p.next.OnStart(ctx, s)
	}
}

func (p *sampledProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if p.sampled(s.SpanContext().TraceID()) {
		p.next.OnEnd(s)
	}
}

func (p *sampledProcessor) Shutdown(ctx context.Context) error   { return p.next.Shutdown(ctx) }
func (p *sampledProcessor) ForceFlush(ctx context.Context) error { return p.next.ForceFlush(ctx) }

// loggingExporter logs failed exports through slog, at most once a minute so
// that a collector outage does not flood the log, and returns nil: the batch
// processor would only pass the error on to OpenTelemetry's global error
// handler, which this program leaves unconfigured (it prints to stderr).
type loggingExporter struct {
	sdktrace.SpanExporter
	log        *slog.Logger
	lastLogged atomic.Int64 // unix nanoseconds
	suppressed atomic.Int64
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	now, last := time.Now().UnixNano(), e.lastLogged.Load()
	if now-last < int64(time.Minute) || !e.lastLogged.CompareAndSwap(last, now) {
		e.suppressed.Add(1)
		return nil
	}
	e.log.Warn("trace export failed; spans dropped", "spans", len(spans), "failuresNotLogged", e.suppressed.Swap(0), "err", err)
	return nil
}
