/**
 * BigQuery sink, for production: tables `<prefix>raw_<experiment>.<datatype>` typed from the JSON
 * Schema and DAY-partitioned on `date` (queries must filter on it), views
 * `<prefix><experiment>.<datatype>` from views.ts, and the ledger tables `_rejects` and `_archives`
 * in `<prefix>mlab_etl`.
 *
 * Rows go in by streaming inserts (tabledata.insertAll) with the row key as insertId, so a
 * redelivered archive or a retried request does not store a row twice (best effort, about a
 * minute; the views deduplicate the rest). Requests are built here as JSON text rather than through
 * `table.insert`: that call copies every row and serialises it with JSON.stringify, which throws
 * on bigint, and only the text it sends can be measured against the 10 MB request limit.
 *
 * What must stay true:
 * - Nothing reaches `_archives` until every insert of that archive's rows and rejects has been
 *   answered; if any of them failed for good, commitArchive throws and writes no ledger record, so
 *   the caller does not ack and the archive is processed again.
 * - Rows BigQuery refuses (per-row `invalid`, or a row too large for any request) are not errors
 *   of the archive: they go to `_rejects` with BigQuery's reason, and the ledger record stored by
 *   commitArchive counts them as rejected instead of written.
 * - The client's own retries are off (`retryOptions.autoRetry: false`): its policy never retries
 *   403 quotaExceeded and stacks its attempts under ours. Every call here follows one policy:
 *   exponential backoff with full jitter, only for 5xx, 429, 403 quota/rate/backend reasons and
 *   connection failures; other 4xx fail at once.
 * - A table's schema only grows: fields are added or relaxed from REQUIRED to NULLABLE, never
 *   changed or removed; anything else stops with schema_incompatible before a row is written.
 *
 * Ledger tables: `_archives` is partitioned by day on `started` and clustered on `archive_url`,
 * `_rejects` by day on `time` and clustered on `archive_url`; neither requires a partition filter,
 * because "was this archive processed, and what went wrong" is asked without knowing when.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BigQuery, type BigQueryOptions, type Dataset, type Table } from '@google-cloud/bigquery';
import { EtlError, type ErrorCode } from '../../errors.js';
import { excerpt, type ArchiveRecord, type RejectRecord } from '../../ledger/records.js';
import { stringifyBigQuery } from '../../json/lossless-json.js';
import { bigQuerySchema, type SchemaSet } from '../../schema/schema-set.js';
import { planView } from '../../schema/views.js';
import { rowBytes, type RowBatch } from '../../rows/row-batch.js';
import type { CommitResult, SetupAction, Sink } from '../sink.js';
import type { TableRef } from '../../schema/tables.js';
import { DEFAULT_BIGQUERY_INSERTS_IN_FLIGHT } from '../defaults.js';

/** The dataset of `_rejects` and `_archives`, after the prefix. */
export const LEDGER_DATASET = 'mlab_etl';

export interface RetryPolicy {
  /** Tries per request, the first included. */
  attempts: number;
  /** The first backoff's upper bound (ms); each further one doubles, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseDelayMs: 250, maxDelayMs: 32_000 };

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

export interface SinkObserver {
  request(operation: string, seconds: number, outcome: 'ok' | 'error'): void;
  retry(reason: string): void;
}

/** Counters for metrics. */
export interface BigQuerySinkStats {
  requests: number;
  retries: number;
  splits: number;
  rowsInserted: number;
  rowsRejected: number;
}

interface BqField {
  name: string;
  type: string;
  mode?: string;
  description?: string;
  fields?: BqField[];
  [attribute: string]: unknown;
}

interface InsertError {
  index: number;
  errors?: Array<{ reason?: string; location?: string; message?: string }>;
}

interface InsertAllResponse {
  insertErrors?: InsertError[];
}

/** Where a data row came from, to write a reject for it. */
interface Origin {
  datatype: string;
  entry: string;
  index?: number;
  time: string;
}

interface Item {
  insertId: string;
  /** The row as BigQuery JSON, UTF-8: for rows, a view of the pipeline's batch, never copied or decoded until sent. */
  json: Buffer;
  /** Bytes of the item inside a request, `{"insertId":...,"json":...}`. */
  bytes: number;
  /** The archive_url whose commit waits for this item. */
  archive: string;
  /** Set for rows of a data table: BigQuery may refuse them one by one. Ledger items have none. */
  origin?: Origin;
}

interface Target {
  /** `dataset.table`, prefix included. */
  name: string;
  table: Table;
  items: Item[];
  bytes: number;
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

const BODY_HEAD = '{"skipInvalidRows":false,"ignoreUnknownValues":false,"rows":[';
const BODY_TAIL = ']}';
const ENVELOPE_BYTES = BODY_HEAD.length + BODY_TAIL.length;
/** `{"insertId":` + `,"json":` + `}` around each item. */
const ITEM_FRAME_BYTES = '{"insertId":,"json":}'.length;

/**
 * The insertAll body, assembled as bytes: the rows' JSON is copied in as it came from the
 * pipeline. (Built as a string, every row was decoded from UTF-8 and the body encoded again: two
 * passes over every byte that took most of the sink's time.)
 */
function requestBody(items: Item[]): Buffer {
  let total = ENVELOPE_BYTES + Math.max(0, items.length - 1);
  for (const i of items) total += i.bytes;
  const body = Buffer.allocUnsafe(total);
  let at = body.write(BODY_HEAD, 0, 'utf8');
  items.forEach((item, k) => {
    at += body.write(`${k === 0 ? '' : ','}{"insertId":${JSON.stringify(item.insertId)},"json":`, at, 'utf8');
    at += item.json.copy(body, at);
    body[at++] = 0x7d; // }
  });
  at += body.write(BODY_TAIL, at, 'utf8');
  if (at !== total) throw new Error(`insertAll body is ${at} bytes, ${total} expected`);
  return body;
}

/** 403 reasons that mean "later", unlike accessDenied or billingNotEnabled. */
const RETRYABLE_403 = new Set(['quotaExceeded', 'rateLimitExceeded', 'backendError']);
/** Per-row reasons that mean the row itself is fine. */
const RETRYABLE_ROW = new Set(['backendError', 'internalError', 'timeout', 'rateLimitExceeded', 'quotaExceeded']);
const NETWORK_ERROR = /^(E[A-Z]+|ERR_[A-Z_]+|UND_ERR[A-Z_]*)$/;

const FIELD_TYPES: Record<string, string> = {
  INT64: 'INTEGER',
  FLOAT64: 'FLOAT',
  BOOL: 'BOOLEAN',
  STRUCT: 'RECORD',
  DECIMAL: 'NUMERIC',
  BIGDECIMAL: 'BIGNUMERIC',
};

function canonicalType(type: string): string {
  const upper = type.toUpperCase();
  return FIELD_TYPES[upper] ?? upper;
}

function modeOf(f: BqField): string {
  return (f.mode ?? 'NULLABLE').toUpperCase();
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

interface ApiErrorLike {
  code?: unknown;
  message?: unknown;
  name?: unknown;
  type?: unknown;
  errors?: Array<{ reason?: unknown; message?: unknown }>;
}

function apiError(err: unknown): ApiErrorLike {
  return err !== null && typeof err === 'object' ? err : {};
}

function statusOf(err: unknown): number | undefined {
  const code = apiError(err).code;
  return typeof code === 'number' ? code : undefined;
}

function reasonOf(err: unknown): string | undefined {
  const reason = apiError(err).errors?.[0]?.reason;
  return typeof reason === 'string' ? reason : undefined;
}

function messageOf(err: unknown): string {
  const m = apiError(err).message;
  return typeof m === 'string' ? m : String(err);
}

type Verdict = 'retry' | 'too-large' | 'fatal';

function classify(err: unknown): Verdict {
  const status = statusOf(err);
  if (status === 413 || (status === 400 && /payload size exceeds/i.test(messageOf(err)))) return 'too-large';
  if (status !== undefined) {
    if (status >= 500 || status === 429 || status === 408) return 'retry';
    if (status === 403 && RETRYABLE_403.has(reasonOf(err) ?? '')) return 'retry';
    return 'fatal';
  }
  // No HTTP status: the request did not get an answer (reset, timeout, DNS). insertIds make resending safe.
  const e = apiError(err);
  if (typeof e.code === 'string' && NETWORK_ERROR.test(e.code)) return 'retry';
  if (e.name === 'FetchError' || e.name === 'AbortError' || e.type === 'request-timeout') return 'retry';
  return 'fatal';
}

function describe(err: unknown): string {
  const status = statusOf(err);
  const reason = reasonOf(err);
  return `${status === undefined ? '' : `${status} `}${reason ? `${reason}: ` : ''}${messageOf(err)}`;
}

/** Adds what the schema file has and the live table lacks; lists what cannot be reconciled. */
function evolve(
  live: BqField[],
  wanted: BqField[],
  prefix = '',
): { fields: BqField[]; changes: string[]; conflicts: string[] } {
  const changes: string[] = [];
  const conflicts: string[] = [];
  const fields = live.map((l) => ({ ...l }));
  for (const w of wanted) {
    const path = `${prefix}${w.name}`;
    const at = fields.findIndex((l) => l.name.toLowerCase() === w.name.toLowerCase());
    const l = fields[at];
    if (!l) {
      if (modeOf(w) === 'REQUIRED') {
        conflicts.push(`field ${path} is new and REQUIRED; a new field must be optional (NULLABLE or REPEATED)`);
      } else {
        fields.push(w);
        changes.push(`added ${path}`);
      }
      continue;
    }
    const liveType = canonicalType(l.type);
    const wantedType = canonicalType(w.type);
    if (liveType !== wantedType) {
      conflicts.push(`field ${path} is ${liveType} in the table and ${wantedType} in the schema file`);
      continue;
    }
    const liveMode = modeOf(l);
    const wantedMode = modeOf(w);
    if (liveMode !== wantedMode) {
      if (liveMode === 'REQUIRED' && wantedMode === 'NULLABLE') {
        fields[at] = { ...l, mode: 'NULLABLE' };
        changes.push(`relaxed ${path} to NULLABLE`);
      } else if (wantedMode === 'REQUIRED') {
        conflicts.push(`field ${path} became REQUIRED in the schema file; the table has it ${liveMode}`);
        continue;
      } else {
        conflicts.push(`field ${path} is ${liveMode} in the table and ${wantedMode} in the schema file`);
        continue;
      }
    }
    if (wantedType === 'RECORD') {
      const inner = evolve(l.fields ?? [], w.fields ?? [], `${path}.`);
      changes.push(...inner.changes);
      conflicts.push(...inner.conflicts);
      if (inner.changes.length > 0) fields[at] = { ...(fields[at] as BqField), fields: inner.fields };
    }
  }
  return { fields, changes, conflicts };
}

/** A counting semaphore: bounds the insertAll requests in flight. */
class Slots {
  private used = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly size: number) {}

  async acquire(): Promise<void> {
    if (this.used < this.size) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.used--;
  }
}

export class BigQuerySink implements Sink {
  readonly description: string;
  /** insertAll requests sent at once, at most. */
  readonly insertsInFlight: number;
  readonly usesRowKeys = true;
  readonly stats: BigQuerySinkStats = { requests: 0, retries: 0, splits: 0, rowsInserted: 0, rowsRejected: 0 };
  private readonly schemas: SchemaSet;
  private readonly projectId: string;
  private readonly prefix: string;
  private readonly location: string;
  private readonly maxRows: number;
  private readonly maxBytes: number;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly observer: SinkObserver | undefined;
  private readonly slots: Slots;
  private readonly targets = new Map<string, Target>();
  private readonly archives = new Map<string, ArchiveState>();
  /** Prepares done or under way, by object name: a second prepare sends no request. */
  private readonly prepared = new Map<string, Promise<SetupAction[]>>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Archives whose last commit failed (with that processing's `started`), until they are written again. */
  private readonly unacked = new Map<string, { started: string; error: EtlError }>();
  private closed = false;
  private readyAnswer: { at: number; ok: boolean } | undefined;

  private constructor(
    private readonly bq: BigQuery,
    options: BigQuerySinkOptions,
  ) {
    this.schemas = options.schemas;
    this.projectId = options.projectId;
    this.prefix = options.datasetPrefix ?? '';
    this.location = options.location ?? 'US';
    this.maxRows = options.maxRowsPerRequest ?? 500;
    this.maxBytes = options.maxRequestBytes ?? 10_000_000;
    this.timeoutMs = options.requestTimeoutMs ?? 60_000;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.observer = options.observer;
    this.insertsInFlight = options.maxInFlight ?? DEFAULT_BIGQUERY_INSERTS_IN_FLIGHT;
    this.slots = new Slots(this.insertsInFlight);
    this.description = `bigquery:${this.projectId}${this.prefix ? `.${this.prefix}` : ''}`;
  }

  /** Checks the options, connects, and creates the ledger datasets and tables when they are missing. */
  static async open(options: BigQuerySinkOptions): Promise<BigQuerySink> {
    const bad = (option: string, why: string): EtlError =>
      new EtlError('sink_error', `bigquery sink: ${option} ${why}`, { stage: 'sink' });
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
    const bq = new BigQuery({
      projectId: options.projectId,
      ...(options.apiEndpoint ? { apiEndpoint: options.apiEndpoint } : {}),
      ...(options.authClient ? { authClient: options.authClient } : {}),
      ...(options.location ? { location: options.location } : {}),
      retryOptions: { autoRetry: false, maxRetries: 0 },
    });
    const sink = new BigQuerySink(bq, options);
    await sink.prepareLedger();
    return sink;
  }

  private datasetId(dataset: string): string {
    return `${this.prefix}${dataset}`;
  }

  // -------------------------------------------------------------------------------------------
  // Datasets, tables, views

  async prepareTable(ref: TableRef): Promise<void> {
    await this.prepare(ref);
  }

  /**
   * Creates or updates the datasets, tables and views of these tables and the ledger, for
   * `mlab-etl setup`. The schemas do not say which experiments a datatype belongs to, so the
   * caller names the tables (`tableFor(experiment, datatype)`).
   */
  async setup(refs: TableRef[]): Promise<SetupAction[]> {
    const actions = await this.prepareLedger();
    for (const ref of refs) actions.push(...(await this.prepare(ref)));
    return actions;
  }

  private async prepareLedger(): Promise<SetupAction[]> {
    return this.once(`${this.datasetId(LEDGER_DATASET)}.`, async () => [
      ...(await this.ensureDataset(LEDGER_DATASET)),
      ...(await this.ensureTable(LEDGER_DATASET, '_archives', '_archives', {
        partitionField: 'started',
        clustering: ['archive_url'],
      })),
      ...(await this.ensureTable(LEDGER_DATASET, '_rejects', '_rejects', {
        partitionField: 'time',
        clustering: ['archive_url'],
      })),
    ]);
  }

  private async prepare(ref: TableRef): Promise<SetupAction[]> {
    return this.once(`${this.datasetId(ref.dataset)}.${ref.table}`, async () => {
      const actions = [
        ...(await this.ensureDataset(ref.dataset)),
        ...(await this.ensureTable(ref.dataset, ref.table, ref.table, {
          partitionField: 'date',
          // Annotation tables are read through the joined views, by a join on date that BigQuery
          // does not count as a partition filter: requiring one would make every view query fail.
          requirePartitionFilter: this.schemas.meta(ref.table).annotates !== true,
        })),
      ];
      const plan = planView(ref, this.schemas);
      for (const need of plan.needs) actions.push(...(await this.prepare(need)));
      actions.push(...(await this.ensureDataset(ref.viewDataset)));
      const sql = plan.sql('bigquery', (d, t) => `\`${this.projectId}.${this.datasetId(d)}.${t}\``);
      actions.push(...(await this.ensureView(ref, sql)));
      return actions;
    });
  }

  /** Runs a prepare once per sink; a failed one is tried again next time. */
  private async once(key: string, run: () => Promise<SetupAction[]>): Promise<SetupAction[]> {
    let p = this.prepared.get(key);
    if (p) {
      await p;
      return [];
    }
    // The error is shaped inside the shared promise: every caller waiting on it gets a sink_error.
    p = run().catch((err: unknown) => {
      this.prepared.delete(key);
      if (err instanceof EtlError) throw err;
      throw new EtlError('sink_error', `${this.description}: cannot prepare ${key}: ${describe(err)}`, {
        stage: 'sink',
        cause: err,
        retryable: classify(err) === 'retry',
      });
    });
    this.prepared.set(key, p);
    return await p;
  }

  private async ensureDataset(dataset: string): Promise<SetupAction[]> {
    const id = this.datasetId(dataset);
    const key = `dataset ${id}`;
    const earlier = this.prepared.get(key);
    if (earlier) {
      // Under way for another table of the same dataset: its tables must wait for it too.
      await earlier;
      return [];
    }
    const run = async (): Promise<SetupAction[]> => {
      const ds = this.bq.dataset(id);
      try {
        await this.retrying(() => ds.get());
        return [{ object: id, kind: 'dataset', action: 'unchanged' }];
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
      try {
        await this.retrying(() => this.bq.createDataset(id, { location: this.location }));
      } catch (err) {
        // Another worker created it meanwhile.
        if (statusOf(err) === 409) return [{ object: id, kind: 'dataset', action: 'unchanged' }];
        throw err;
      }
      return [{ object: id, kind: 'dataset', action: 'created' }];
    };
    const p = run();
    this.prepared.set(key, p);
    try {
      return await p;
    } catch (err) {
      this.prepared.delete(key);
      throw err;
    }
  }

  private async ensureTable(
    dataset: string,
    table: string,
    schemaName: string,
    layout: { partitionField: string; requirePartitionFilter?: boolean; clustering?: string[] },
  ): Promise<SetupAction[]> {
    const ds: Dataset = this.bq.dataset(this.datasetId(dataset));
    const object = `${this.datasetId(dataset)}.${table}`;
    const wanted = bigQuerySchema(this.schemas.fields(schemaName)) as BqField[];
    const description = this.schemas.get(schemaName).description;
    const partitioned = wanted.some((f) => f.name === layout.partitionField);
    const requireFilter = partitioned && layout.requirePartitionFilter === true;
    const handle = ds.table(table);
    for (let round = 0; ; round++) {
      const meta = await this.metadataOrNone<{ schema?: { fields?: BqField[] }; etag?: string; type?: string }>(handle);
      if (!meta) {
        try {
          await this.retrying(() =>
            ds.createTable(table, {
              schema: { fields: wanted },
              ...(partitioned
                ? {
                    // Both spellings: the table-level one is current, the other is what older readers look at.
                    timePartitioning: {
                      type: 'DAY',
                      field: layout.partitionField,
                      ...(requireFilter ? { requirePartitionFilter: true } : {}),
                    },
                    ...(requireFilter ? { requirePartitionFilter: true } : {}),
                  }
                : {}),
              ...(layout.clustering ? { clustering: { fields: layout.clustering } } : {}),
              ...(typeof description === 'string' ? { description } : {}),
            }),
          );
          return [{ object, kind: 'table', action: 'created' }];
        } catch (err) {
          if (statusOf(err) === 409 && round < 3) continue;
          throw err;
        }
      }
      if (meta.type === 'VIEW') {
        throw new EtlError('schema_incompatible', `${this.description}: ${object} is a view, expected a table`, {
          stage: 'sink',
        });
      }
      const { fields, changes, conflicts } = evolve(meta.schema?.fields ?? [], wanted);
      if (conflicts.length > 0) {
        throw new EtlError(
          'schema_incompatible',
          `${this.description}: table ${object} cannot take schemas/${schemaName}.json: ${conflicts.join('; ')}`,
          { stage: 'sink' },
        );
      }
      if (changes.length === 0) return [{ object, kind: 'table', action: 'unchanged' }];
      try {
        // The etag makes a concurrent change by another worker fail (412) instead of being overwritten.
        await this.retrying(() =>
          handle.setMetadata({ schema: { fields }, ...(meta.etag ? { etag: meta.etag } : {}) }),
        );
        return [{ object, kind: 'table', action: 'updated', changes }];
      } catch (err) {
        if (statusOf(err) === 412 && round < 3) continue;
        throw err;
      }
    }
  }

  private async ensureView(ref: TableRef, query: string): Promise<SetupAction[]> {
    const ds = this.bq.dataset(this.datasetId(ref.viewDataset));
    const object = `${this.datasetId(ref.viewDataset)}.${ref.table}`;
    const handle = ds.table(ref.table);
    const view = { query, useLegacySql: false };
    for (let round = 0; ; round++) {
      const meta = await this.metadataOrNone<{ type?: string; view?: { query?: string; useLegacySql?: boolean } }>(
        handle,
      );
      if (!meta) {
        try {
          const description = this.schemas.get(ref.table).description;
          await this.retrying(() =>
            ds.createTable(ref.table, {
              view,
              description: `One row per (id, date) of ${this.datasetId(ref.dataset)}.${ref.table}, the newest parse winning.${typeof description === 'string' ? ` ${description}` : ''}`,
            }),
          );
          return [{ object, kind: 'view', action: 'created' }];
        } catch (err) {
          if (statusOf(err) === 409 && round < 3) continue;
          throw err;
        }
      }
      if (meta.type !== 'VIEW') {
        throw new EtlError('schema_incompatible', `${this.description}: ${object} is a table, expected a view`, {
          stage: 'sink',
        });
      }
      if (meta.view?.query === query && meta.view.useLegacySql === false) {
        return [{ object, kind: 'view', action: 'unchanged' }];
      }
      await this.retrying(() => handle.setMetadata({ view }));
      return [{ object, kind: 'view', action: 'updated', changes: ['query'] }];
    }
  }

  // -------------------------------------------------------------------------------------------
  // Rows and rejects

  private target(dataset: string, table: string): Target {
    const name = `${this.datasetId(dataset)}.${table}`;
    let t = this.targets.get(name);
    if (!t) {
      t = { name, table: this.bq.dataset(this.datasetId(dataset)).table(table), items: [], bytes: 0 };
      this.targets.set(name, t);
    }
    return t;
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

  private item(insertId: string, json: Buffer, archive: string, origin?: Origin): Item {
    const bytes = json.length + Buffer.byteLength(JSON.stringify(insertId)) + ITEM_FRAME_BYTES;
    return { insertId, json, bytes, archive, ...(origin ? { origin } : {}) };
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
      throw new EtlError(
        'internal_error',
        `writeRows: ${ends.length} rows but ${keys.length} keys and ${indices.length} indices`,
        { stage: 'sink' },
      );
    }
    await this.prepare(ref);
    const target = this.target(ref.dataset, ref.table);
    const archive = batch.archiveUrl;
    for (let i = 0; i < ends.length; i++) {
      const failed = this.archives.get(archive)?.failures[0];
      // An archive that already lost rows will not be acked: stop its parsing early.
      if (failed) throw failed;
      const origin: Origin = { datatype: ref.table, entry: batch.entry, time: batch.time, index: indices[i] };
      const item = this.item(keys[i] as string, rowBytes(batch, i), archive, origin);
      if (ENVELOPE_BYTES + item.bytes > this.maxBytes) {
        this.rejectRow(
          item,
          'row_too_large',
          `the row is ${item.bytes} bytes as insertAll JSON; a request may hold at most ${this.maxBytes}`,
        );
        continue;
      }
      await this.push(target, item);
    }
  }

  async writeRejects(rejects: RejectRecord[]): Promise<void> {
    this.checkOpen();
    const target = this.target(LEDGER_DATASET, '_rejects');
    for (const r of rejects) await this.push(target, this.rejectItem(r));
  }

  private rejectItem(r: RejectRecord): Item {
    const json = stringifyBigQuery(r);
    // Deterministic, so a resent request is deduplicated; the sequence keeps two identical rejects of one archive apart.
    const seq = this.archive(r.archive_url).rejectSeq++;
    return this.item(hash(`${json}\u0000${seq}`), Buffer.from(json), r.archive_url);
  }

  private checkOpen(): void {
    if (this.closed) throw new EtlError('internal_error', `${this.description} is closed`, { stage: 'sink' });
  }

  private async push(target: Target, item: Item): Promise<void> {
    const extra = target.items.length === 0 ? item.bytes : item.bytes + 1;
    if (target.items.length > 0 && ENVELOPE_BYTES + target.bytes + extra > this.maxBytes) {
      await this.flush(target);
    }
    target.bytes += target.items.length === 0 ? item.bytes : item.bytes + 1;
    target.items.push(item);
    if (target.items.length >= this.maxRows) await this.flush(target);
  }

  /** Sends what the target holds, in requests within the limits; resolves once each has a slot. */
  private async flush(target: Target): Promise<void> {
    const items = target.items;
    target.items = [];
    target.bytes = 0;
    let batch: Item[] = [];
    let bytes = ENVELOPE_BYTES;
    for (const item of items) {
      const extra = batch.length === 0 ? item.bytes : item.bytes + 1;
      if (batch.length > 0 && (batch.length >= this.maxRows || bytes + extra > this.maxBytes)) {
        await this.dispatch(target, batch);
        batch = [];
        bytes = ENVELOPE_BYTES;
      }
      bytes += batch.length === 0 ? item.bytes : item.bytes + 1;
      batch.push(item);
    }
    if (batch.length > 0) await this.dispatch(target, batch);
  }

  /**
   * Starts one request in the background. Its promise is registered with every archive it holds
   * before the slot is awaited, so a commit never misses a request that is still queued.
   */
  private async dispatch(target: Target, batch: Item[]): Promise<void> {
    const acquired = this.slots.acquire();
    const done = acquired.then(async () => {
      try {
        await this.send(target, batch);
      } catch (err) {
        const failure =
          err instanceof EtlError
            ? err
            : new EtlError('sink_error', `${this.description}: ${messageOf(err)}`, { stage: 'sink', cause: err });
        for (const archive of new Set(batch.map((i) => i.archive))) this.archive(archive).failures.push(failure);
      } finally {
        this.slots.release();
      }
    });
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
    for (const archive of new Set(batch.map((i) => i.archive))) {
      const pending = this.archive(archive).pending;
      pending.add(done);
      void done.finally(() => pending.delete(done));
    }
    await acquired;
  }

  private backoff(attempt: number): number {
    return Math.random() * Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** attempt);
  }

  /** A table's metadata, or undefined when it does not exist (404). */
  private async metadataOrNone<T>(handle: Table): Promise<T | undefined> {
    try {
      const [meta] = (await this.retrying(() => handle.getMetadata())) as unknown as [T];
      return meta;
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      return undefined;
    }
  }

  /** Runs a metadata call under the retry policy. */
  private async retrying<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (classify(err) !== 'retry' || attempt + 1 >= this.retry.attempts) throw err;
        this.stats.retries++;
        this.observer?.retry(retryReason(err));
        await sleep(this.backoff(attempt));
      }
    }
  }

  private async insertAll(target: Target, items: Item[]): Promise<InsertAllResponse> {
    const body = requestBody(items);
    this.stats.requests++;
    const started = performance.now();
    let reply: unknown[];
    try {
      reply = await target.table.request({
        method: 'POST',
        uri: '/insertAll',
        body,
        headers: { 'Content-Type': 'application/json' },
        timeout: this.timeoutMs,
      });
      this.observer?.request('insertAll', (performance.now() - started) / 1000, 'ok');
    } catch (err) {
      this.observer?.request('insertAll', (performance.now() - started) / 1000, 'error');
      throw err;
    }
    const response = reply[0];
    return response !== null && typeof response === 'object' ? response : {};
  }

  /**
   * Inserts the items until each is stored or rejected. Throws EtlError sink_error when some
   * could be neither (a refused request, or retries exhausted).
   */
  private async send(target: Target, items: Item[]): Promise<void> {
    let rows = items;
    let attempt = 0;
    const giveUp = (err: unknown, transient: boolean): EtlError =>
      new EtlError(
        'sink_error',
        `${this.description}: insertAll into ${target.name} (${rows.length} rows) failed${transient ? ` after ${attempt + 1} attempts` : ''}: ${describe(err)}`,
        { stage: 'sink', cause: err, retryable: transient },
      );
    while (rows.length > 0) {
      let response: InsertAllResponse;
      try {
        response = await this.insertAll(target, rows);
      } catch (err) {
        const verdict = classify(err);
        if (verdict === 'too-large') {
          if (rows.length === 1) {
            const only = rows[0] as Item;
            if (!only.origin) throw giveUp(err, false);
            this.rejectRow(only, 'row_too_large', `BigQuery refused a request holding only this row: ${describe(err)}`);
            return;
          }
          this.stats.splits++;
          const half = Math.ceil(rows.length / 2);
          await this.send(target, rows.slice(0, half));
          await this.send(target, rows.slice(half));
          return;
        }
        if (verdict === 'retry' && attempt + 1 < this.retry.attempts) {
          this.stats.retries++;
          this.observer?.retry(retryReason(err));
          await sleep(this.backoff(attempt++));
          continue;
        }
        throw giveUp(err, verdict === 'retry');
      }
      const insertErrors = response.insertErrors ?? [];
      const failedAt = new Set<number>();
      const resend: Item[] = [];
      let removed = 0;
      let transient: InsertError | undefined;
      for (const e of insertErrors) {
        const item = rows[e.index];
        if (!item || failedAt.has(e.index)) continue;
        failedAt.add(e.index);
        const reasons = (e.errors ?? []).map((x) => x.reason ?? '');
        if (reasons.every((r) => r === 'stopped')) {
          resend.push(item);
        } else if (reasons.every((r) => r === 'stopped' || RETRYABLE_ROW.has(r))) {
          resend.push(item);
          transient = e;
        } else if (item.origin) {
          this.rejectRow(item, 'sink_rejected', `BigQuery refused the row: ${rowErrorText(e)}`);
          removed++;
        } else {
          throw new EtlError(
            'sink_error',
            `${this.description}: BigQuery refused a ledger row of ${target.name}: ${rowErrorText(e)}`,
            { stage: 'sink' },
          );
        }
      }
      this.stats.rowsInserted += rows.length - failedAt.size;
      if (resend.length === 0) return;
      if (transient || removed === 0) {
        // Resending rows stopped by others is progress only once the refused rows are gone.
        if (attempt + 1 >= this.retry.attempts) {
          throw new EtlError(
            'sink_error',
            `${this.description}: insertAll into ${target.name}: ${resend.length} rows not stored after ${attempt + 1} attempts: ${transient ? rowErrorText(transient) : 'stopped'}`,
            { stage: 'sink', retryable: true },
          );
        }
        this.stats.retries++;
        this.observer?.retry(transient ? 'row_backend_error' : 'row_stopped');
        await sleep(this.backoff(attempt++));
      }
      rows = resend;
    }
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
    const r = this.rejectItem(reject);
    target.bytes += target.items.length === 0 ? r.bytes : r.bytes + 1;
    target.items.push(r);
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
        const buffered = [...this.targets.values()].filter((t) => t.items.some((i) => i.archive === key));
        if (buffered.length === 0 && current.pending.size === 0) break;
        for (const t of buffered) await this.flush(t);
        await Promise.all([...current.pending]);
      }
      const failure = current.failures[0];
      if (failure) {
        throw new EtlError(
          'sink_error',
          `${this.description}: ${key}: not every row was stored, no ledger record written: ${failure.message}${current.failures.length > 1 ? ` (and ${current.failures.length - 1} more failures)` : ''}`,
          { stage: 'sink', cause: failure, retryable: current.failures.every((f) => f.retryable) },
        );
      }
      const stored = withSinkRejects(record, current);
      const ledger = this.target(LEDGER_DATASET, '_archives');
      // One processing of an archive is one record: a retried commit is deduplicated.
      const item = this.item(hash(`${key}\u0000${record.started}`), Buffer.from(stringifyBigQuery(stored)), key);
      await this.send(ledger, [item]);
      Object.assign(record, stored);
      return { record: stored, rejected: { ...current.byCode } };
    } catch (err) {
      const error =
        err instanceof EtlError
          ? err
          : new EtlError('sink_error', `${this.description}: ${messageOf(err)}`, { stage: 'sink', cause: err });
      this.unacked.set(key, { started: record.started, error });
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
        .dataset(this.datasetId(LEDGER_DATASET))
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
    await Promise.allSettled([...this.inFlight]);
    for (const t of this.targets.values()) {
      t.items = [];
      t.bytes = 0;
    }
  }
}

function rowErrorText(e: InsertError): string {
  return (e.errors ?? [])
    .filter((x) => x.reason !== 'stopped')
    .map((x) => `${x.reason ?? 'unknown'}${x.location ? ` at ${x.location}` : ''}: ${x.message ?? ''}`)
    .join('; ');
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

/** A bounded label for a retried failure: the HTTP status, or the transport error code. */
function retryReason(err: unknown): string {
  const e = err as { code?: unknown; response?: { status?: number } };
  const status = e?.response?.status ?? (typeof e?.code === 'number' ? e.code : undefined);
  if (typeof status === 'number') return String(status);
  return typeof e?.code === 'string' && /^[A-Z_]+$/.test(e.code) ? e.code : 'network';
}
