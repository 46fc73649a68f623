/**
 * `--workers N`: entries parsed, validated and serialised in worker threads. The main thread
 * still reads the archive (gunzip and tar are sequential) and hands each entry's bytes to the
 * worker with the fewest entries queued, which runs the same code as the main thread would
 * (entry-rows.ts) and sends back batches of rows as JSONL bytes. The pipeline stores the batches
 * entry by entry in archive order, so the sink sees exactly what a one-thread run gives.
 *
 * Memory stays bounded both ways: the main thread stops sending an entry's bytes while more than
 * BODY_WINDOW of them wait in a worker, and a worker stops parsing while OUTPUT_WINDOW of its
 * batches wait for the pipeline.
 */
import { rmSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { EtlError, isErrorCode } from '../../errors.js';
import { scratchSubdir } from '../../scratch.js';
import type { EntryBatch, EntryJob } from '../../rows/entry-rows.js';

/** Bytes of an entry sent to a worker and not yet read by its parser. */
const BODY_WINDOW = 4 * 1024 * 1024;
/** An entry up to this size goes over in its start message. */
const WHOLE_BODY = 1024 * 1024;
/** Entries queued on one worker, the one it parses included. */
const QUEUE_DEPTH = 4;
/** Batches a worker may have sent that the pipeline has not taken. */
export const OUTPUT_WINDOW = 4;

/** Main thread -> worker. */
export type ToWorker =
  /** `body`: the whole entry, when it is small; otherwise chunks and an end follow. */
  | { type: 'start'; id: number; datatype: string; job: EntryJob; body?: Uint8Array }
  | { type: 'chunk'; id: number; bytes: Uint8Array }
  | { type: 'end'; id: number }
  | { type: 'abort'; id: number; code: string; message: string; retryable: boolean }
  | { type: 'credit'; id: number };

/** Worker -> main thread. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'begun'; id: number }
  | { type: 'consumed'; id: number; bytes: number }
  | { type: 'batch'; id: number; batch: EntryBatch | (Omit<EntryBatch, 'text'> & { text: Uint8Array }) }
  | { type: 'done'; id: number }
  | { type: 'failed'; id: number; code: string; message: string; retryable: boolean };

export interface EntryPoolOptions {
  /** Worker threads, at least 1. */
  workers: number;
  /** Where the workers find schemas and parsers; the package's own unless given. */
  schemasDir?: string;
  parsersDir?: string;
}

/** The worker module: compiled JavaScript next to this file, or TypeScript run through tsx (tests). */
function spawn(options: EntryPoolOptions & { spillRoot: string }): Worker {
  const workerData = { schemasDir: options.schemasDir, parsersDir: options.parsersDir, spillRoot: options.spillRoot };
  if (import.meta.url.endsWith('.ts')) {
    const url = new URL('./entry-thread.ts', import.meta.url).href;
    const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url)}); })`;
    return new Worker(boot, { eval: true, workerData });
  }
  return new Worker(new URL('./entry-thread.js', import.meta.url), { workerData });
}

function workerError(message: string): EtlError {
  return new EtlError('internal_error', `worker thread: ${message}`, { stage: 'parser', retryable: true });
}

/** One entry on one worker, seen from the main thread. */
export class EntryTask {
  private readonly queue: EntryBatch[] = [];
  private end: { error: EtlError | null } | null = null;
  private wake: (() => void) | null = null;
  private unconsumed = 0;
  private bodyWake: (() => void) | null = null;

  private started = false;

  constructor(
    readonly id: number,
    private readonly slot: Slot,
    private readonly start: { datatype: string; job: EntryJob },
  ) {}

  /** The whole body of a small entry, kept until its worker begins it: another can take it should that one die. */
  private whole: Buffer | null = null;
  /** Bytes read before the start message went: a small entry goes whole, in that message. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The worker has begun parsing this entry. */
  begun = false;

  /** Sends the start message, with the whole body when it is small (one message instead of three). */
  private begin(whole: boolean): void {
    if (this.started || this.finished) return;
    this.started = true;
    const held = this.held;
    this.held = [];
    if (whole) {
      this.whole = Buffer.concat(held);
      this.sendWhole();
      return;
    }
    this.slot.post({ type: 'start', id: this.id, ...this.start });
    for (const chunk of held) this.send(chunk);
  }

  private sendWhole(): void {
    const bytes = new Uint8Array(this.whole ?? Buffer.alloc(0));
    this.slot.post({ type: 'start', id: this.id, ...this.start, body: bytes }, [bytes.buffer]);
  }

  /**
   * @internal The worker this entry was queued on died before beginning it. Sends it again to
   * the thread that replaced it; false when that cannot be done (its body was streamed).
   */
  requeue(): boolean {
    // Not sent yet: it goes to the new thread when its body has been read, as it would have.
    if (!this.started) return true;
    if (this.begun || this.whole === null) return false;
    this.sendWhole();
    return true;
  }

  private send(chunk: Buffer): void {
    // A copy the worker owns: the chunk may share its memory with other buffers.
    const bytes = new Uint8Array(chunk);
    this.unconsumed += bytes.byteLength;
    this.slot.post({ type: 'chunk', id: this.id, bytes }, [bytes.buffer]);
  }

  /** True once the worker has sent its last batch (done or failed): it reads no more bytes. */
  get finished(): boolean {
    return this.end !== null;
  }

  /** Sends the entry's bytes, waiting while the worker is behind; stops early once it has finished. */
  async feed(body: AsyncIterable<Buffer>): Promise<void> {
    for await (const chunk of body) {
      if (this.finished) break;
      if (!this.started) {
        this.held.push(chunk);
        this.heldBytes += chunk.length;
        if (this.heldBytes > WHOLE_BODY) this.begin(false);
      } else {
        this.send(chunk);
      }
      while (this.unconsumed > BODY_WINDOW && !this.finished) {
        await new Promise<void>((resolve) => (this.bodyWake = resolve));
      }
    }
    if (!this.started) this.begin(true);
    else if (!this.finished) this.slot.post({ type: 'end', id: this.id });
  }

  /**
   * Ends the body with this error, as reading it would have: the parser gets the bytes read so
   * far, then fails with it.
   */
  abort(err: EtlError): void {
    if (this.finished) return;
    this.begin(false);
    if (!this.finished) {
      this.slot.post({ type: 'abort', id: this.id, code: err.code, message: err.message, retryable: err.retryable });
    }
  }

  /** The entry's batches in order; throws the entry's error after its last batch. */
  async *batches(): AsyncGenerator<EntryBatch, void, undefined> {
    for (;;) {
      const batch = this.queue.shift();
      if (batch) {
        if (!this.finished) this.slot.post({ type: 'credit', id: this.id });
        yield batch;
        continue;
      }
      if (this.end) {
        if (this.end.error) throw this.end.error;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /**
   * Drops whatever batches are left, so that the worker can finish the entry and take the next:
   * for an entry the pipeline stopped storing (the archive failed). Resolves when it has finished.
   */
  async discard(): Promise<void> {
    this.discarding = true;
    for (const _ of this.queue.splice(0)) if (!this.finished) this.slot.post({ type: 'credit', id: this.id });
    while (!this.finished) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  private discarding = false;

  /** @internal */
  receive(msg: FromWorker): void {
    switch (msg.type) {
      case 'begun':
        this.begun = true;
        this.whole = null;
        return;
      case 'consumed':
        this.unconsumed -= msg.bytes;
        this.notifyBody();
        return;
      case 'batch':
        if (this.discarding) this.slot.post({ type: 'credit', id: this.id });
        else {
          // A transferred buffer arrives as a plain Uint8Array.
          const t = msg.batch.text as Uint8Array;
          this.queue.push({ ...msg.batch, text: Buffer.from(t.buffer, t.byteOffset, t.byteLength) });
        }
        break;
      case 'done':
        this.end = { error: null };
        this.notifyBody();
        break;
      case 'failed': {
        const code = isErrorCode(msg.code) ? msg.code : 'internal_error';
        this.end = { error: new EtlError(code, msg.message, { stage: 'parser', retryable: msg.retryable }) };
        this.notifyBody();
        break;
      }
      default:
        return;
    }
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** @internal The worker died: the entry fails, its batches so far stay. */
  fail(err: EtlError): void {
    if (this.end) return;
    this.end = { error: err };
    this.notifyBody();
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private notifyBody(): void {
    const wake = this.bodyWake;
    this.bodyWake = null;
    wake?.();
  }
}

/** A worker thread and the tasks queued on it (it runs them one after another, in order). */
class Slot {
  worker: Worker;
  readonly tasks = new Map<number, EntryTask>();
  ready: Promise<void>;
  closing = false;
  /** Its thread died and the one started in its place could not start: no entry goes here. */
  dead = false;
  /** The current thread has said it is ready. */
  private workerReady = false;

  constructor(
    private readonly options: EntryPoolOptions & { spillRoot: string },
    private readonly onFree: (slot: Slot) => void,
  ) {
    this.worker = spawn(options);
    this.ready = this.attach();
  }

  post(msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(msg, transfer);
  }

  private attach(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let started = false;
      this.worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'ready') {
          started = true;
          this.workerReady = true;
          resolve();
          return;
        }
        if (msg.type === 'fatal') {
          reject(new Error(`worker thread could not start: ${msg.message}`));
          return;
        }
        const task = this.tasks.get(msg.id);
        if (!task) return;
        task.receive(msg);
        if (msg.type === 'done' || msg.type === 'failed') {
          this.tasks.delete(msg.id);
          this.onFree(this);
        }
      });
      this.worker.on('error', (err) => {
        if (!started) reject(err);
        this.crashed(err.message);
      });
      this.worker.on('exit', (code) => {
        if (!started) reject(new Error(`worker thread exited with code ${code} before it was ready`));
        this.crashed(`exited with code ${code}`);
      });
    });
  }

  private crashed(message: string): void {
    // A thread that never became ready is not replaced: its start failing settles it (see below).
    if (this.closing || this.dead || !this.workerReady) return;
    this.workerReady = false;
    const tasks = [...this.tasks.values()];
    this.tasks.clear();
    // A new thread takes the place of the one that died.
    this.worker.removeAllListeners();
    void this.worker.terminate();
    this.worker = spawn(this.options);
    this.ready = this.attach();
    this.ready.then(
      () => this.onFree(this),
      (err: unknown) => {
        // A thread that cannot even start is not replaced again: its entries fail, the slot is out.
        this.dead = true;
        const stranded = [...this.tasks.values()];
        this.tasks.clear();
        for (const task of stranded) task.fail(workerError(`no replacement could start: ${(err as Error).message}`));
        this.onFree(this);
      },
    );
    // The entry it was parsing fails; those queued behind it go to the new thread, in their order,
    // before anything else can be posted to it (messages wait until it listens).
    for (const task of tasks) {
      this.tasks.set(task.id, task);
      if (!task.requeue()) {
        this.tasks.delete(task.id);
        task.fail(workerError(message));
      }
    }
    if (this.tasks.size < tasks.length) this.onFree(this);
  }
}

export class EntryPool {
  private readonly slots: Slot[];
  private readonly waiting: (() => void)[] = [];
  private nextId = 1;

  /** The threads' temporary files (grouped rows), removed on close: terminate() runs no cleanup in them. */
  private readonly spillRoot = scratchSubdir('pool-');

  private constructor(options: EntryPoolOptions) {
    this.slots = Array.from(
      { length: options.workers },
      () => new Slot({ ...options, spillRoot: this.spillRoot }, () => this.freed()),
    );
  }

  /** Starts the threads and waits until each has loaded the parsers and schemas. */
  static async start(options: EntryPoolOptions): Promise<EntryPool> {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new Error(`workers must be a positive integer, not ${options.workers}`);
    }
    const pool = new EntryPool(options);
    try {
      await Promise.all(pool.slots.map((s) => s.ready));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /**
   * Queues the entry on the worker with the fewest entries queued, waiting while every worker has
   * QUEUE_DEPTH. Queues keep workers busy between small entries (an ndt7 file is a few KB).
   */
  async begin(datatype: string, job: EntryJob): Promise<EntryTask> {
    for (;;) {
      let best: Slot | null = null;
      // An entry too large to go in one message streams to its worker, and is only queued on an idle one.
      const depth = job.size <= WHOLE_BODY ? QUEUE_DEPTH : 1;
      const live = this.slots.filter((s) => !s.dead);
      if (live.length === 0) throw workerError('every worker thread died and none could be started again');
      for (const s of live) if (s.tasks.size < depth && (!best || s.tasks.size < best.tasks.size)) best = s;
      if (best) {
        const task = new EntryTask(this.nextId++, best, { datatype, job });
        best.tasks.set(task.id, task);
        return task;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private freed(): void {
    // Every waiter looks again: a slot may also have gone dead, which they must hear of.
    for (const wake of this.waiting.splice(0)) wake();
  }

  async close(): Promise<void> {
    await Promise.all(
      this.slots.map(async (s) => {
        s.closing = true;
        await s.worker.terminate();
      }),
    );
    rmSync(this.spillRoot, { recursive: true, force: true });
  }
}
