// `--workers`: entries parsed in worker threads must store exactly what a one-thread run stores:
// the same rows in the same order, the same rejects and the same ledger records, for good
// archives and for every hostile archive of testdata/hostile.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasArchiveSuffix } from '../../source/archive-path.js';
import { EntryPool } from './entry-pool.js';
import { localArchive } from '../../source/local-source.js';
import { PACKAGE_ROOT } from '../../package-info.js';
import { processArchive } from '../process-archive.js';
import { Registry } from '../../parser/registry.js';
import { SchemaSet } from '../../schema/schema-set.js';
import { JsonlSink } from '../../sinks/jsonl-sink.js';
import type { RowBatch } from '../../rows/row-batch.js';
import type { TableRef } from '../../schema/tables.js';
import { buildArchive, type TestEntry } from '../../../test/support/archives.js';
import { tempDir, withTimeout } from '../../../test/support/helpers.js';

// One clock for both runs (the time budget counts from it, so it is now).
const NOW = new Date();
const HOSTILE = path.join(PACKAGE_ROOT, 'testdata/hostile');
const BUNDLED = path.join(PACKAGE_ROOT, 'testdata/archives');
const V2_FILE = path.join(PACKAGE_ROOT, 'testdata/switch/v2-dfw07-local-octets-zeroed/20211214T023700-switch.jsonl');
// Hostile archives that take seconds of inflating in each mode; their limits are tested in hostile.test.ts.
const SLOW = new Set(['gzip-bomb-archive', 'gzip-bomb-entry', 'one-gigabyte-line', 'inflated-too-large-archive']);

let schemas: SchemaSet;
let registry: Registry;
let pool: EntryPool;

beforeAll(async () => {
  schemas = SchemaSet.load();
  registry = await Registry.load(schemas);
  pool = await EntryPool.start({ workers: 2 });
}, 60_000);

afterAll(async () => {
  await pool?.close();
});

/** The DISCOv2 test file's lines with every timestamp moved on by k collection windows of 300 s. */
function shifted(k: number): string {
  return readFileSync(V2_FILE, 'utf8').replace(
    /"timestamp":(\d+)/g,
    (_m, t: string) => `"timestamp":${Number(t) + 300 * k}`,
  );
}

function archivesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...archivesUnder(p));
    else if (hasArchiveSuffix(p)) out.push(p);
  }
  return out;
}

/** Everything a sink stored for these archives, file by file, with the run's timings taken out. */
async function store(
  files: string[],
  withPool: boolean,
  makeSink: (dir: string) => JsonlSink = (dir) => new JsonlSink(dir),
): Promise<Record<string, string>> {
  const dir = tempDir('pool');
  const sink = makeSink(dir);
  for (const file of files) {
    await processArchive(localArchive(file), {
      registry,
      schemas,
      sink,
      version: 'test',
      gitCommit: null,
      now: () => NOW,
      batchRows: 7, // many batches per entry, so their order is tested too
      ...(withPool ? { pool } : {}),
    });
  }
  await sink.close();
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

/**
 * The same files, byte for byte, but for the ledger's entry_bytes: it counts what was read from
 * the archive, and with workers the main thread reads an entry ahead of its parser, so an entry
 * whose parser stopped early may count more.
 */
function expectSameStored(one: Record<string, string>, many: Record<string, string>): void {
  const ledger = (stored: Record<string, string>): Record<string, unknown>[] =>
    (stored['_archives.jsonl'] ?? '')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const [oneLedger, manyLedger] = [ledger(one), ledger(many)];
  expect(manyLedger.map(({ entry_bytes: _b, ...r }) => r)).toEqual(oneLedger.map(({ entry_bytes: _b, ...r }) => r));
  manyLedger.forEach((r, i) =>
    expect(Number(r.entry_bytes ?? 0)).toBeGreaterThanOrEqual(Number(oneLedger[i]?.entry_bytes ?? 0)),
  );
  const rest = (stored: Record<string, string>): Record<string, string> =>
    Object.fromEntries(Object.entries(stored).filter(([file]) => file !== '_archives.jsonl'));
  expect(rest(many)).toEqual(rest(one));
}

describe('parsing with worker threads', () => {
  it('stores the bundled archives exactly as one thread does', async () => {
    const files = archivesUnder(BUNDLED);
    const one = await store(files, false);
    const many = await store(files, true);
    expect(Object.keys(one)).toContain('raw_ndt/ndt7.jsonl');
    expect(one['raw_ndt/ndt7.jsonl']?.split('\n').length).toBe(115);
    expectSameStored(one, many);
  }, 60_000);

  it('stores an archive mixing small, large, gzipped, broken and unreadable entries exactly as one thread does', async () => {
    const lines = readFileSync(V2_FILE, 'utf8');
    // Over 1 MiB, so the entry goes to the worker in chunks rather than in one message.
    const large = Array.from({ length: 40 }, (_, k) => shifted(k)).join('');
    expect(large.length).toBeGreaterThan(1024 * 1024);
    const bytes = await buildArchive([
      { name: '2021/12/14/a-switch.jsonl', content: lines },
      { name: '2021/12/14/b-switch.jsonl', content: large },
      { name: '2021/12/14/c-switch.jsonl', content: '{"metric":"switch.octets.uplink.tx","sample":[' },
      { name: '2021/12/14/d-switch.jsonl.gz', content: shifted(100), gzip: true },
      { name: '2021/12/14/e-not-switch.txt', content: 'x' },
      { name: '2021/12/14/f-switch.jsonl', content: `${lines}{"hostname":"x","sample":[{"timestamp":"no"}]}\n` },
      { name: '2021/12/14/g-switch.jsonl', content: '' },
    ]);
    const file = path.join(
      tempDir('mixed'),
      'utilization/switch/2021/12/14/20211214T030000.000000Z-switch-mlab2-dfw07-utilization.tgz',
    );
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, bytes);
    // The same archive cut inside the large entry's body: the archive fails, the entries before it stay.
    const cut = file.replace('T030000', 'T040000');
    const tarBytes = (await import('node:zlib')).gunzipSync(bytes);
    writeFileSync(cut, tarBytes.subarray(0, 1024 * 1024));

    const one = await store([file, cut], false);
    const many = await store([file, cut], true);
    const ledger = (one['_archives.jsonl'] ?? '')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(ledger.map((r) => [r.status, r.entries_parsed, r.entries_failed, r.error_code])).toEqual([
      ['partial', 5, 1, 'invalid_json'],
      ['failed', 1, 1, 'truncated_archive'],
    ]);
    expectSameStored(one, many);
  }, 60_000);

  it('hands the bytes read before an archive broke inside a small entry to its parser, as one thread does', async () => {
    const hop = readFileSync(
      path.join(PACKAGE_ROOT, 'testdata/hopannotation2/real-hop/20210818T174432Z_1e0b318cf3c2_91.189.88.152.json'),
      'utf8',
    ).trim();
    const lines = Array.from({ length: 1500 }, (_, i) => hop.replace(/"ID":"[^"]*"/, `"ID":"hop-${i}"`)).join('\n');
    expect(lines.length).toBeLessThan(1024 * 1024); // small enough to go to a worker in one message
    const tarBytes = await buildArchive([{ name: '2021/08/18/hops.json', content: lines }], { gzip: false });
    const file = path.join(
      tempDir('cut-small'),
      'ndt/hopannotation2/2021/08/18/20210818T000000.000000Z-hopannotation2-mlab1-abc01-ndt.tar',
    );
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, tarBytes.subarray(0, 512 + Math.floor(lines.length / 2)));
    const one = await store([file], false);
    const many = await store([file], true);
    const rows = (one['raw_ndt/hopannotation2.jsonl'] ?? '').split('\n').filter(Boolean).length;
    expect(rows).toBeGreaterThan(500);
    expect(one['_archives.jsonl']).toContain('"error_code":"truncated_archive"');
    expectSameStored(one, many);
  }, 60_000);

  it('stops at a failed write with the same ledger as one thread, though workers read ahead', async () => {
    // Directories and unreadable entries between them are counted in order too, not as they are read.
    const bytes = await buildArchive(
      Array.from({ length: 12 }, (_, k): TestEntry[] => [
        { name: `2021/12/14/e${String(k).padStart(2, '0')}-switch.jsonl`, content: shifted(k) },
        { name: `2021/12/14/d${k}/`, content: '', type: 'directory' },
        { name: `2021/12/14/l${k}-switch.jsonl`, content: '', type: 'symlink', linkname: 'e00-switch.jsonl' },
      ]).flat(),
    );
    const file = path.join(
      tempDir('write-fails'),
      'utilization/switch/2021/12/14/20211214T030000.000000Z-switch-mlab2-dfw07-utilization.tgz',
    );
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, bytes);
    class FailingSink extends JsonlSink {
      override async writeRows(ref: TableRef, batch: RowBatch): Promise<void> {
        if (batch.entry.includes('e03')) throw new Error('disk full');
        return super.writeRows(ref, batch);
      }
    }
    const one = await store([file], false, (dir) => new FailingSink(dir));
    const many = await store([file], true, (dir) => new FailingSink(dir));
    expect(one['_archives.jsonl']).toContain('"entries_seen":10,"directories":3');
    expect(one['_archives.jsonl']).toContain('"error_code":"sink_error"');
    expectSameStored(one, many);
  }, 60_000);

  it('fails only the entry whose worker thread died, and goes on with a new thread', async () => {
    // A datatype whose parser ends its thread on an entry saying "die".
    const root = tempDir('crash');
    mkdirSync(path.join(root, 'parsers'));
    mkdirSync(path.join(root, 'schemas'));
    writeFileSync(path.join(root, 'package.json'), '{"type":"module"}\n');
    for (const f of ['_common.json', '_archives.json', '_rejects.json']) {
      writeFileSync(path.join(root, 'schemas', f), readFileSync(path.join(PACKAGE_ROOT, 'schemas', f)));
    }
    writeFileSync(
      path.join(root, 'schemas', 'crashy.json'),
      JSON.stringify({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        $id: 'urn:mlab-etl:schema:crashy',
        title: 'crashy',
        description: 'a test datatype',
        type: 'object',
        properties: {
          id: { $ref: 'urn:mlab-etl:schema:_common#/$defs/id' },
          date: { $ref: 'urn:mlab-etl:schema:_common#/$defs/date' },
          parser: { $ref: 'urn:mlab-etl:schema:_common#/$defs/parser' },
        },
        required: ['id', 'date', 'parser'],
      }),
    );
    const api = pathToFileURL(path.join(PACKAGE_ROOT, 'src/parser/api.ts')).href;
    writeFileSync(
      path.join(root, 'parsers', 'crashy.ts'),
      `import { defineParser } from ${JSON.stringify(api)};
export default defineParser({
  name: 'crashy',
  description: 'ends its worker thread on an entry saying die',
  accepts: () => true,
  async *parse(input) {
    let text = '';
    for await (const chunk of input.body) text += chunk.toString();
    if (text.trim() === 'die') process.exit(3);
    yield { id: text.length > 100 ? 'big-' + text.length : text.trim() };
  },
});
`,
    );
    const crashSchemas = SchemaSet.load(path.join(root, 'schemas'));
    const crashRegistry = await Registry.load(crashSchemas, path.join(root, 'parsers'));
    const crashPool = await EntryPool.start({
      workers: 1,
      schemasDir: path.join(root, 'schemas'),
      parsersDir: path.join(root, 'parsers'),
    });
    try {
      // 'big' is still being read, slowly, when the thread that parsed 'die' dies: it has not been
      // sent to any thread yet, and must go to the new one.
      const big = 'x'.repeat(600 * 1024);
      const bytes = await buildArchive(
        ['a', 'die', big, 'b', 'die', 'c'].map((content, i) => ({ name: `e${i}`, content })),
        { gzip: false },
      );
      const file = path.join(root, 'exp/crashy/2021/12/14/20211214T030000.000000Z-crashy-mlab2-dfw07-exp.tar');
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, bytes);
      const local = localArchive(file);
      const slow = {
        ...local,
        open: async function* () {
          for (let at = 0; at < bytes.length; at += 16 * 1024) {
            yield bytes.subarray(at, at + 16 * 1024);
            await new Promise((r) => setTimeout(r, 10));
          }
        },
      };
      const dir = tempDir('crash-out');
      const sink = new JsonlSink(dir);
      const result = await withTimeout(
        processArchive(slow, {
          registry: crashRegistry,
          schemas: crashSchemas,
          sink,
          version: 'test',
          gitCommit: null,
          pool: crashPool,
        }),
        30_000,
        'the archive with two thread deaths',
      );
      await sink.close();
      expect([result.record.status, result.record.entries_parsed, result.record.entries_failed]).toEqual([
        'partial',
        4,
        2,
      ]);
      expect(result.failures.map((f) => [f.entry, f.code])).toEqual([
        ['e1', 'internal_error'],
        ['e4', 'internal_error'],
      ]);
      expect(result.failures[0]?.message).toMatch(/worker thread: exited with code 3/);
      const ids = readFileSync(path.join(dir, 'raw_exp/crashy.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: string }).id);
      expect(ids).toEqual(['a', `big-${big.length}`, 'b', 'c']);
    } finally {
      await crashPool.close();
    }
  }, 60_000);

  const cases = readdirSync(HOSTILE)
    .filter((c) => !SLOW.has(c) && statSync(path.join(HOSTILE, c)).isDirectory())
    .map((c) => ({ name: c, files: archivesUnder(path.join(HOSTILE, c)) }))
    .filter((c) => c.files.length > 0);

  it('has hostile archives to run', () => {
    expect(cases.length).toBeGreaterThan(25);
  });

  for (const c of cases) {
    it(`${c.name}: the same rows, rejects and ledger with worker threads`, async () => {
      expectSameStored(await store(c.files, false), await store(c.files, true));
    }, 60_000);
  }
});
