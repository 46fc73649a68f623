/**
 * `mlab-etl serve`: Pub/Sub-triggered processing of archives from Cloud Storage. Every trigger
 * (streaming pull, push, the manual endpoint) becomes the same task, processed by the same
 * pipeline as `parse`. A message is acked only after the archive's rows and rejects are in the
 * sink and its ledger record is written.
 */
import type { Message, Subscription } from '@google-cloud/pubsub';
import type { Storage } from '@google-cloud/storage';
import { ERRORS, toEtlError, type EtlError } from '../errors.js';
import type { ArchiveSource } from '../source/archive-source.js';
import type { Disposition, TaskOutcome } from './dispositions.js';
import { gcsArchive, gcsUrl, type GcsObjectRef } from '../source/gcs-source.js';
import type { Limits } from '../limits.js';
import type { Logger } from '../log.js';
import { triggerOf, type PubSubLikeMessage } from './triggers.js';
import type { Metrics } from './metrics.js';
import type { EntryPool } from '../pipeline/threads/entry-pool.js';
import { processArchive } from '../pipeline/process-archive.js';
import type { Registry } from '../parser/registry.js';
import type { SchemaSet } from '../schema/schema-set.js';
import type { Sink } from '../sinks/sink.js';

export interface WorkerDeps {
  storage: Storage;
  sink: Sink;
  registry: Registry;
  schemas: SchemaSet;
  metrics: Metrics;
  logger: Logger;
  allowBuckets: ReadonlySet<string>;
  version: string;
  gitCommit: string | null;
  maxEntryBytes?: number;
  limits?: Partial<Limits>;
  /** Archives at once from push and manual requests (streaming pull is bounded by flow control). */
  maxInFlight?: number;
  /** Resumes of a cut Cloud Storage stream before the archive is retried later. */
  maxResumes?: number;
  resumeBackoffMs?: (attempt: number) => number;
  stallTimeoutMs?: number;
  /** Worker threads shared by every archive in flight (`--workers`). */
  pool?: EntryPool;
}

const SUBSCRIPTION_ERROR_WINDOW_MS = 30_000;

export class Worker {
  private inFlight = new Set<Promise<unknown>>();
  /**
   * Archives in flight or reserved by a push or manual request whose body is still being read:
   * the --max-in-flight bound counts a request from the moment it is admitted, whatever its timing.
   */
  private busy = 0;
  private stopping = false;
  private subscription: Subscription | null = null;
  /** When the subscription's stream last failed; the client reconnects by itself, so it counts for a while only. */
  private subscriptionErrorAt = 0;

  constructor(private readonly deps: WorkerDeps) {}

  get archivesInFlight(): number {
    return this.inFlight.size;
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  /** Whether a push or manual request may start an archive now (pull is bounded by flow control). */
  hasCapacity(): boolean {
    return this.busy < (this.deps.maxInFlight ?? Infinity);
  }

  /**
   * Takes a slot for a push or manual request before its body is read; null when none is free.
   * The request's archive runs in that slot (`handle(..., { reserved: true })`); the returned
   * function gives it back, once.
   */
  reserve(): (() => void) | null {
    if (!this.hasCapacity()) return null;
    this.busy++;
    let held = true;
    return () => {
      if (held) this.busy--;
      held = false;
    };
  }

  /** Ready: subscribed without a stream error (or push-only), and the sink answers. */
  async ready(): Promise<boolean> {
    if (this.stopping) return false;
    const recentError = Date.now() - this.subscriptionErrorAt < SUBSCRIPTION_ERROR_WINDOW_MS;
    if (this.subscription !== null && (recentError || !this.subscription.isOpen)) return false;
    if (this.subscription !== null && !(await this.pubsubReachable(this.subscription))) return false;
    return this.deps.sink.ready ? this.deps.sink.ready() : true;
  }

  private reachable: { at: number; ok: boolean } = { at: 0, ok: true };

  /**
   * Asks Pub/Sub for the subscription (cached 3 s): the client retries broken streams by itself
   * and reports them only as debug events, so an outage is otherwise invisible here.
   */
  private async pubsubReachable(subscription: Subscription): Promise<boolean> {
    if (Date.now() - this.reachable.at < 3_000) return this.reachable.ok;
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      subscription.getMetadata().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 2_000);
      }),
    ]);
    clearTimeout(timer);
    this.reachable = { at: Date.now(), ok };
    return ok;
  }

  /** Processes one archive; never throws. */
  /**
   * Why an object is not to be read here, decided from its name alone: a bucket not allowed, a
   * path that is not M-Lab's, a datatype not registered. Anyone who can publish or push can name
   * any object, so such a message costs a log line and a counter with bounded labels: no ledger
   * record, no dataset or table created, no byte read.
   */
  private refusal(source: ArchiveSource): EtlError | null {
    try {
      source.authorize?.();
      this.deps.registry.get(source.identify().datatype);
      return null;
    } catch (err) {
      return toEtlError(err, 'bad_archive_path', 'identity');
    }
  }

  /** The object as the pipeline reads it: pinned to its generation, resumed after a cut. */
  private sourceOf(object: GcsObjectRef): ArchiveSource {
    const { deps } = this;
    const url = gcsUrl(object.bucket, object.name);
    return gcsArchive(deps.storage, object, {
      allowBuckets: deps.allowBuckets,
      ...(deps.maxResumes === undefined ? {} : { maxResumes: deps.maxResumes }),
      ...(deps.resumeBackoffMs ? { backoffMs: deps.resumeBackoffMs } : {}),
      ...(deps.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: deps.stallTimeoutMs }),
      onResume: (offset, err) => {
        deps.metrics.sourceResumes.inc();
        deps.logger.log('WARNING', 'resuming archive read', { url, offset, error: (err as Error).message });
      },
    });
  }

  /** A refused object's outcome, counted and logged: the whole cost of a refusal. */
  private refuse(object: GcsObjectRef, trigger: string, refused: EtlError): TaskOutcome {
    const url = gcsUrl(object.bucket, object.name);
    this.deps.metrics.failures.inc({ datatype: 'other', code: refused.code });
    this.deps.logger.log('WARNING', 'archive refused', { url: url.slice(0, 300), trigger, code: refused.code });
    const disposition = ERRORS[refused.code].disposition;
    return { disposition, status: 'refused', url, code: refused.code, message: refused.message };
  }

  async processObject(object: GcsObjectRef, trigger: string, reserved = false): Promise<TaskOutcome> {
    const { deps } = this;
    const source = this.sourceOf(object);
    const refused = this.refusal(source);
    if (refused) return this.refuse(object, trigger, refused);
    if (!reserved) this.busy++;
    const url = gcsUrl(object.bucket, object.name);
    const task = (async (): Promise<TaskOutcome> => {
      deps.metrics.inFlight.inc();
      try {
        const result = await processArchive(source, {
          registry: deps.registry,
          schemas: deps.schemas,
          sink: deps.sink,
          version: deps.version,
          gitCommit: deps.gitCommit,
          ...(deps.maxEntryBytes === undefined ? {} : { maxEntryBytes: deps.maxEntryBytes }),
          ...(deps.limits ? { limits: deps.limits } : {}),
          ...(deps.pool ? { pool: deps.pool } : {}),
        });
        deps.metrics.recordArchive(result);
        const r = result.record;
        const disposition: Disposition = result.retryable ? 'nack' : 'ack';
        deps.logger.log(
          r.status === 'ok' ? 'INFO' : r.status === 'partial' ? 'WARNING' : 'ERROR',
          'archive processed',
          {
            url,
            generation: object.generation,
            trigger,
            status: r.status,
            code: r.error_code,
            rows: r.rows_written,
            rejected: r.rows_rejected,
            entries_failed: r.entries_failed,
            seconds: result.seconds,
            disposition,
          },
        );
        return {
          disposition,
          status: r.status,
          url,
          code: r.error_code,
          message: r.error_message,
          rows: r.rows_written,
        };
      } catch (err) {
        // The sink could not commit (the ledger record included): nothing is acked, redelivery retries.
        const e = toEtlError(err, 'internal_error', 'sink');
        deps.metrics.failures.inc({ datatype: '(commit)', code: e.code });
        deps.logger.log('ERROR', 'archive not committed', { url, trigger, code: e.code, error: e.message });
        return { disposition: 'nack', status: 'failed', url, code: e.code, message: e.message };
      } finally {
        deps.metrics.inFlight.dec();
      }
    })();
    this.inFlight.add(task);
    try {
      return await task;
    } finally {
      this.inFlight.delete(task);
      if (!reserved) this.busy--;
    }
  }

  /** Handles a message from any trigger: bad and ignored ones are acked and counted, tasks processed. */
  async handle(message: PubSubLikeMessage, trigger: string, { reserved = false } = {}): Promise<TaskOutcome> {
    let outcome: TaskOutcome;
    try {
      const t = triggerOf(message);
      if (t.kind === 'ignored') {
        this.deps.logger.log('INFO', 'message ignored', { trigger, reason: t.reason, detail: t.detail });
        outcome = { disposition: 'ack', status: 'ignored', message: `${t.reason}: ${t.detail}` };
      } else {
        outcome = await this.processObject(t.object, trigger, reserved);
      }
    } catch (err) {
      const e = toEtlError(err, 'bad_message', 'input');
      this.deps.logger.log('WARNING', 'bad message', { trigger, code: e.code, error: e.message });
      outcome = { disposition: ERRORS[e.code].disposition, status: 'bad', code: e.code, message: e.message };
    }
    this.deps.metrics.messages.inc({
      trigger,
      outcome: ['ignored', 'bad', 'refused'].includes(outcome.status) ? outcome.status : outcome.disposition,
    });
    return outcome;
  }

  /** Streaming pull: each message is processed and then acked or nacked; flow control bounds how many at once. */
  listen(subscription: Subscription): void {
    this.subscription = subscription;
    // The client closes the subscription for good on some errors (e.g. it did not exist yet):
    // open it again with a backoff, so the worker resumes pulling once it can.
    let reopenDelay = 1_000;
    subscription.on('close', () => {
      if (this.stopping) return;
      this.deps.logger.log('WARNING', 'subscription closed; reopening', { inSeconds: reopenDelay / 1000 });
      setTimeout(() => {
        if (!this.stopping && !subscription.isOpen) subscription.open();
      }, reopenDelay).unref();
      reopenDelay = Math.min(reopenDelay * 2, 60_000);
    });
    subscription.on('message', () => {
      reopenDelay = 1_000;
    });
    subscription.on('message', (m: Message) => {
      this.subscriptionErrorAt = 0;
      if (this.stopping) {
        m.nack();
        return;
      }
      void this.handle({ attributes: m.attributes ?? {}, data: m.data }, 'pull').then((o) => {
        // After the grace period the message was already nacked by close(); acking it now is harmless.
        if (o.disposition === 'ack') m.ack();
        else m.nack();
      });
    });
    subscription.on('error', (err: Error) => {
      this.subscriptionErrorAt = Date.now();
      this.deps.logger.log('ERROR', 'subscription error', { error: err.message });
    });
  }

  /**
   * Graceful stop: no new work, in-flight archives get `graceMs` to finish (their messages are
   * acked or nacked as usual), then the subscription closes and nacks what it still holds.
   */
  async stop(graceMs: number): Promise<{ finished: boolean }> {
    this.stopping = true;
    const all = Promise.allSettled([...this.inFlight]);
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      all.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (this.subscription) {
      this.subscription.removeAllListeners('message');
      await this.subscription.close();
    }
    return { finished };
  }
}
