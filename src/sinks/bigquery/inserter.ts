/**
 * The insert engine of the BigQuery sink: rows and ledger items buffered per table, sent by
 * streaming inserts (tabledata.insertAll) in requests within the row and byte limits, at most
 * `maxInFlight` at once, each retried under the sink's policy (retry.ts) until every item is
 * stored or refused.
 *
 * Requests are built here as JSON bytes rather than through `table.insert`: that call copies every
 * row and serialises it with JSON.stringify, which throws on bigint, and only the bytes it sends
 * can be measured against the 10 MB request limit. Each item carries its insertId (the row key),
 * so a resent request does not store a row twice (best effort, about a minute).
 */
import type { Table } from '@google-cloud/bigquery';
import type { EtlError, ErrorCode } from '../../errors.js';
import { asSinkError, describe, rowErrorText, sinkError, type InsertError } from './errors.js';
import { classify, retryReason, rowVerdict, type Retrier } from './retry.js';
import type { BigQuerySinkStats, SinkObserver } from './stats.js';

interface InsertAllResponse {
  insertErrors?: InsertError[];
}

/** Where a data row came from, to write a reject for it. */
export interface Origin {
  datatype: string;
  entry: string;
  index?: number;
  time: string;
}

export interface Item {
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

export interface Target {
  /** `dataset.table`, prefix included. */
  name: string;
  table: Table;
  items: Item[];
  bytes: number;
}

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

/** An item built for a request: its bytes inside the request are counted once, here. */
export function makeItem(insertId: string, json: Buffer, archive: string, origin?: Origin): Item {
  const bytes = json.length + Buffer.byteLength(JSON.stringify(insertId)) + ITEM_FRAME_BYTES;
  return { insertId, json, bytes, archive, ...(origin ? { origin } : {}) };
}

/** What the sink learns of the requests holding an archive's items. */
export interface InsertHooks {
  /** A request holding items of the archive was started: its commit waits for `done`. */
  pending(archive: string, done: Promise<void>): void;
  /** A request holding items of the archive failed for good. */
  failed(archive: string, failure: EtlError): void;
  /**
   * A data row BigQuery will not take. Called inside a request's slot: the reject must be
   * queued (`queue`), not sent.
   */
  rejected(item: Item, code: ErrorCode, message: string): void;
}

export interface InserterOptions {
  /** The sink, for messages. */
  description: string;
  maxRowsPerRequest: number;
  maxRequestBytes: number;
  maxInFlight: number;
  requestTimeoutMs: number;
  observer: SinkObserver | undefined;
  stats: BigQuerySinkStats;
  retrier: Retrier;
  hooks: InsertHooks;
}

export class Inserter {
  /** Bytes of an insertAll request body, at most. */
  readonly maxBytes: number;
  private readonly maxRows: number;
  private readonly timeoutMs: number;
  private readonly description: string;
  private readonly observer: SinkObserver | undefined;
  private readonly stats: BigQuerySinkStats;
  private readonly retrier: Retrier;
  private readonly hooks: InsertHooks;
  private readonly slots: Slots;
  private readonly targets = new Map<string, Target>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(options: InserterOptions) {
    this.description = options.description;
    this.maxRows = options.maxRowsPerRequest;
    this.maxBytes = options.maxRequestBytes;
    this.timeoutMs = options.requestTimeoutMs;
    this.observer = options.observer;
    this.stats = options.stats;
    this.retrier = options.retrier;
    this.hooks = options.hooks;
    this.slots = new Slots(options.maxInFlight);
  }

  /** The buffer of table `name` (`dataset.table`, prefix included); `open` gives its handle the first time. */
  target(name: string, open: () => Table): Target {
    let t = this.targets.get(name);
    if (!t) {
      t = { name, table: open(), items: [], bytes: 0 };
      this.targets.set(name, t);
    }
    return t;
  }

  /** Whether a request holding only this item stays within maxRequestBytes. */
  fits(item: Item): boolean {
    return ENVELOPE_BYTES + item.bytes <= this.maxBytes;
  }

  /** Buffers the item, sending what the target holds when a request is full; waits while all slots are busy. */
  async push(target: Target, item: Item): Promise<void> {
    const extra = target.items.length === 0 ? item.bytes : item.bytes + 1;
    if (target.items.length > 0 && ENVELOPE_BYTES + target.bytes + extra > this.maxBytes) {
      await this.flush(target);
    }
    this.queue(target, item);
    if (target.items.length >= this.maxRows) await this.flush(target);
  }

  /** Buffers the item and sends nothing, whatever the target holds. */
  queue(target: Target, item: Item): void {
    target.bytes += target.items.length === 0 ? item.bytes : item.bytes + 1;
    target.items.push(item);
  }

  /** The targets holding items of the archive. */
  buffered(archive: string): Target[] {
    return [...this.targets.values()].filter((t) => t.items.some((i) => i.archive === archive));
  }

  /** Sends what the target holds, in requests within the limits; resolves once each has a slot. */
  async flush(target: Target): Promise<void> {
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
        const failure = asSinkError(err, this.description);
        for (const archive of new Set(batch.map((i) => i.archive))) this.hooks.failed(archive, failure);
      } finally {
        this.slots.release();
      }
    });
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
    for (const archive of new Set(batch.map((i) => i.archive))) this.hooks.pending(archive, done);
    await acquired;
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
  async send(target: Target, items: Item[]): Promise<void> {
    let rows = items;
    for (let attempt = 0; rows.length > 0;) {
      let response: InsertAllResponse;
      try {
        response = await this.insertAll(target, rows);
      } catch (err) {
        const verdict = classify(err);
        if (verdict === 'too-large') return await this.sendSmaller(target, rows, err);
        if (verdict === 'retry' && this.retrier.canRetry(attempt)) {
          await this.retrier.wait(attempt++, retryReason(err));
          continue;
        }
        throw this.giveUp(target, rows, err, verdict === 'retry' ? attempt + 1 : undefined);
      }
      const { resend, removed, transient } = this.sortRows(target, rows, response);
      if (resend.length === 0) return;
      if (transient || removed === 0) {
        // Resending rows stopped by others is progress only once the refused rows are gone.
        if (!this.retrier.canRetry(attempt)) {
          throw sinkError(
            'sink_error',
            `${this.description}: insertAll into ${target.name}: ${resend.length} rows not stored after ${attempt + 1} attempts: ${transient ? rowErrorText(transient) : 'stopped'}`,
            { transient: true },
          );
        }
        await this.retrier.wait(attempt++, transient ? 'row_backend_error' : 'row_stopped');
      }
      rows = resend;
    }
  }

  /** A request BigQuery found too large: sent again in halves, down to a single row, which is rejected. */
  private async sendSmaller(target: Target, rows: Item[], err: unknown): Promise<void> {
    if (rows.length === 1) {
      const only = rows[0] as Item;
      if (!only.origin) throw this.giveUp(target, rows, err, undefined);
      this.hooks.rejected(only, 'row_too_large', `BigQuery refused a request holding only this row: ${describe(err)}`);
      return;
    }
    this.stats.splits++;
    const half = Math.ceil(rows.length / 2);
    await this.send(target, rows.slice(0, half));
    await this.send(target, rows.slice(half));
  }

  /** The request failed for good; `attempts` is set when it failed each time for a reason that passes. */
  private giveUp(target: Target, rows: Item[], err: unknown, attempts: number | undefined): EtlError {
    return sinkError(
      'sink_error',
      `${this.description}: insertAll into ${target.name} (${rows.length} rows) failed${attempts === undefined ? '' : ` after ${attempts} attempts`}: ${describe(err)}`,
      { cause: err, transient: attempts !== undefined },
    );
  }

  /**
   * Sorts the rows of an answered request: stored, to send again (stopped because of other rows,
   * or failed for a reason that passes), or refused (rejected, for a data row).
   */
  private sortRows(
    target: Target,
    rows: Item[],
    response: InsertAllResponse,
  ): { resend: Item[]; removed: number; transient: InsertError | undefined } {
    const failedAt = new Set<number>();
    const resend: Item[] = [];
    let removed = 0;
    let transient: InsertError | undefined;
    for (const e of response.insertErrors ?? []) {
      const item = rows[e.index];
      if (!item || failedAt.has(e.index)) continue;
      failedAt.add(e.index);
      const verdict = rowVerdict((e.errors ?? []).map((x) => x.reason ?? ''));
      if (verdict === 'resend') {
        resend.push(item);
      } else if (verdict === 'retry') {
        resend.push(item);
        transient = e;
      } else if (item.origin) {
        this.hooks.rejected(item, 'sink_rejected', `BigQuery refused the row: ${rowErrorText(e)}`);
        removed++;
      } else {
        throw sinkError(
          'sink_error',
          `${this.description}: BigQuery refused a ledger row of ${target.name}: ${rowErrorText(e)}`,
        );
      }
    }
    this.stats.rowsInserted += rows.length - failedAt.size;
    return { resend, removed, transient };
  }

  /** Waits for the requests in flight and drops what is buffered. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    for (const t of this.targets.values()) {
      t.items = [];
      t.bytes = 0;
    }
  }
}
