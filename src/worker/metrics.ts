/**
 * Prometheus metrics (the golden signals M-Lab asks of services): traffic (archives, entries,
 * rows, bytes by datatype and status), errors (rejects and failures by code), latency (archive
 * duration, sink request latency) and saturation (archives in flight). Labels are bounded: datatype,
 * status, error code; never a message or a URL.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ArchiveResult } from '../pipeline/process-archive.js';

export class Metrics {
  readonly registry = new Registry();
  readonly archives = new Counter({
    name: 'mlab_etl_archives_total',
    help: 'Archives processed, by datatype and final status (ok, partial, failed).',
    labelNames: ['datatype', 'status'],
    registers: [this.registry],
  });
  readonly failures = new Counter({
    name: 'mlab_etl_archive_failures_total',
    help: 'Archives that failed, by error code.',
    labelNames: ['datatype', 'code'],
    registers: [this.registry],
  });
  readonly entries = new Counter({
    name: 'mlab_etl_entries_total',
    help: 'Archive entries, by datatype and outcome (parsed, skipped, failed, directory).',
    labelNames: ['datatype', 'status'],
    registers: [this.registry],
  });
  readonly rows = new Counter({
    name: 'mlab_etl_rows_total',
    help: 'Rows, by datatype and outcome (written, rejected).',
    labelNames: ['datatype', 'status'],
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: 'mlab_etl_bytes_total',
    help: 'Bytes read, by datatype: archive (as stored) and entry (decompressed).',
    labelNames: ['datatype', 'kind'],
    registers: [this.registry],
  });
  readonly rejects = new Counter({
    name: 'mlab_etl_rejects_total',
    help: 'Entries or records that did not become rows, by code.',
    labelNames: ['datatype', 'code'],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'mlab_etl_archive_duration_seconds',
    help: 'Time to process an archive, from the first byte to the ledger record.',
    labelNames: ['datatype', 'status'],
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'mlab_etl_archives_in_flight',
    help: 'Archives being processed now.',
    registers: [this.registry],
  });
  readonly maxInFlight = new Gauge({
    name: 'mlab_etl_max_in_flight',
    help: 'The --max-in-flight limit: in-flight archives at this value mean the worker is saturated.',
    registers: [this.registry],
  });
  readonly messages = new Counter({
    name: 'mlab_etl_messages_total',
    help: 'Pub/Sub messages and push requests, by trigger and outcome (ack, nack, ignored, bad, refused, busy, unauthenticated).',
    labelNames: ['trigger', 'outcome'],
    registers: [this.registry],
  });
  readonly sinkLatency = new Histogram({
    name: 'mlab_etl_sink_request_duration_seconds',
    help: 'Latency of sink requests (e.g. BigQuery insertAll), by sink and operation.',
    labelNames: ['sink', 'operation'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly sinkRetries = new Counter({
    name: 'mlab_etl_sink_retries_total',
    help: 'Sink requests retried, by sink and reason.',
    labelNames: ['sink', 'reason'],
    registers: [this.registry],
  });
  readonly sourceResumes = new Counter({
    name: 'mlab_etl_source_resumes_total',
    help: 'Cloud Storage reads resumed from a byte offset after a transient failure.',
    registers: [this.registry],
  });

  /** The datatypes that may be label values; any other datatype is counted as `other`. */
  private readonly datatypes: ReadonlySet<string>;

  constructor(options: { defaultMetrics?: boolean; datatypes?: Iterable<string> } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.datatypes = new Set(options.datatypes ?? []);
  }

  /**
   * A datatype as a label value: the registered ones, else `other`. A datatype comes from an
   * object name anyone who can publish or push may choose, and every label value is a series
   * that never expires: unbounded values are a memory leak an attacker controls.
   */
  datatypeLabel(datatype: string): string {
    return this.datatypes.has(datatype) ? datatype : 'other';
  }

  /** Counts what one processed archive did. */
  recordArchive(result: ArchiveResult): void {
    const r = result.record;
    const d = this.datatypeLabel(r.datatype);
    this.archives.inc({ datatype: d, status: r.status });
    if (r.status === 'failed' && r.error_code) this.failures.inc({ datatype: d, code: r.error_code });
    this.entries.inc({ datatype: d, status: 'parsed' }, r.entries_parsed);
    this.entries.inc({ datatype: d, status: 'skipped' }, r.entries_skipped);
    this.entries.inc({ datatype: d, status: 'failed' }, r.entries_failed);
    this.entries.inc({ datatype: d, status: 'directory' }, r.directories);
    this.rows.inc({ datatype: d, status: 'written' }, r.rows_written);
    this.rows.inc({ datatype: d, status: 'rejected' }, r.rows_rejected);
    this.bytes.inc({ datatype: d, kind: 'archive' }, r.archive_bytes ?? 0);
    this.bytes.inc({ datatype: d, kind: 'entry' }, r.entry_bytes ?? 0);
    for (const [code, n] of result.rejectCodes) this.rejects.inc({ datatype: d, code }, n);
    this.duration.observe({ datatype: d, status: r.status }, result.seconds);
  }
}
