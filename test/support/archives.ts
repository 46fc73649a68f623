/**
 * Helpers for tests, also for parser contributors: build real tar/tgz bytes in memory with
 * tar-stream, so tests never mock a stream.
 */
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export interface TestEntry {
  name: string;
  content?: string | Buffer;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device';
  pax?: Record<string, string>;
  linkname?: string;
  /** gzip the content (for `.gz` entries). */
  gzip?: boolean;
}

/** A tar archive holding the entries, gzip-compressed unless `gzip: false`. */
export async function buildArchive(entries: TestEntry[], options: { gzip?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(chunk);
  })();
  for (const e of entries) {
    const raw = e.content === undefined ? Buffer.alloc(0) : Buffer.from(e.content);
    const body = e.gzip ? gzipSync(raw) : raw;
    const type = e.type ?? 'file';
    await new Promise<void>((resolve, reject) => {
      const header = {
        name: e.name,
        type,
        mtime: new Date(Date.UTC(2021, 11, 14)),
        ...(e.pax ? { pax: e.pax } : {}),
        ...(e.linkname ? { linkname: e.linkname } : {}),
      };
      pack.entry(header, type === 'file' ? body : Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  const tarBytes = Buffer.concat(chunks);
  return options.gzip === false ? tarBytes : gzipSync(tarBytes);
}

/** An async iterable of the bytes in chunks of `size`, like a file or network stream. */
export async function* chunksOf(bytes: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}
