/**
 * A worker thread of entry-pool.ts: loads the parsers and schemas once, then runs one entry at a
 * time through entryBatches, reading its bytes from messages and sending its batches back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { EtlError, isErrorCode, toEtlError } from '../../errors.js';
import { entryBatches, type EntryJob } from '../../rows/entry-rows.js';
import { OUTPUT_WINDOW, type FromWorker, type ToWorker } from './entry-pool.js';
import { setSpillRoot } from '../../parser/grouped-rows.js';
import { Registry } from '../../parser/registry.js';
import { SchemaSet } from '../../schema/schema-set.js';

if (!parentPort) throw new Error('entry-thread runs as a worker thread');
const port = parentPort;
const post = (msg: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);

/** An entry's body fed by messages; tells the main thread what the parser has taken. */
class MessageBody implements AsyncIterable<Buffer> {
  /** `counted`: the main thread counts these bytes and waits to hear they were read. */
  private readonly chunks: { chunk: Buffer; counted: boolean }[] = [];
  private ended = false;
  private error: EtlError | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly id: number) {}

  push(chunk: Buffer, counted = true): void {
    this.chunks.push({ chunk, counted });
    this.notify();
  }

  finish(error: EtlError | null): void {
    this.ended = true;
    this.error = error;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer, void, undefined> {
    for (;;) {
      const next = this.chunks.shift();
      if (next) {
        if (next.counted) post({ type: 'consumed', id: this.id, bytes: next.chunk.length });
        yield next.chunk;
        continue;
      }
      if (this.ended) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

interface Queued {
  id: number;
  body: MessageBody;
  outstanding: number;
  wake: (() => void) | null;
}

/** Entries started, by id: the one running and those queued behind it. */
const tasks = new Map<number, Queued>();
let queue: Promise<void> = Promise.resolve();

async function run(
  registry: Registry,
  schemas: SchemaSet,
  task: Queued,
  datatype: string,
  job: EntryJob,
): Promise<void> {
  const { id } = task;
  post({ type: 'begun', id });
  try {
    const parser = registry.get(datatype);
    const validate = schemas.validator(datatype);
    for await (const batch of entryBatches(parser, validate, job, task.body)) {
      // The text goes over by transfer, so it needs an ArrayBuffer of its own (small buffers share a pool).
      const { text } = batch;
      const own = text.byteOffset === 0 && text.buffer.byteLength === text.byteLength ? text : new Uint8Array(text);
      post({ type: 'batch', id, batch: { ...batch, text: own } }, [own.buffer as ArrayBuffer]);
      task.outstanding++;
      while (task.outstanding >= OUTPUT_WINDOW) await new Promise<void>((resolve) => (task.wake = resolve));
    }
    tasks.delete(id);
    post({ type: 'done', id });
  } catch (err) {
    tasks.delete(id);
    const e = toEtlError(err, 'parser_error', 'parser');
    post({ type: 'failed', id, code: e.code, message: e.message, retryable: e.retryable });
  }
}

async function main(): Promise<void> {
  const data = (workerData ?? {}) as { schemasDir?: string; parsersDir?: string; spillRoot?: string };
  if (data.spillRoot) setSpillRoot(data.spillRoot);
  let registry: Registry;
  let schemas: SchemaSet;
  try {
    schemas = data.schemasDir ? SchemaSet.load(data.schemasDir) : SchemaSet.load();
    registry = await Registry.load(schemas, ...(data.parsersDir ? [data.parsersDir] : []));
  } catch (err) {
    post({ type: 'fatal', message: (err as Error).message });
    return;
  }
  port.on('message', (msg: ToWorker) => {
    switch (msg.type) {
      case 'start': {
        const task: Queued = { id: msg.id, body: new MessageBody(msg.id), outstanding: 0, wake: null };
        tasks.set(msg.id, task);
        if (msg.body) {
          task.body.push(Buffer.from(msg.body.buffer, msg.body.byteOffset, msg.body.byteLength), false);
          task.body.finish(null);
        }
        queue = queue.then(() => run(registry, schemas, task, msg.datatype, msg.job));
        return;
      }
      case 'chunk':
        tasks.get(msg.id)?.body.push(Buffer.from(msg.bytes.buffer, msg.bytes.byteOffset, msg.bytes.byteLength));
        return;
      case 'end':
        tasks.get(msg.id)?.body.finish(null);
        return;
      case 'abort': {
        const code = isErrorCode(msg.code) ? msg.code : 'internal_error';
        tasks.get(msg.id)?.body.finish(new EtlError(code, msg.message, { stage: 'archive', retryable: msg.retryable }));
        return;
      }
      case 'credit': {
        const task = tasks.get(msg.id);
        if (task) {
          task.outstanding--;
          const wake = task.wake;
          task.wake = null;
          wake?.();
        }
        return;
      }
    }
  });
  post({ type: 'ready' });
}

await main();
