// A full filesystem under each local sink, through the real command: the run says disk_full in
// one line (no stack trace), nothing it lost is counted as written, and the next run, once space
// is freed, leaves only valid lines and a ledger that matches the rows stored.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { PACKAGE_ROOT } from '../../src/package-info.js';
import { Registry } from '../../src/parser/registry.js';
import { processArchive } from '../../src/pipeline/process-archive.js';
import { SchemaSet } from '../../src/schema/schema-set.js';
import { DuckDbSink } from '../../src/sinks/duckdb/sink.js';
import { runQuery } from '../../src/sinks/duckdb/query.js';
import { localArchive } from '../../src/source/local-source.js';
import { writeSwitchArchive } from '../support/archives.js';
import { spawnCli, tempDir } from '../support/helpers.js';
import { smallFilesystem, smallFilesystemUnavailable, type SmallFilesystem } from '../support/small-filesystem.js';

const NDT7 = path.join(
  PACKAGE_ROOT,
  'testdata/archives/mlab-sandbox/ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz',
);
const unavailable = smallFilesystemUnavailable();
if (unavailable && process.env.CI) throw new Error(`full-disk tests must run in CI: ${unavailable}`);

async function parse(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(['parse', ...args, '--no-progress'], {
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    isTTY: false,
  });
  return { code, out, err };
}

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').slice(0, -1);
}

describe.skipIf(unavailable !== null)('a full filesystem under the JSONL sink', () => {
  let fs: SmallFilesystem | undefined;
  afterEach(() => fs?.remove());

  it('fails with disk_full, then the next run repairs the cut line and counts exactly what it stored', async () => {
    fs = smallFilesystem(256 * 1024); // the ndt7 archive's rows are about 3.7 MB
    const first = await parse([NDT7, '--sink', `jsonl:${fs.dir}`]);
    expect(first.code).toBe(1);
    expect(first.err).toMatch(/disk_full: .*the filesystem is full/);
    expect(first.err).not.toMatch(/ERR_STREAM_DESTROYED|\n\s+at /);
    const rowsFile = path.join(fs.dir, 'raw_ndt/ndt7.jsonl');
    const cut = readFileSync(rowsFile, 'utf8');
    expect(cut.length).toBeGreaterThan(0);
    // Nothing the full disk took is in the ledger: no record claims the archive was written.
    const ledgerFile = path.join(fs.dir, '_archives.jsonl');
    const ledger = (() => {
      try {
        return lines(ledgerFile);
      } catch {
        return [];
      }
    })();
    expect(ledger.filter((l) => (JSON.parse(l) as { status: string }).status === 'ok')).toEqual([]);

    fs.resize(16 * 1024 * 1024);
    const second = await parse([NDT7, '--sink', `jsonl:${fs.dir}`]);
    expect(second.err).toContain('without its newline');
    expect(second.code, second.err).toBe(0);
    const rows = lines(rowsFile).map((l) => JSON.parse(l) as { id: string; parser: { Time: string } });
    const records = lines(ledgerFile).map(
      (l) => JSON.parse(l) as { status: string; rows_written: number; started: string },
    );
    const ok = records.filter((r) => r.status === 'ok');
    expect(ok).toHaveLength(1);
    // The ledger's count is the rows of that run, all of them on disk and valid.
    const ofRun = rows.filter((r) => r.parser.Time === ok[0]?.started);
    expect(ofRun).toHaveLength(ok[0]?.rows_written ?? -1);
    expect(new Set(ofRun.map((r) => r.id)).size).toBe(114);
  });
});

describe.skipIf(unavailable !== null)('a full filesystem under the DuckDB sink', () => {
  let fs: SmallFilesystem | undefined;
  afterEach(() => fs?.remove());

  it('fails with disk_full, stores nothing it counts, and the next run after space is freed is whole', async () => {
    fs = smallFilesystem(300 * 1024); // the archive's Parquet file needs about 450 KiB
    const db = path.join(fs.dir, 'x.duckdb');
    const first = await parse([NDT7, '--sink', `duckdb:${db}`]);
    expect(first.code).toBe(1);
    expect(first.err).toMatch(/disk_full: .*the filesystem is full/);
    expect(first.err).not.toMatch(/\n\s+at /);

    fs.resize(16 * 1024 * 1024);
    const second = await parse([NDT7, '--sink', `duckdb:${db}`]);
    expect(second.code, second.err).toBe(0);
    const stored = await runQuery(db, 'SELECT count(*) AS n FROM raw_ndt.ndt7');
    const ledger = await runQuery(db, "SELECT sum(rows_written) AS n FROM _archives WHERE status = 'ok'");
    expect(Number(stored.rows[0]?.n)).toBe(114);
    expect(Number(ledger.rows[0]?.n)).toBe(114);
  });

  it('counts in the ledger only the rows of the Parquet files that were written when a flush fails mid-archive', async () => {
    fs = smallFilesystem(400 * 1024);
    const db = path.join(fs.dir, 'x.duckdb');
    const schemas = SchemaSet.load();
    // A Parquet file per 256 KiB of rows: the archive's later files meet the full disk.
    const sink = await DuckDbSink.open(db, schemas, { fileBytes: 256 * 1024 });
    let result;
    try {
      result = await processArchive(localArchive(NDT7), {
        registry: await Registry.load(schemas),
        schemas,
        sink,
        version: 'test',
        gitCommit: null,
      });
    } finally {
      await sink.close();
    }
    expect(result.record.status).toBe('failed');
    expect(result.record.error_code).toBe('disk_full');
    const stored = await runQuery(db, 'SELECT count(*) AS n FROM raw_ndt.ndt7');
    const ledger = await runQuery(db, 'SELECT rows_written AS n FROM _archives');
    expect(Number(stored.rows[0]?.n)).toBeGreaterThan(0);
    expect(Number(stored.rows[0]?.n)).toBeLessThan(114);
    expect(Number(ledger.rows[0]?.n)).toBe(Number(stored.rows[0]?.n));
  });
});

describe.skipIf(unavailable !== null)('a full filesystem under the spilled rows', () => {
  let fs: SmallFilesystem | undefined;
  afterEach(() => fs?.remove());

  /** `parse` in a child process whose temporary directory is `tmp`, rows to JSONL in `out`; `err` is all it printed. */
  async function parseWithTmp(archive: string, out: string, tmp: string): Promise<{ code: number; err: string }> {
    const args = ['parse', archive, '--sink', `jsonl:${out}`, '--no-progress', '--limit', 'groupedRowsInMemory=100'];
    const run = spawnCli(args, { TMPDIR: tmp, TSX_DISABLE_CACHE: '1' });
    return { code: await run.exited, err: run.output() };
  }

  it('spills compactly (3,000 rows an entry within 4 MiB), and a spill that meets a full disk fails as disk_full, to be retried', async () => {
    const root = tempDir('spill');
    const archive = await writeSwitchArchive(root, { files: 2, samples: 3000 });
    // The former format (v8 records, uncompressed, about 4.5 KB a switch row) failed here.
    fs = smallFilesystem(4 * 1024 * 1024);
    const roomy = await parseWithTmp(archive, path.join(root, 'out1'), fs.dir);
    expect(roomy.code, roomy.err).toBe(0);
    expect(lines(path.join(root, 'out1/raw_utilization/switch.jsonl'))).toHaveLength(6000);

    fs.remove();
    fs = smallFilesystem(16 * 1024);
    const full = await parseWithTmp(archive, path.join(root, 'out2'), fs.dir);
    expect(full.code).toBe(1);
    expect(full.err).toContain('disk_full');
    const [record] = lines(path.join(root, 'out2/_archives.jsonl')).map(
      (l) => JSON.parse(l) as { status: string; error_code: string },
    );
    // disk_full ends the archive (retryable: serve nacks it) instead of failing entries as parser errors for good.
    expect(record).toMatchObject({ status: 'failed', error_code: 'disk_full' });
  }, 120_000);
});
