// The CLI as a user runs it: real archives, a real DuckDB file, the ledger and rejects.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { run } from './main.js';
import type { Io } from './io.js';
import { checkoutHead, PACKAGE_ROOT } from '../package-info.js';
import { runQuery } from '../sinks/duckdb/query.js';
import { buildArchive } from '../../test/support/archives.js';

const ARCHIVES = path.join(PACKAGE_ROOT, 'testdata/archives');
const NDT7 = path.join(
  PACKAGE_ROOT,
  'testdata/archives/mlab-sandbox/ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz',
);
const V2_LINES = readFileSync(
  path.join(PACKAGE_ROOT, 'testdata/switch/v2-dfw07-local-octets-zeroed/20211214T023700-switch.jsonl'),
  'utf8',
);

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { stdout: (t) => (out += t), stderr: (t) => (err += t), isTTY: false };
  const code = await run(argv, io);
  return { code, out, err };
}

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-cli-'));
}

/** Writes an archive at <dir>/<experiment>/<datatype>/YYYY/MM/DD/<name>. */
function place(dir: string, rel: string, bytes: Buffer): string {
  const file = path.join(dir, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, bytes);
  return file;
}

async function count(db: string, sql: string): Promise<number> {
  const r = await runQuery(db, sql);
  return Number(Object.values(r.rows[0] ?? {})[0]);
}

describe('mlab-etl parse into DuckDB', () => {
  it('parses the bundled archives, and parsing them again shows one copy of each row in the view', async () => {
    const db = path.join(tmp(), 'x.duckdb');
    const first = await cli('parse', ARCHIVES, '--sink', `duckdb:${db}`);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/raw_utilization\.switch\s+2\s+2\s+0\s+0\s+390\s+0/);
    expect(first.out).toMatch(/raw_ndt\.ndt7\s+1\s+114\s+0\s+0\s+114\s+0/);
    expect(first.out).toMatch(/raw_ndt\.annotation2\s+1\s+57\s+0\s+0\s+57\s+0/);
    expect(await count(db, 'SELECT count(*) FROM utilization.switch')).toBe(390);

    const again = await cli('parse', ARCHIVES, '--sink', `duckdb:${db}`);
    expect(again.code).toBe(0);
    expect(await count(db, 'SELECT count(*) FROM raw_utilization.switch')).toBe(780);
    expect(await count(db, 'SELECT count(*) FROM utilization.switch')).toBe(390);
    expect(await count(db, 'SELECT count(DISTINCT parser.Time) FROM utilization.switch')).toBe(2);
    expect(await count(db, 'SELECT count(*) FROM ndt.ndt7')).toBe(114);
    expect(await count(db, "SELECT count(*) FROM _archives WHERE status = 'ok' AND rows_written > 0")).toBe(8);
    // The newest parse wins.
    expect(
      await count(
        db,
        'SELECT count(*) FROM utilization.switch WHERE parser.Time < (SELECT max(started) FROM _archives) - INTERVAL 1 MINUTE',
      ),
    ).toBe(0);
  });

  it('fails a corrupt archive alone: non-zero exit, good rows written, the ledger names it with its code', async () => {
    const dir = tmp();
    const db = path.join(dir, 'x.duckdb');
    const good = await buildArchive([{ name: '2021/12/14/a-switch.jsonl', content: V2_LINES }]);
    place(dir, 'in/utilization/switch/2021/12/14/20211214T030000Z-switch-mlab2-dfw07-utilization.tgz', good);
    const corrupt = place(
      dir,
      'in/utilization/switch/2021/12/14/20211214T040000Z-switch-mlab2-dfw07-utilization.tgz',
      good.subarray(0, good.length / 2),
    );
    const r = await cli('parse', path.join(dir, 'in'), '--sink', `duckdb:${db}`);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`file://${corrupt}: truncated_archive`);
    expect(await count(db, 'SELECT count(*) FROM utilization.switch')).toBe(30);
    const ledger = await runQuery(db, 'SELECT archive_url, status, error_code FROM _archives ORDER BY archive_url');
    expect(ledger.rows).toEqual([
      { archive_url: expect.stringContaining('T030000Z'), status: 'ok', error_code: null },
      { archive_url: `file://${corrupt}`, status: 'failed', error_code: 'truncated_archive' },
    ]);
  });

  it('fails a bad entry alone and rejects rows that break the schema, with path and keyword', async () => {
    const dir = tmp();
    const db = path.join(dir, 'x.duckdb');
    const huge =
      '{"experiment":"s1-dfw07.measurement-lab.org","hostname":"mlab2-dfw07","metric":"switch.unicast.uplink.rx",' +
      '"sample":[{"timestamp":1639449420,"value":1,"counter":18446744073709551615},{"timestamp":1639449430,"value":2,"counter":3}]}\n';
    const bytes = await buildArchive([
      {
        name: '2021/12/14/broken-switch.jsonl',
        content: '{"metric":"switch.octets.uplink.rx","sample":[{"timestamp":1,',
      },
      { name: '2021/12/14/huge-counter-switch.jsonl', content: huge },
      { name: '2021/12/14/good-switch.jsonl', content: V2_LINES },
      { name: '2021/12/14/notes.txt', content: 'not DISCO' },
    ]);
    place(dir, 'utilization/switch/2021/12/14/20211214T030000Z-switch-mlab2-dfw07-utilization.tgz', bytes);
    const r = await cli('parse', dir, '--sink', `duckdb:${db}`);
    expect(r.code).toBe(1);
    expect(r.out).toContain('[2021/12/14/broken-switch.jsonl]: invalid_json');
    const ledger = await runQuery(
      db,
      'SELECT status, entries_seen, entries_parsed, entries_skipped, entries_failed, rows_written, rows_rejected FROM _archives',
    );
    expect(ledger.rows).toEqual([
      {
        status: 'partial',
        entries_seen: 4,
        entries_parsed: 2,
        entries_skipped: 1,
        entries_failed: 1,
        rows_written: 31,
        rows_rejected: 1,
      },
    ]);
    const rejects = await runQuery(db, 'SELECT entry, row_index, code, message FROM _rejects ORDER BY entry');
    expect(rejects.rows).toEqual([
      {
        entry: '2021/12/14/broken-switch.jsonl',
        row_index: null,
        code: 'invalid_json',
        message: expect.stringMatching(/ends inside a JSON value/),
      },
      {
        entry: '2021/12/14/huge-counter-switch.jsonl',
        row_index: 0,
        code: 'schema_violation',
        message: '/a/SwitchUnicastUplinkRxCounter: must be a signed 64-bit integer (keyword x-integer)',
      },
      { entry: '2021/12/14/notes.txt', row_index: null, code: 'not_parsable', message: expect.any(String) },
    ]);
  });

  it('records an archive with no parser for its datatype, and exits non-zero without crashing', async () => {
    const dir = tmp();
    const db = path.join(dir, 'x.duckdb');
    // A real archive under a datatype directory that has no parser. The name is one no datatype
    // will take: a real M-Lab name (scamper1, tcpinfo...) breaks this test the day it gets a parser.
    const target = path.join(
      dir,
      'ndt/no-such-datatype/2020/03/18/20200318T003853.425987Z-no-such-datatype-mlab3-syd03-ndt.tgz',
    );
    mkdirSync(path.dirname(target), { recursive: true });
    copyFileSync(NDT7, target);
    const r = await cli('parse', dir, '--sink', `duckdb:${db}`);
    expect(r.code).toBe(1);
    expect(r.out).toContain('unknown_datatype: no parser for datatype no-such-datatype');
    const ledger = await runQuery(db, 'SELECT datatype, status, error_code FROM _archives');
    expect(ledger.rows).toEqual([{ datatype: 'no-such-datatype', status: 'failed', error_code: 'unknown_datatype' }]);
  });

  it('needs --datatype, --experiment and --date for a path outside the layout, and works with them', async () => {
    const dir = tmp();
    const db = path.join(dir, 'x.duckdb');
    const file = place(dir, 'mine.tgz', await buildArchive([{ name: 'x-switch.jsonl', content: V2_LINES }]));
    const bare = await cli('parse', file, '--sink', `duckdb:${db}`);
    expect(bare.code).toBe(1);
    expect(bare.out).toContain('bad_archive_path');
    expect(bare.out).toContain('give --datatype, --experiment, --date');
    const r = await cli(
      'parse',
      file,
      '--sink',
      `duckdb:${db}`,
      '--datatype',
      'switch',
      '--experiment',
      'utilization',
      '--date',
      '2021-12-14',
    );
    expect(r.code).toBe(0);
    expect(await count(db, "SELECT count(*) FROM utilization.switch WHERE date = DATE '2021-12-14'")).toBe(30);
  });
});

describe('DuckDB: rows in Parquet files beside the database', () => {
  it('writes whole Parquet files in FILE.data/raw_E/D/, which the views and any DuckDB client read', async () => {
    const dir = tmp();
    const db = path.join(dir, 'x.duckdb');
    expect((await cli('parse', ARCHIVES, '--sink', `duckdb:${db}`)).code).toBe(0);
    const files = readdirSync(path.join(dir, 'x.data', 'raw_utilization', 'switch'));
    expect(files.every((f) => f.endsWith('.parquet'))).toBe(true);
    // One file of no rows carrying the schema, and the rows' files.
    expect(files.filter((f) => f.startsWith('0-schema-'))).toHaveLength(1);
    expect(files.length).toBeGreaterThan(1);
    // Any DuckDB client reads the rows straight from the files too.
    expect(
      await count(
        ':memory:',
        `SELECT count(*) FROM read_parquet('${path.join(dir, 'x.data', 'raw_utilization', 'switch', '*.parquet')}')`,
      ),
    ).toBe(390);
    expect(await count(db, 'SELECT count(*) FROM raw_utilization.switch')).toBe(390);
  });

  it('gathers the rows of many 2 MiB pieces into one Parquet file', async () => {
    const dir = tmp();
    const db = path.join(dir, 'x.duckdb');
    // 20 copies of a 30-row file: about 3.5 MB of rows, more than one piece.
    const copies = Array.from({ length: 20 }, (_, i) => ({ name: `2021/12/14/c${i}-switch.jsonl`, content: V2_LINES }));
    place(
      dir,
      'in/utilization/switch/2021/12/14/20211214T030000Z-switch-mlab2-dfw07-utilization.tgz',
      await buildArchive(copies),
    );
    expect((await cli('parse', path.join(dir, 'in'), '--sink', `duckdb:${db}`)).code).toBe(0);
    const files = readdirSync(path.join(dir, 'x.data', 'raw_utilization', 'switch'));
    expect(files.filter((f) => !f.startsWith('0-schema-'))).toHaveLength(1);
    expect(await count(db, 'SELECT count(*) FROM raw_utilization.switch')).toBe(600);
    expect(await count(db, 'SELECT count(*) FROM utilization.switch')).toBe(30);
  });

  it('has every column of the schema before any row is written', async () => {
    const dir = tmp();
    const db = path.join(dir, 'x.duckdb');
    const empty = await buildArchive([{ name: '2021/12/14/empty-switch.jsonl', content: '' }]);
    place(dir, 'in/utilization/switch/2021/12/14/20211214T030000Z-switch-mlab2-dfw07-utilization.tgz', empty);
    expect((await cli('parse', path.join(dir, 'in'), '--sink', `duckdb:${db}`)).code).toBe(0);
    const r = await runQuery(db, 'SELECT * FROM utilization.switch');
    expect(r.rows).toEqual([]);
    expect(r.columns).toEqual(['id', 'date', 'parser', 'a', 'raw']);
    const types = await runQuery(
      db,
      "SELECT data_type FROM information_schema.columns WHERE table_schema = 'raw_utilization' AND table_name = 'switch' AND column_name = 'a'",
    );
    expect(String(types.rows[0]?.data_type)).toContain('SwitchOctetsUplinkRxCounter BIGINT');
  });

  it('refuses a database whose rows are in DuckDB tables, with a clear error, and changes nothing', async () => {
    const dir = tmp();
    const db = path.join(dir, 'x.duckdb');
    const instance = await DuckDBInstance.create(db);
    const conn = await instance.connect();
    await conn.run('CREATE SCHEMA raw_utilization');
    await conn.run('CREATE TABLE raw_utilization.switch (id VARCHAR)');
    await conn.run("INSERT INTO raw_utilization.switch VALUES ('old')");
    conn.closeSync();
    instance.closeSync();
    const r = await cli('parse', ARCHIVES, '--sink', `duckdb:${db}`);
    expect(r.code).toBe(1);
    expect(r.out + r.err).toContain(
      'raw_utilization.switch is a table in this file, written by an earlier version that kept rows in the database; parse into a new file',
    );
    expect(await count(db, 'SELECT count(*) FROM raw_utilization.switch')).toBe(1);
    expect(existsSync(path.join(dir, 'x.data'))).toBe(false);
  });
});

describe('exact integers end to end', () => {
  const line =
    '{"experiment":"s1-lga0t.measurement-lab.org","hostname":"mlab1-lga0t","metric":"switch.octets.uplink.rx",' +
    '"sample":[{"timestamp":1642550410,"collectstart":1642550410001598262,"collectend":1642550410033015211,"value":9007199254740995,"counter":9223372036854775807}]}\n';

  it('writes counters above 2^53 digit for digit to JSONL (as strings) and DuckDB (as BIGINT)', async () => {
    const dir = tmp();
    const archive = place(
      dir,
      'in/utilization/switch/2022/01/19/20220119T010000Z-switch-mlab1-lga0t-utilization.tgz',
      await buildArchive([{ name: 'x-switch.jsonl', content: line }]),
    );
    const out = path.join(dir, 'out');
    expect((await cli('parse', archive, '--sink', `jsonl:${out}`)).code).toBe(0);
    const rows = readFileSync(path.join(out, 'raw_utilization/switch.jsonl'), 'utf8');
    expect(rows).toContain('"SwitchOctetsUplinkRxCounter":"9223372036854775807"');
    expect(rows).toContain('"collectstart":"1642550410001598262"');
    expect(rows).toContain('"SwitchOctetsUplinkRx":"9007199254740995"');
    const ledger = readFileSync(path.join(out, '_archives.jsonl'), 'utf8');
    expect(JSON.parse(ledger)).toMatchObject({ status: 'ok', rows_written: 1, table: 'raw_utilization.switch' });

    const db = path.join(dir, 'x.duckdb');
    expect((await cli('parse', archive, '--sink', `duckdb:${db}`)).code).toBe(0);
    const q = await runQuery(
      db,
      'SELECT a.SwitchOctetsUplinkRxCounter::VARCHAR c, raw.Metrics[1].sample[1].collectstart::VARCHAR s, a.SwitchOctetsUplinkRx v FROM utilization.switch',
    );
    expect(q.rows).toEqual([{ c: '9223372036854775807', s: '1642550410001598262', v: '9007199254740995' }]);
    const json = await cli(
      'query',
      'SELECT a.SwitchOctetsUplinkRx v, a.Site FROM utilization.switch',
      '--db',
      db,
      '--json',
    );
    expect(json.out).toBe('{"v":"9007199254740995","Site":"lga0t"}\n');
  });
});

describe('trying a parser on one file', () => {
  it('prints rows on stdout and each problem with its JSON path on stderr', async () => {
    const dir = tmp();
    const file = path.join(dir, 'mine-switch.jsonl');
    const tooBig =
      '{"experiment":"s1-dfw07.measurement-lab.org","hostname":"mlab2-dfw07","metric":"switch.unicast.uplink.rx",' +
      '"sample":[{"timestamp":1639449420,"value":1,"counter":18446744073709551615}]}\n';
    writeFileSync(file, V2_LINES + tooBig);
    const r = await cli('parse', file, '--datatype', 'switch', '--date', '2021-12-14', '--sink', 'stdout');
    expect(r.code).toBe(1);
    const rows = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; parser: { Filename: string } });
    expect(rows).toHaveLength(29);
    expect(rows[0]?.parser.Filename).toBe('mine-switch.jsonl');
    expect(r.err).toContain(
      'reject mine-switch.jsonl row 0: schema_violation: /a/SwitchUnicastUplinkRxCounter: must be a signed 64-bit integer (keyword x-integer)',
    );
    expect(r.err).toMatch(/Parsed 1 archive into stdout/);
  });
});

describe('other commands', () => {
  it('lists the registered datatypes, one line each', async () => {
    const r = await cli('parsers');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^switch\s+DISCO switch port counters/m);
  });

  it('prints the BigQuery schema and the JSON Schema', async () => {
    const bq = await cli('schema', 'switch', '--bigquery');
    expect(bq.code).toBe(0);
    const fields = JSON.parse(bq.out) as { name: string; type: string; mode: string }[];
    expect(fields[1]).toMatchObject({ name: 'date', type: 'DATE', mode: 'REQUIRED' });
    const js = await cli('schema', 'switch');
    expect((JSON.parse(js.out) as { $id: string }).$id).toBe('urn:mlab-etl:schema:switch');
    const md = await cli('schema', 'ndt7', '--format', 'markdown');
    expect(md.out).toContain('| `a.MeanThroughputMbps` | FLOAT64 | REQUIRED |');
    const unknown = await cli('schema', 'no-such-datatype');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('no schema for datatype no-such-datatype');
  });

  it('explains a missing database and a bad sink', async () => {
    const q = await cli('query', 'SELECT 1', '--db', path.join(tmp(), 'none.duckdb'));
    expect(q.code).toBe(1);
    expect(q.err).toMatch(/no database at .*run `mlab-etl parse` first/);
    const s = await cli('parse', ARCHIVES, '--sink', 'postgres:x');
    expect(s.code).toBe(2);
    expect(s.err).toContain('expected duckdb:FILE, jsonl:DIR, bigquery:PROJECT[.DATASET_PREFIX] or stdout');
  });

  it('stops on a bad option with exit code 2 and a message naming it, before reading anything', async () => {
    const workers = await cli('parse', ARCHIVES, '--workers', '65');
    expect(workers.code).toBe(2);
    expect(workers.err).toContain(
      "option '--workers <n>' argument '65' is invalid. Expected a whole number from 0 to 64, or auto.",
    );
    const limit = await cli('parse', ARCHIVES, '--limit', 'maxDepth=1');
    expect(limit.code).toBe(2);
    expect(limit.err).toContain('--limit maxDepth=1: unknown limit');
    expect((await cli('parse', ARCHIVES, '--max-entry-bytes', '0')).err).toContain(
      'Expected an integer of at least 1.',
    );
    // A bad date is bad usage, once, not a failed archive each.
    const date = await cli('parse', ARCHIVES, '--date', '2020-02-30');
    expect(date.code).toBe(2);
    expect(date.err).toContain("option '--date <YYYY-MM-DD>' argument '2020-02-30' is invalid. Expected YYYY-MM-DD.");
    expect(date.err.match(/mlab-etl|error:/g)).toHaveLength(1);
    // `duckdb:` with no file is a mistake; `duckdb` alone is the default file.
    const sink = await cli('parse', ARCHIVES, '--sink', 'duckdb:');
    expect(sink.code).toBe(2);
    expect(sink.err).toContain('--sink duckdb:FILE needs a file');
  });

  it('refuses --datatype, --experiment or --date that contradict an archive path which says them', async () => {
    const archive = path.join(ARCHIVES, 'mlab-sandbox/ndt/ndt7');
    const out = path.join(tmp(), 'out');
    const contra = await cli(
      'parse',
      archive,
      '--sink',
      `jsonl:${out}`,
      '--datatype',
      'switch',
      '--date',
      '2020-01-01',
    );
    expect(contra.code).toBe(2);
    expect(contra.err).toContain('--datatype switch, but its path says ndt7');
    expect(contra.err).toContain('--date 2020-01-01, but its path says 2020-03-18');
    expect(existsSync(out)).toBe(false);
    // Saying what the path says is fine.
    expect((await cli('parse', archive, '--sink', `jsonl:${out}`, '--datatype', 'ndt7')).code).toBe(0);
  });

  it('takes the sink settings and the recorded revision from flags or their variables', async () => {
    try {
      const flag = await cli('setup', '--sink', 'bigquery:test', '--bigquery-inserts-in-flight', '0');
      expect(flag.code).toBe(2);
      expect(flag.err).toContain("option '--bigquery-inserts-in-flight <n>' argument '0' is invalid.");
      process.env.MLAB_ETL_BIGQUERY_INSERTS_IN_FLIGHT = '257';
      const variable = await cli('parse', ARCHIVES);
      expect(variable.code).toBe(2);
      expect(variable.err).toContain("value '257' from env 'MLAB_ETL_BIGQUERY_INSERTS_IN_FLIGHT' is invalid");
      delete process.env.MLAB_ETL_BIGQUERY_INSERTS_IN_FLIGHT;

      const archive = path.join(ARCHIVES, 'mlab-sandbox/utilization');
      const commit = async (...flags: string[]): Promise<unknown> => {
        const out = path.join(tmp(), 'out');
        expect((await cli('parse', archive, '--sink', `jsonl:${out}`, ...flags)).code).toBe(0);
        const first = readFileSync(path.join(out, '_archives.jsonl'), 'utf8').split('\n')[0] ?? '';
        return (JSON.parse(first) as { git_commit?: string }).git_commit;
      };
      process.env.MLAB_ETL_GIT_COMMIT = 'from-the-image';
      expect(await commit()).toBe('from-the-image');
      // An image built without the revision has the variable empty: the checkout's, if any, stands.
      process.env.MLAB_ETL_GIT_COMMIT = '';
      expect(await commit()).toBe(checkoutHead() ?? undefined);
      expect(await commit('--git-commit', 'abc123')).toBe('abc123');
    } finally {
      delete process.env.MLAB_ETL_BIGQUERY_INSERTS_IN_FLIGHT;
      delete process.env.MLAB_ETL_GIT_COMMIT;
    }
  });
});
