/**
 * Streams the entries of a tar archive, gzip-compressed or not, and of any `.gz` entry inside it.
 * Nothing is held whole: the archive and each entry flow through in chunks, and an entry the
 * consumer stops reading early is drained, not destroyed, so the next entry still arrives.
 */
import { Readable, pipeline } from 'node:stream';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { EtlError } from '../errors.js';
import { DEFAULT_LIMITS, type Limits } from '../limits.js';

/** Node's default 16 KiB inflate chunk is up to 2x slower on archives of many small entries. */
const INFLATE_CHUNK = 64 * 1024;
const GZIP_MAGIC = [0x1f, 0x8b] as const;
/** .gz entries up to this size as stored are inflated in one call rather than streamed. */
const SMALL_GZ_ENTRY = 256 * 1024;
const TAR_BLOCK = 512;

export interface ArchiveReaderOptions {
  /** Entries whose tar size is above this are skipped with entry_too_large. */
  maxEntryBytes?: number;
  /** Decompression limits (see limits.ts); defaults apply to what is not given. */
  limits?: Partial<
    Pick<Limits, 'maxEntryInflatedBytes' | 'maxArchiveInflatedBytes' | 'maxInflateRatio' | 'ratioFloorBytes'>
  >;
  /** Epoch ms after which reading fails with archive_timeout. */
  deadline?: number;
  /** Called with the number of archive bytes (as stored, compressed) read so far. */
  onBytes?: (n: number) => void;
}

type InflateLimits = Pick<
  Limits,
  'maxEntryInflatedBytes' | 'maxArchiveInflatedBytes' | 'maxInflateRatio' | 'ratioFloorBytes'
>;

/** Checks decompressed bytes against the size and ratio limits; `what` names the entry or the archive. */
function checkInflated(
  what: string,
  inflated: number,
  compressed: number,
  max: number,
  limits: InflateLimits,
  stage: 'archive',
): void {
  if (inflated > max) {
    throw new EtlError('inflated_too_large', `${what} decompresses to more than ${max} bytes`, { stage });
  }
  if (inflated > limits.ratioFloorBytes && compressed > 0 && inflated / compressed > limits.maxInflateRatio) {
    throw new EtlError(
      'decompression_bomb',
      `${what}: ${inflated} bytes from ${compressed} compressed, a ratio above ${limits.maxInflateRatio}`,
      { stage },
    );
  }
}

export interface ArchiveEntry {
  kind: 'file';
  /** Name inside the tar, e.g. `2020/03/18/ndt7-download-....json.gz`. */
  name: string;
  /** Size stored in the tar (compressed size for `.gz` entries). */
  size: number;
  mtime: Date | null;
  /** PAX extended headers, e.g. `MLAB.datatype`, `MLAB.server.name`. */
  pax: Readonly<Record<string, string>>;
  /** True when the entry is gunzipped on the way (its name ends in `.gz`). */
  gunzipped: boolean;
  /** The entry's (decompressed) bytes. Read it at most once. */
  body: AsyncIterable<Buffer>;
  /** Decompressed bytes delivered so far. */
  bytesRead(): number;
}

export interface SkippedEntry {
  kind: 'skipped';
  name: string;
  size: number;
  /** `directory` entries are expected and not errors; others carry an error code. */
  reason: 'directory' | 'entry_too_large' | 'unsupported_entry';
  message: string;
}

export type ArchiveItem = ArchiveEntry | SkippedEntry;

/** Is this the start of a gzip stream? Decided by magic bytes, never by name. */
export function isGzip(head: Uint8Array): boolean {
  return head.length >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
}

function archiveError(err: unknown): EtlError {
  if (err instanceof EtlError) return err;
  const e = err as NodeJS.ErrnoException;
  const message = e?.message ?? String(err);
  if (e?.syscall !== undefined) {
    // The source itself could not be read (ENOENT, EACCES, EISDIR...).
    return new EtlError('input_not_found', message, { stage: 'input', cause: err });
  }
  const truncated = /unexpected end/i.test(message) || e?.code === 'Z_BUF_ERROR';
  return new EtlError(truncated ? 'truncated_archive' : 'corrupt_archive', message, { stage: 'archive', cause: err });
}

function entryError(err: unknown, name: string): EtlError {
  if (err instanceof EtlError) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && e.code.startsWith('Z_')) {
    return new EtlError('corrupt_entry', `${name}: gunzip failed: ${e.message}`, { stage: 'archive', cause: err });
  }
  return archiveError(err);
}

/** Yields the source's chunks, inflated when its first bytes are gzip's magic. */
async function* decompressIfGzip(
  source: AsyncIterable<Buffer>,
  limits: InflateLimits,
  deadline: number,
  onBytes?: (n: number) => void,
): AsyncGenerator<Buffer> {
  let total = 0;
  const counted = async function* (): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      if (Date.now() > deadline) {
        throw new EtlError('archive_timeout', `still reading after its time budget, at byte ${total}`, {
          stage: 'archive',
        });
      }
      total += chunk.length;
      onBytes?.(total);
      yield chunk;
    }
  };
  const it = counted();
  // Gather at least two bytes to decide.
  const head: Buffer[] = [];
  let headLen = 0;
  while (headLen < 2) {
    const r = await it.next();
    if (r.done) break;
    head.push(r.value);
    headLen += r.value.length;
  }
  const first = Buffer.concat(head);
  if (first.length === 0) {
    // M-Lab never uploads an empty object; an empty tar still holds its end blocks.
    throw new EtlError('corrupt_archive', 'the archive is empty (0 bytes)', { stage: 'archive' });
  }
  const rest = async function* (): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first;
    yield* it;
  };
  const tail = new TarTail();
  if (!isGzip(first)) {
    let plain = 0;
    for await (const chunk of rest()) {
      plain += chunk.length;
      checkInflated('the archive', plain, plain, limits.maxArchiveInflatedBytes, limits, 'archive');
      tail.push(chunk);
      yield chunk;
    }
    tail.check();
    return;
  }
  let failure: unknown = null;
  const inflated = pipeline(Readable.from(rest()), zlib.createGunzip({ chunkSize: INFLATE_CHUNK }), (err) => {
    if (err) failure = err;
  });
  let out = 0;
  for await (const chunk of inflated as AsyncIterable<Buffer>) {
    out += chunk.length;
    checkInflated('the archive', out, total, limits.maxArchiveInflatedBytes, limits, 'archive');
    tail.push(chunk);
    yield chunk;
  }
  // A gzip stream cut short can end its readable side before the error is reported.
  if (failure !== null) throw archiveError(failure);
  tail.check();
}

/**
 * The last block of a tar stream. A tar ends with zero blocks; one that ends on an entry's data
 * was cut at an entry boundary, which tar-stream takes for a complete archive.
 */
class TarTail {
  private last: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.last =
      chunk.length >= TAR_BLOCK
        ? chunk.subarray(chunk.length - TAR_BLOCK)
        : Buffer.concat([this.last, chunk]).subarray(-TAR_BLOCK);
  }

  check(): void {
    if (this.last.length === TAR_BLOCK && this.last.some((b) => b !== 0)) {
      throw new EtlError('truncated_archive', 'the tar ends without its end-of-archive blocks', { stage: 'archive' });
    }
  }
}

class EntryBody {
  /** The tar stream's failure, seen while reading this entry: the archive fails, not just the entry. */
  failure: EtlError | null = null;
  private readonly it: AsyncIterator<Buffer>;
  private done = false;
  private inflatedBytes = 0;
  private storedBytes = 0;

  constructor(
    entry: AsyncIterable<Buffer>,
    readonly name: string,
    private readonly limits: InflateLimits,
  ) {
    this.it = entry[Symbol.asyncIterator]();
  }

  /** Counts decompressed bytes; over a limit the entry fails (its rest is drained, not inflated). */
  private count(chunk: Buffer): void {
    this.inflatedBytes += chunk.length;
    checkInflated(
      this.name,
      this.inflatedBytes,
      this.storedBytes,
      this.limits.maxEntryInflatedBytes,
      this.limits,
      'archive',
    );
  }

  /** The stored bytes. Stopping early leaves the rest for drain(), never destroys the entry. */
  async *raw(): AsyncGenerator<Buffer> {
    while (!this.done) {
      const r = await this.next();
      if (r.done) return;
      yield r.value;
    }
  }

  private async next(): Promise<IteratorResult<Buffer>> {
    if (this.failure) throw this.failure;
    try {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.storedBytes += r.value.length;
      return r;
    } catch (err) {
      this.done = true;
      this.failure = archiveError(err);
      throw this.failure;
    }
  }

  async *plain(): AsyncGenerator<Buffer> {
    for await (const chunk of this.raw()) {
      this.count(chunk);
      yield chunk;
    }
  }

  async *gunzipped(storedSize: number): AsyncGenerator<Buffer> {
    if (storedSize <= SMALL_GZ_ENTRY) {
      yield* this.gunzippedAtOnce();
      return;
    }
    const inflated = pipeline(Readable.from(this.raw()), zlib.createGunzip({ chunkSize: INFLATE_CHUNK }), () => {});
    try {
      for await (const chunk of inflated as AsyncIterable<Buffer>) {
        this.count(chunk);
        yield chunk;
      }
    } catch (err) {
      throw entryError(err, this.name);
    }
  }

  /**
   * A small .gz entry (an ndt7 result) inflated in one call: a stream per entry costs more than the
   * inflation itself. The output is capped where the size and ratio limits would stop it anyway.
   */
  private async *gunzippedAtOnce(): AsyncGenerator<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.raw()) chunks.push(chunk);
    const stored = Buffer.concat(chunks);
    const cap = Math.min(
      this.limits.maxEntryInflatedBytes,
      Math.max(this.limits.ratioFloorBytes, stored.length * this.limits.maxInflateRatio),
    );
    let out: Buffer;
    try {
      out = zlib.gunzipSync(stored, { maxOutputLength: cap + 1 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new EtlError('decompression_bomb', `${this.name}: inflates beyond ${cap} bytes from ${stored.length}`, {
          stage: 'archive',
          cause: err,
        });
      }
      throw entryError(err, this.name);
    }
    this.count(out);
    yield out;
  }

  bytes(): number {
    return this.inflatedBytes;
  }

  /** Reads what the consumer left, so the tar stream can move to the next entry. */
  async drain(): Promise<void> {
    while (!this.done) await this.next();
    if (this.failure) throw this.failure;
  }
}

function paxOf(header: { pax?: unknown }): Record<string, string> {
  const pax = header.pax;
  if (pax === null || typeof pax !== 'object') return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(pax as Record<string, unknown>)) if (typeof v === 'string') out[k] = v;
  return out;
}

/**
 * Yields every entry of the archive in order. The consumer must finish with an entry (read its
 * body or not) before asking for the next; unread bytes are drained here. A broken archive throws
 * EtlError corrupt_archive / truncated_archive after the entries that could be read.
 */
export async function* readArchive(
  source: AsyncIterable<Buffer>,
  options: ArchiveReaderOptions = {},
): AsyncGenerator<ArchiveItem> {
  const maxEntryBytes = options.maxEntryBytes ?? DEFAULT_LIMITS.maxEntryBytes;
  const limits: InflateLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const extract = tar.extract();
  const input = Readable.from(decompressIfGzip(source, limits, options.deadline ?? Infinity, options.onBytes));
  let failure: unknown = null;
  pipeline(input, extract, (err) => {
    if (err) failure = err;
  });
  try {
    for await (const entry of extract) {
      const { header } = entry;
      const name = header.name;
      const size = header.size;
      // tar-stream decodes a size it cannot read (bad base-256) as null, then waits for a body forever.
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
        throw new EtlError('corrupt_archive', `${name}: the tar header's size field is not a size`, {
          stage: 'archive',
        });
      }
      if (header.type === 'directory') {
        // A directory holds no data; draining a body its header claims would wait forever.
        yield { kind: 'skipped', name, size, reason: 'directory', message: 'directory entry' };
        continue;
      }
      const body = new EntryBody(entry as unknown as AsyncIterable<Buffer>, name, limits);
      try {
        if (header.type !== 'file' && header.type !== 'contiguous-file') {
          yield {
            kind: 'skipped',
            name,
            size,
            reason: 'unsupported_entry',
            message: `${header.type} entry is not a regular file`,
          };
        } else if (size > maxEntryBytes) {
          yield {
            kind: 'skipped',
            name,
            size,
            reason: 'entry_too_large',
            message: `entry of ${size} bytes is above the ${maxEntryBytes}-byte limit`,
          };
        } else {
          const gunzipped = name.endsWith('.gz');
          yield {
            kind: 'file',
            name,
            size,
            mtime: header.mtime ?? null,
            pax: paxOf(header),
            gunzipped,
            body: gunzipped ? body.gunzipped(size) : body.plain(),
            bytesRead: () => body.bytes(),
          };
        }
      } finally {
        await body.drain();
      }
    }
    // tar-stream ends its iteration quietly when the stream was destroyed by an error.
    if (failure !== null) throw archiveError(failure);
  } catch (err) {
    throw archiveError(err);
  }
}
