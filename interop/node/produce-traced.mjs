// produce-traced.mjs: add one job through a Queue with BullMQ's OpenTelemetry
// integration (bullmq-otel), as a traced Node service would, and report the
// producer span that the job's trace context points to.
//
//   node produce-traced.mjs --prefix P --queue Q --data '<event JSON>' [--name NAME] [--opts '{...}']
//
// Prints {"id", "timestamp", "traceId", "spanId", "spanName", "spanKind", "spans"}:
// traceId/spanId are those of the "add" span, whose context BullMQ stores in
// the job's options ("tm"); spans counts what the in-memory exporter received.
import { Queue } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';
import { SpanKind, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { common, required, run } from './lib.mjs';

run(async (args) => {
  const { queue: name, opts } = common(args);
  const data = JSON.parse(required(args, 'data'));
  const jobOpts = args.opts ? JSON.parse(args.opts) : {};

  // bullmq-otel reaches the tracer and the propagator through the OpenTelemetry
  // API's globals, so this process registers both (it is a one-shot script).
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());

  const queue = new Queue(name, { ...opts, telemetry: new BullMQOtel('audit-producer') });
  let job;
  try {
    job = await queue.add(args.name || name, data, jobOpts);
  } finally {
    await queue.close();
  }
  await provider.forceFlush();
  const spans = exporter.getFinishedSpans();
  const producer = spans.filter((s) => s.kind === SpanKind.PRODUCER);
  if (producer.length !== 1) {
    throw new Error(`want one producer span, got ${producer.length} of ${spans.length} spans`);
  }
  const ctx = producer[0].spanContext();
  await provider.shutdown();
  return {
    id: job.id,
    timestamp: job.timestamp,
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    spanName: producer[0].name,
    spanKind: 'PRODUCER',
    spans: spans.length,
  };
});
