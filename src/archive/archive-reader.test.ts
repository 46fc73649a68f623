import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { readArchive, type ArchiveItem } from './archive-reader.js';
import { EtlError } from '../errors.js';
import { buildArchive, chunksOf } from '../../test/support/archives.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const NDT7 = path.join(
  root,
  'testdata/archives/mlab-sandbox/ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz',
);
const PLAIN_TAR_NAMED_TGZ = path.join(root, 'testdata/mlab/legacy/sidestream-files.tar.gz');

interface Seen {
  kind: string;
  name: string;
  size: number;
  text?: string;
  bytes?: number;
  error?: string;
  reason?: string;
  pax?: Record<string, string>;
}

/** Reads every entry's body to the end (or to its error) and records what a user would see. */
async function readAll(
  source: AsyncIterable<Buffer>,
  options: Parameters<typeof readArchive>[1] = {},
): Promise<{ seen: Seen[]; error?: EtlError }> {
  const seen: Seen[] = [];
  try {
    for await (const item of readArchive(source, options)) seen.push(await look(item));
  } catch (err) {
    return { seen, error: err as EtlError };
  }
  return { seen };
}

async function look(item: ArchiveItem): Promise<Seen> {
  if (item.kind === 'skipped') return { kind: item.kind, name: item.name, size: item.size, reason: item.reason };
  const chunks: Buffer[] = [];
  try {
    for await (const c of item.body) chunks.push(c);
  } catch (err) {
    if (!(err instanceof EtlError)) throw err;
    return { kind: 'file', name: item.name, size: item.size, error: err.code };
  }
  const text = Buffer.concat(chunks).toString();
  return { kind: 'file', name: item.name, size: item.size, text, bytes: item.bytesRead(), pax: { ...item.pax } };
}

describe('readArchive', () => {
  it('reads gzip and plain tars alike, deciding by magic bytes', async () => {
    const entries = [{ name: 'a.jsonl', content: '{"a":1}\n' }];
    const gz = await readAll(chunksOf(await buildArchive(entries)));
    const plain = await readAll(chunksOf(await buildArchive(entries, { gzip: false })));
    expect(gz.seen.map((s) => s.text)).toEqual(['{"a":1}\n']);
    expect(plain.seen).toEqual(gz.seen);
  });

  it('reads a real .tar.gz that is really a plain tar', async () => {
    const { seen, error } = await readAll(createReadStream(PLAIN_TAR_NAMED_TGZ));
    expect(error).toBeUndefined();
    expect(seen.map((s) => [s.kind, s.name, s.reason])).toEqual([
      ['skipped', 'sidestream/', 'directory'],
      ['file', 'sidestream/20170203T00:00:00Z_ALL0.web100', undefined],
    ]);
    expect(seen[1]?.bytes).toBe(4616);
  });

  it('skips directories and non-regular entries, and gunzips nested .gz entries', async () => {
    const bytes = await buildArchive([
      { name: '2021/', type: 'directory' },
      { name: '2021/link', type: 'symlink', linkname: '/etc/passwd' },
      { name: '2021/x.json.gz', content: '{"x":1}', gzip: true },
      { name: '2021/y.json', content: '{"y":2}' },
    ]);
    const { seen, error } = await readAll(chunksOf(bytes, 100));
    expect(error).toBeUndefined();
    expect(seen.map((s) => [s.name, s.reason ?? s.text])).toEqual([
      ['2021/', 'directory'],
      ['2021/link', 'unsupported_entry'],
      ['2021/x.json.gz', '{"x":1}'],
      ['2021/y.json', '{"y":2}'],
    ]);
  });

  it('skips an entry above the size limit with a reason, and reads the ones after it', async () => {
    const bytes = await buildArchive([
      { name: 'big.json', content: 'x'.repeat(5000) },
      { name: 'small.json', content: '{}' },
    ]);
    const { seen } = await readAll(chunksOf(bytes), { maxEntryBytes: 1000 });
    expect(seen.map((s) => [s.name, s.reason ?? s.text])).toEqual([
      ['big.json', 'entry_too_large'],
      ['small.json', '{}'],
    ]);
  });

  it('fails one truncated .gz entry with corrupt_entry and still reads the next entries', async () => {
    const good = gzipSync(Buffer.from('{"ok":true}'));
    const bytes = await buildArchive([
      { name: 'bad.json.gz', content: good.subarray(0, 10) },
      { name: 'notgzip.json.gz', content: 'plain text' },
      { name: 'good.json.gz', content: good },
    ]);
    const { seen, error } = await readAll(chunksOf(bytes));
    expect(error).toBeUndefined();
    expect(seen.map((s) => [s.name, s.error ?? s.text])).toEqual([
      ['bad.json.gz', 'corrupt_entry'],
      ['notgzip.json.gz', 'corrupt_entry'],
      ['good.json.gz', '{"ok":true}'],
    ]);
  });

  it('moves on when the consumer does not read an entry at all', async () => {
    const bytes = await buildArchive([
      { name: 'a', content: 'A'.repeat(100_000) },
      { name: 'b', content: 'B' },
    ]);
    const names: string[] = [];
    let lastText = '';
    for await (const item of readArchive(chunksOf(bytes, 1000))) {
      names.push(item.name);
      if (item.name === 'b' && item.kind === 'file') for await (const c of item.body) lastText += c.toString();
    }
    expect(names).toEqual(['a', 'b']);
    expect(lastText).toBe('B');
  });

  it('reports a truncated archive after the entries it could read', async () => {
    const tarBytes = await buildArchive(
      [
        { name: 'first.json', content: '{"n":1}' },
        { name: 'second.json', content: 'y'.repeat(3000) },
      ],
      { gzip: false },
    );
    // Cut inside the second entry's body, and a gzip stream cut before its end.
    const cut = tarBytes.subarray(0, 512 * 4);
    const gz = gzipSync(tarBytes);
    for (const input of [cut, gz.subarray(0, gz.length - 10)]) {
      const { seen, error } = await readAll(chunksOf(input, 256));
      expect(error).toBeInstanceOf(EtlError);
      expect(['truncated_archive', 'corrupt_archive']).toContain(error?.code);
      if (input === cut) {
        expect(error?.code).toBe('truncated_archive');
        expect(seen[0]).toMatchObject({ name: 'first.json', text: '{"n":1}' });
      }
    }
  });

  it('fails with corrupt_archive on bytes that are not a tar', async () => {
    const { error } = await readAll(chunksOf(Buffer.from('this is not a tar archive, just text\n'.repeat(40))));
    expect(error?.code).toBe('corrupt_archive');
  });

  it('streams all 114 entries of the real ndt7 archive, as tar lists them, with MLAB PAX headers', async () => {
    const listing = execFileSync('tar', ['--warning=no-unknown-keyword', '-tzvf', NDT7], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((line) => {
        const f = line.split(/\s+/);
        return { size: Number(f[2]), name: f[5] as string };
      });
    const { seen, error } = await readAll(createReadStream(NDT7));
    expect(error).toBeUndefined();
    expect(listing).toHaveLength(114);
    expect(seen.map((s) => ({ size: s.size, name: s.name }))).toEqual(listing);
    expect(seen.every((s) => s.kind === 'file' && s.name.endsWith('.json.gz') && s.text?.startsWith('{'))).toBe(true);
    expect(seen[0]?.pax).toMatchObject({
      'MLAB.datatype': 'ndt7',
      'MLAB.experiment.name': 'ndt',
      'MLAB.server.name': 'mlab3.syd03.measurement-lab.org',
    });
  });
});
