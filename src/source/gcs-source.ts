/**
 * Archives in Cloud Storage, streamed with @google-cloud/storage and pinned to the notified
 * generation, so an object replaced while it is read is not mixed with its successor. A transient
 * failure mid-stream resumes with a ranged read from the byte offset already consumed: rows are
 * neither lost nor emitted twice, because the archive reader sees one continuous byte stream.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { File, Storage } from '@google-cloud/storage';
import { parseArchiveUrl, type ArchiveIdentity } from './archive-path.js';
import { EtlError } from '../errors.js';
import type { ArchiveSource } from './archive-source.js';

export interface GcsObjectRef {
  bucket: string;
  name: string;
  /** Pinned generation; null reads the live object (a reprocessing request without generation). */
  generation: string | null;
  size?: number | null;
}

export interface GcsSourceOptions {
  /** How many times a cut stream is resumed before the archive fails with source_unavailable. */
  maxResumes?: number;
  /** Buckets that may be read; any other fails with bucket_not_allowed before a byte is read. */
  allowBuckets: ReadonlySet<string>;
  onResume?: (offset: number, err: unknown) => void;
  /** Wait before resuming: attempt -> milliseconds. */
  backoffMs?: (attempt: number) => number;
  /**
   * A read that delivers nothing for this long is abandoned and resumed. Needed because
   * @google-cloud/storage's read stream neither ends nor fails when the connection drops mid-body.
   */
  stallTimeoutMs?: number;
}

export const DEFAULT_STALL_TIMEOUT_MS = 60_000;

const PERMANENT_STATUS = new Set([400, 401, 403, 404, 412, 416]);

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; status?: unknown; response?: { statusCode?: number } };
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.status === 'number') return e.status;
  return e?.response?.statusCode;
}

/**
 * Ends a read the source no longer wants. The client attaches the response body to its stream
 * just after the stream's 'response' event. A stream destroyed before that (a stalled request, an
 * archive that stopped reading) makes Node 23 and later throw ERR_STREAM_UNABLE_TO_PIPE inside the
 * client, where nothing can catch it: an unhandled rejection, which ends the process, and a
 * response left open (googleapis/google-cloud-node#9242). So a stream still waiting for its
 * response is destroyed once that response has been attached.
 */
function release(stream: Readable, responded: boolean): void {
  if (stream.destroyed) return;
  if (responded) {
    stream.destroy();
    return;
  }
  // Its errors still go to the reader's `body`, which is done with: nothing is left uncaught.
  stream.once('response', () => process.nextTick(() => stream.destroy()));
}

export function gcsUrl(bucket: string, name: string): string {
  return `gs://${bucket}/${name}`;
}

export function gcsArchive(storage: Storage, ref: GcsObjectRef, options: GcsSourceOptions): ArchiveSource {
  const url = gcsUrl(ref.bucket, ref.name);
  const maxResumes = options.maxResumes ?? 5;
  const backoff = options.backoffMs ?? ((n: number) => Math.min(100 * 2 ** n, 5000));
  const file = storage
    .bucket(ref.bucket)
    .file(ref.name, ref.generation === null ? {} : { generation: Number(ref.generation) });
  const size = ref.size ?? null;
  const stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;

  async function* read(): AsyncGenerator<Buffer> {
    let offset = 0;
    for (let resumes = 0; ; resumes++) {
      if (size !== null && offset >= size) return; // a range at the end would return the whole object again
      const range = openRange(file, url, offset);
      try {
        for await (const chunk of unlessStalled(range.body, stallMs, () => offset)) {
          offset += chunk.length;
          yield chunk;
        }
        if (size !== null && offset < size) throw new Error(`the stream ended at byte ${offset} of ${size}`);
        return;
      } catch (err) {
        const fatal = readFailure(err, { url, ref, offset, resumes, maxResumes });
        if (fatal) throw fatal;
        options.onResume?.(offset, err);
      } finally {
        range.release();
      }
      // Resumed from `offset`, with the abandoned read released first.
      await new Promise((r) => setTimeout(r, backoff(resumes)));
    }
  }

  return {
    url,
    size,
    generation: ref.generation,
    identify: (): ArchiveIdentity => parseArchiveUrl(url),
    authorize() {
      if (!options.allowBuckets.has(ref.bucket)) {
        throw new EtlError('bucket_not_allowed', `bucket ${ref.bucket} is not allowed (--allow-bucket)`, {
          stage: 'input',
        });
      }
    },
    open: () => read(),
  };
}

/**
 * One read of the object from `offset`. Leaving its body (a stall, an error, a consumer that
 * stopped) ends the read, and `release` lets the client's stream go, never before its response.
 */
function openRange(file: File, url: string, offset: number): { body: PassThrough; release: () => void } {
  let expectPartial = offset > 0;
  let responded = false;
  const stream = file.createReadStream({ start: offset, decompress: false, validation: false });
  const body = new PassThrough();
  stream.on('error', (err) => body.destroy(err));
  stream.pipe(body);
  stream.on('response', (res: { statusCode?: number }) => {
    responded = true;
    // A ranged read answered with the whole object would double the bytes already consumed.
    if (expectPartial && res.statusCode === 200) {
      const err = new EtlError(
        'source_unavailable',
        `${url}: a ranged read from byte ${offset} returned the whole object`,
        {
          stage: 'input',
        },
      );
      // After the client has attached the body, which it does once this event has run.
      process.nextTick(() => stream.destroy(err));
    }
    expectPartial = false;
  });
  return { body, release: () => release(stream, responded) };
}

/** The body's chunks; a wait of `stallMs` for the next one fails the body. The consumer's time does not count. */
async function* unlessStalled(body: PassThrough, stallMs: number, offset: () => number): AsyncGenerator<Buffer> {
  let watchdog: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => body.destroy(new Error(`no data for ${stallMs} ms at byte ${offset()}`)), stallMs);
  };
  try {
    arm();
    for await (const chunk of body as AsyncIterable<Buffer>) {
      clearTimeout(watchdog);
      yield chunk;
      arm();
    }
  } finally {
    clearTimeout(watchdog);
  }
}

interface ReadState {
  url: string;
  ref: GcsObjectRef;
  offset: number;
  resumes: number;
  maxResumes: number;
}

/** What a failed read means: the archive's error, or null when the read is worth resuming. */
function readFailure(err: unknown, { url, ref, offset, resumes, maxResumes }: ReadState): EtlError | null {
  if (err instanceof EtlError) return err;
  const status = statusOf(err);
  if (status === 404) {
    return new EtlError('object_not_found', `${url}${ref.generation ? `#${ref.generation}` : ''}: not found`, {
      stage: 'input',
      cause: err,
    });
  }
  if (status !== undefined && PERMANENT_STATUS.has(status)) {
    return new EtlError('source_unavailable', `${url}: Cloud Storage answered ${status}: ${(err as Error).message}`, {
      stage: 'input',
      cause: err,
    });
  }
  if (resumes >= maxResumes) {
    return new EtlError(
      'source_unavailable',
      `${url}: read failed at byte ${offset} after ${resumes} resumes: ${(err as Error).message}`,
      { stage: 'input', cause: err },
    );
  }
  return null;
}
