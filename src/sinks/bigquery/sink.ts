/**
 * BigQuery sink, for production: rows go into tables `<prefix>raw_<experiment>.<datatype>`, read
 * through views `<prefix><experiment>.<datatype>`, with the ledger tables `_rejects` and
 * `_archives` in `<prefix>mlab_etl` (tables.ts). Rows go in by streaming inserts with the row key
 * as insertId (inserter.ts), so a redelivered archive or a retried request does not store a row
 * twice (best effort, about a minute; the views deduplicate the rest).
 *
 * What must stay true:
 * - Nothing reaches `_archives` until every insert of that archive's rows and rejects has been
 *   answered; if any of them failed for good, commitArchive throws and writes no ledger record, so
 *   the caller does not ack and the archive is processed again.
 * - Rows BigQuery refuses (per-row `invalid`, or a row too large for any request) are not errors
 *   of the archive: they go to `_rejects` with BigQuery's reason, and the ledger record stored by
 *   commitArchive counts them as rejected instead of written.
 * - The client's own retries are off (`retryOptions.autoRetry: false`): every call follows the
 *   one policy of retry.ts.
 * - A table's schema only grows (tables.ts); anything else stops with schema_incompatible before
 *   a row is written.
 */
import { createHash } from 'node:crypto';
import { BigQuery, type BigQueryOptions } from '@google-cloud/bigquery';
import type { EtlError, ErrorCode } from '../../errors.js';
import { excerpt, type ArchiveRecord, type RejectRecord } from '../../ledger/records.js';
import { stringifyBigQuery } from '../../json/lossless-json.js';
import type { SchemaSet } from '../../schema/schema-set.js';
import type { TableRef } from '../../schema/tables.js';
import { rowBytes, type RowBatch } from '../../rows/row-batch.js';
import type { CommitResult, SetupAction, Sink } from '../sink.js';
import { asSinkError, sinkError } from './errors.js';
import { Inserter, makeItem, type Item, type Origin, type Target } from './inserter.js';
import { DEFAULT_RETRY, Retrier, type RetryPolicy } from './retry.js';
import type { BigQuerySinkStats, SinkObserver } from './stats.js';
import { LEDGER_DATASET, TableSetup } from './tables.js';
import { DEFAULT_BIGQUERY_INSERTS_IN_FLIGHT } from '../defaults.js';

export { LEDGER_DATASET } from './tables.js';
export { DEFAULT_RETRY, type RetryPolicy } from './retry.js';
export type { BigQuerySinkStats, SinkObserver } from './stats.js';

export interface BigQuerySinkOptions {
  projectId: string;
  /** Prepended to every dataset name as is (`dev_` gives `dev_raw_ndt`): letters, digits, underscores. */
  datasetPrefix?: string;
  /** Location of the datasets the sink creates (`US` unless set). */
  location?: string;
  /** Another endpoint than bigquery.googleapis.com (tests). */
  apiEndpoint?: string;
  /** Credentials; application default credentials unless set. */
  authClient?: BigQueryOptions['authClient'];
  schemas: SchemaSet;
  /** Rows per insertAll request: 500, BigQuery's recommendation, unless set. */
  maxRowsPerRequest?: number;
  /** Bytes of an insertAll request body: 10,000,000 unless set (BigQuery refuses above 10 MiB). */
  maxRequestBytes?: number;
  /** insertAll requests in flight at once: 8 unless set. writeRows waits while all are busy. */
  maxInFlight?: number;
  retry?: Partial<RetryPolicy>;
  /** Time allowed for one HTTP request (ms): 60,000 unless set. */
  requestTimeoutMs?: number;
  /** Told of every insertAll request and every retry, for metrics. */
  observer?: SinkObserver;
}

interface ArchiveState {
  pending: Set<Promise<void>>;
  failures: EtlError[];
  rejected: number;
  byCode: Partial<Record<ErrorCode, number>>;
  firstReject?: RejectRecord;
  rejectSeq: number;
}

const READY_CACHE_MS = 10_000;
const READY_TIMEOUT_MS = 5_000;

function hash(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

export class BigQuerySink implements Sink {
  readonly description: string;
  /** insertAll requests sent at once, at most. */
  readonly insertsInFlight: number;
  readonly usesRowKeys = true;
  readonly stats: BigQuerySinkStats = { requests: 0, retries: 0, splits: 0, rowsInserted: 0, rowsRejected: 0 };
  private readonly tables: TableSetup;
  private readonly inserter: Inserter;
  private readonly archives = new Map<string, ArchiveState>();
  /** Archives whose last commit failed (with that processing's `started`), until they are written again. */
  private readonly unacked = new Map<string, { started: string; error: EtlError }>();
  private closed = false;
  private readyAnswer: { at: number; ok: boolean } | undefined;

  private constructor(
    private readonly bq: BigQuery,
    options: BigQuerySinkOptions,
  ) {
    const prefix = options.datasetPrefix ?? '';
    this.insertsInFlight = options.maxInFlight ?? DEFAULT_BIGQUERY_INSERTS_IN_FLIGHT;
    this.description = `bigquery:${options.projectId}${prefix ? `.${prefix}` : ''}`;
    const retrier = new Retrier({ ...DEFAULT_RETRY, ...options.retry }, this.stats, options.observer);
    this.tables = new TableSetup(
      bq,
      {
        schemas: options.schemas,
        projectId: options.projectId,
        prefix,
        location: options.location ?? 'US',
        description: this.description,
      },
      retrier,
    );
    this.inserter = new Inserter({
      description: this.description,
      maxRowsPerRequest: options.maxRowsPerRequest ?? 500,
      maxRequestBytes: options.maxRequestBytes ?? 10_000_000,
      maxInFlight: this.insertsInFlight,
      requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
      observer: options.observer,
      stats: this.stats,
      retrier,
      hooks: {
        pending: (archive, done) => {
          const pending = this.archive(archive).pending;
          pending.add(done);
          void done.finally(() => pending.delete(done));
        },
        failed: (archive, failure) => this.archive(archive).failures.push(failure),
        rejected: (item, code, message) => this.rejectRow(item, code, message),
      },
    });
  }

  /** Checks the options, connects, and creates the ledger datasets and tables when they are missing. */
  static async open(options: BigQuerySinkOptions): Promise<BigQuerySink> {
    checkOptions(options);
    const bq = new BigQuery({
      projectId: options.projectId,
      ...(options.apiEndpoint ? { apiEndpoint: options.apiEndpoint } : {}),
      ...(options.authClient ? { authClient: options.authClient } : {}),
      ...(options.location ? { location: options.location } : {}),
      retryOptions: { autoRetry: false, maxRetries: 0 },
    });
    const sink = new BigQuerySink(bq, options);
    await sink.tables.prepareLedger();
    return sink;
  }

  async prepareTable(ref: TableRef): Promise<void> {
    await this.tables.prepare(ref);
  }

  /**
   * Creates or updates the datasets, tables and views of these tables and the ledger, for
   * `mlab-etl setup`. The schemas do not say which experiments a datatype belongs to, so the
   * caller names the tables (`tableFor(experiment, datatype)`).
   */
  async setup(refs: TableRef[]): Promise<SetupAction[]> {
    return this.tables.setup(refs);
  }

  // -------------------------------------------------------------------------------------------
  // Rows and rejects

  private target(dataset: string, table: string): Target {
    const id = this.tables.datasetId(dataset);
    return this.inserter.target(`${id}.${table}`, () => this.bq.dataset(id).table(table));
  }

  private archive(url: string): ArchiveState {
    let s = this.archives.get(url);
    if (!s) {
      // Writing an archive again starts a new processing: the failed commit of the last one is forgotten.
      this.unacked.delete(url);
      s = { pending: new Set(), failures: [], rejected: 0, byCode: {}, rejectSeq: 0 };
      this.archives.set(url, s);
    }
    return s;
  }

  /**
   * Buffers the rows and sends them in requests of at most maxRowsPerRequest rows and
   * maxRequestBytes bytes; returns once they are buffered or sent, waiting while maxInFlight
   * requests are out. Each row's index within its entry goes into the reject written when
   * BigQuery refuses the row.
   */
  async writeRows(ref: TableRef, batch: RowBatch): Promise<void> {
    this.checkOpen();
    const { ends, keys, indices } = batch;
    if (ends.length !== keys.length || ends.length !== indices.length) {
      throw sinkError(
        'internal_error',
        `writeRows: ${ends.length} rows but ${keys.length} keys and ${indices.length} indices`,
      );
    }
    await this.tables.prepare(ref);
    const target = this.target(ref.dataset, ref.table);
    const archive = batch.archiveUrl;
    for (let i = 0; i < ends.length; i++) {
      const failed = this.archives.get(archive)?.failures[0];
      // An archive that already lost rows will not be acked: stop its parsing early.
      if (failed) throw failed;
      const origin: Origin = { datatype: ref.table, entry: batch.entry, time: batch.time, index: indices[i] };
      const item = makeItem(keys[i] as string, rowBytes(batch, i), archive, origin);
      if (!this.inserter.fits(item)) {
        this.rejectRow(
          item,
          'row_too_large',
          `the row is ${item.bytes} bytes as insertAll JSON; a request may hold at most ${this.inserter.maxBytes}`,
        );
        continue;
      }
      await this.inserter.push(target, item);
    }
  }

  async writeRejects(rejects: RejectRecord[]): Promise<void> {
    this.checkOpen();
    const target = this.target(LEDGER_DATASET, '_rejects');
    for (const r of rejects) await this.inserter.push(target, this.rejectItem(r));
  }

  private rejectItem(r: RejectRecord): Item {
    const json = stringifyBigQuery(r);
    // Deterministic, so a resent request is deduplicated; the sequence keeps two identical rejects of one archive apart.
    const seq = this.archive(r.archive_url).rejectSeq++;
    return makeItem(hash(`${json}\u0000${seq}`), Buffer.from(json), r.archive_url);
  }

  private checkOpen(): void {
    if (this.closed) throw sinkError('internal_error', `${this.description} is closed`);
  }

  /**
   * A row BigQuery will not take goes to `_rejects`. It is queued, not sent: this runs inside a
   * request's slot, and the commit of its archive sends it.
   */
  private rejectRow(item: Item, code: ErrorCode, message: string): void {
    const origin = item.origin as Origin;
    const reject: RejectRecord = {
      time: origin.time,
      archive_url: item.archive,
      datatype: origin.datatype,
      entry: origin.entry,
      ...(origin.index === undefined ? {} : { row_index: origin.index }),
      code,
      message: `${message} (insertId ${item.insertId})`,
      excerpt: excerpt(item.json.toString('utf8')),
    };
    const state = this.archive(item.archive);
    state.rejected++;
    state.byCode[code] = (state.byCode[code] ?? 0) + 1;
    state.firstReject ??= reject;
    this.stats.rowsRejected++;
    const target = this.target(LEDGER_DATASET, '_rejects');
    this.inserter.queue(target, this.rejectItem(reject));
  }

  // -------------------------------------------------------------------------------------------
  // Commit

  /**
   * Sends what is buffered for the archive, waits for every request holding its rows or rejects,
   * then inserts its ledger record. Rows BigQuery refused count as rejected rather than written
   * (status `partial`): the stored record says so, and `record` is updated to match once it is
   * stored. Throws EtlError sink_error, and writes no record, when any row could be neither stored
   * nor rejected; committing the same processing again throws again, until the archive is written anew.
   */
  async commitArchive(record: ArchiveRecord): Promise<CommitResult> {
    return this.commit(record);
  }

  /** commitArchive, telling what was stored and which rejects the sink added. */
  async commit(record: ArchiveRecord): Promise<CommitResult> {
    this.checkOpen();
    const key = record.archive_url;
    const state = this.archives.get(key);
    const earlier = this.unacked.get(key);
    if (!state && earlier?.started === record.started) throw earlier.error;
    const current = state ?? this.archive(key);
    try {
      for (;;) {
        const buffered = this.inserter.buffered(key);
        if (buffered.length === 0 && current.pending.size === 0) break;
        for (const t of buffered) await this.inserter.flush(t);
        await Promise.all([...current.pending]);
      }
      const failure = current.failures[0];
      if (failure) {
        throw sinkError(
          'sink_error',
          `${this.description}: ${key}: not every row was stored, no ledger record written: ${failure.message}${current.failures.length > 1 ? ` (and ${current.failures.length - 1} more failures)` : ''}`,
          { cause: failure, transient: current.failures.every((f) => f.retryable) },
        );
      }
      const stored = withSinkRejects(record, current);
      const ledger = this.target(LEDGER_DATASET, '_archives');
      // One processing of an archive is one record: a retried commit is deduplicated.
      const item = makeItem(hash(`${key}\u0000${record.started}`), Buffer.from(stringifyBigQuery(stored)), key);
      await this.inserter.send(ledger, [item]);
      Object.assign(record, stored);
      return { record: stored, rejected: { ...current.byCode } };
    } catch (err) {
      this.unacked.set(key, { started: record.started, error: asSinkError(err, this.description) });
      throw err;
    } finally {
      this.archives.delete(key);
    }
  }

  /**
   * For readiness probes: the ledger dataset answers a read. One attempt with a short timeout,
   * and the answer is reused for READY_CACHE_MS so frequent probes cost no API quota.
   */
  async ready(): Promise<boolean> {
    if (this.closed) return false;
    const now = Date.now();
    if (this.readyAnswer && now - this.readyAnswer.at < READY_CACHE_MS) return this.readyAnswer.ok;
    let ok: boolean;
    try {
      await this.bq
        .dataset(this.tables.datasetId(LEDGER_DATASET))
        .request({ method: 'GET', uri: '', timeout: READY_TIMEOUT_MS });
      ok = true;
    } catch {
      ok = false;
    }
    this.readyAnswer = { at: now, ok };
    return ok;
  }

  /** Waits for the requests in flight and stops; rows not committed are dropped (their archives were not acked). */
  async close(): Promise<void> {
    this.closed = true;
    await this.inserter.close();
  }
}

function withSinkRejects(record: ArchiveRecord, state: ArchiveState): ArchiveRecord {
  if (state.rejected === 0) return record;
  const first = state.firstReject;
  const stored: ArchiveRecord = {
    ...record,
    rows_written: Math.max(0, record.rows_written - state.rejected),
    rows_rejected: record.rows_rejected + state.rejected,
  };
  if (record.status === 'ok') {
    stored.status = 'partial';
    stored.error_code = first?.code ?? 'sink_rejected';
    stored.error_message = `${state.rejected} rows refused by BigQuery (see _rejects)${first ? `; first: ${first.message}` : ''}`;
  }
  return stored;
}

function checkOptions(options: BigQuerySinkOptions): void {
  const bad = (option: string, why: string): EtlError => sinkError('sink_error', `bigquery sink: ${option} ${why}`);
  // Names are put into view SQL between backticks: keep to what project ids are made of.
  if (!/^[A-Za-z0-9][A-Za-z0-9.:_-]*$/.test(options.projectId)) {
    throw bad('projectId', `"${options.projectId}" is not a Google Cloud project id`);
  }
  if (options.datasetPrefix !== undefined && !/^[A-Za-z0-9_]*$/.test(options.datasetPrefix)) {
    throw bad('datasetPrefix', `"${options.datasetPrefix}" may hold only letters, digits and underscores`);
  }
  const positive: Array<[string, number | undefined]> = [
    ['maxRowsPerRequest', options.maxRowsPerRequest],
    ['maxRequestBytes', options.maxRequestBytes],
    ['maxInFlight', options.maxInFlight],
    ['retry.attempts', options.retry?.attempts],
  ];
  for (const [name, value] of positive) {
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) throw bad(name, 'must be a positive integer');
  }
}
