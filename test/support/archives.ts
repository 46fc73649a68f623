/**
 * Helpers for tests, also for parser contributors: build real tar/tgz bytes in memory with
 * tar-stream, so tests never mock a stream.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
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

/**
 * Writes a switch archive in M-Lab's layout under `root/archives/` and returns its path: `files`
 * DISCO files, each with `samples` ten-second samples of 8 metrics (rows: files x samples). Big
 * ones take seconds to parse and make the parser spill grouped rows.
 */
export async function writeSwitchArchive(
  root: string,
  { files, samples }: { files: number; samples: number },
): Promise<string> {
  const metrics = ['uplink.tx', 'uplink.rx', 'local.tx', 'local.rx'].flatMap((m) => [
    `switch.octets.${m}`,
    `switch.unicast.${m}`,
  ]);
  const entries = Array.from({ length: files }, (_, f) => {
    const lines = metrics.map((metric) => {
      const sample = Array.from({ length: samples }, (_, i) => ({
        timestamp: 1639440000 + f * samples * 10 + i * 10,
        value: i,
        counter: 1e9 + i,
      }));
      return JSON.stringify({ experiment: 's1-abc01.measurement-lab.org', hostname: 'mlab1-abc01', metric, sample });
    });
    return { name: `2021/12/14/2021121${f}T000000-switch.jsonl`, content: `${lines.join('\n')}\n` };
  });
  const dir = path.join(root, 'archives/utilization/switch/2021/12/14');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, '20211214T000000.000000Z-switch-mlab1-abc01-utilization.tgz');
  writeFileSync(file, await buildArchive(entries));
  return file;
}
