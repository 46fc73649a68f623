import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../cli/main.js';
import type { ArchiveRecord } from '../../ledger/records.js';
import { PACKAGE_ROOT } from '../../package-info.js';
import { runQuery } from './query.js';
import { SchemaSet } from '../../schema/schema-set.js';
import { DuckDbSink } from './sink.js';
import { jsonlBytes, type RowBatch } from '../../rows/row-batch.js';
import { tableFor } from '../../schema/tables.js';

const quiet = { stdout: () => {}, stderr: () => {}, isTTY: false };
const SWITCH = tableFor('utilization', 'switch');
const STARTED = '2026-01-02T00:00:00.000Z';

/** The 390 rows of the bundled switch archives, as the pipeline serialises them. */
async function switchRows(): Promise<string[]> {
  const out = mkdtempSync(path.join(os.tmpdir(), 'duckdb-sink-rows-'));
  expect(await run(['parse', path.join(PACKAGE_ROOT, 'testdata/archives'), '--sink', `jsonl:${out}`], quiet)).toBe(0);
  return readFileSync(path.join(out, 'raw_utilization', 'switch.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean);
}

function batch(archiveUrl: string, rows: string[]): RowBatch {
  return {
    ...jsonlBytes(rows),
    indices: rows.map((_, i) => i),
    keys: [],
    archiveUrl,
    entry: 'entry.jsonl',
    time: STARTED,
  };
}

function record(archiveUrl: string, rows: number): ArchiveRecord {
  return {
    archive_url: archiveUrl,
    datatype: 'switch',
    status: 'ok',
    entries_seen: 1,
    directories: 0,
    entries_parsed: 1,
    entries_skipped: 0,
    entries_failed: 0,
    rows_written: rows,
    rows_rejected: 0,
    records_skipped: 0,
    parser_version: 'test',
    started: STARTED,
    finished: STARTED,
  };
}

async function count(db: string, sql: string): Promise<number> {
  return Number(Object.values((await runQuery(db, sql)).rows[0] ?? {})[0]);
}

describe('DuckDB sink, archives processed at once', () => {
  it('keeps each archive to itself: concurrent writers over several pieces, and one failing commit, lose nothing of the others', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'duckdb-sink-'));
    const db = path.join(dir, 'x.duckdb');
    const rows = await switchRows();
    const sink = await DuckDbSink.open(db, SchemaSet.load());
    // Three archives preparing the same new table at once.
    await Promise.all([sink.prepareTable(SWITCH), sink.prepareTable(SWITCH), sink.prepareTable(SWITCH)]);

    // A and B write the 390 rows 4 times each (about 8 MB: several 2 MiB pieces), interleaved; C
    // writes a row DuckDB cannot store (a date that is not one), and its commit fails.
    const writer = async (url: string, times: number) => {
      for (let i = 0; i < times; i++) {
        for (let k = 0; k < rows.length; k += 100) await sink.writeRows(SWITCH, batch(url, rows.slice(k, k + 100)));
      }
    };
    const bad = (rows[0] as string).replace(/"date":"[^"]*"/, '"date":"not a date"');
    await Promise.all([
      writer('gs://b/a.tgz', 4),
      writer('gs://b/b.tgz', 4),
      sink.writeRows(SWITCH, batch('gs://b/c.tgz', [bad])),
    ]);
    await sink.writeRejects([
      { time: STARTED, archive_url: 'gs://b/a.tgz', datatype: 'switch', code: 'invalid_json', message: 'a' },
      { time: STARTED, archive_url: 'gs://b/c.tgz', datatype: 'switch', code: 'invalid_json', message: 'c' },
    ]);
    await expect(sink.commitArchive(record('gs://b/c.tgz', 1))).rejects.toMatchObject({ code: 'sink_error' });
    await sink.commitArchive(record('gs://b/a.tgz', 4 * rows.length));
    await sink.commitArchive(record('gs://b/b.tgz', 4 * rows.length));
    await sink.close();

    expect(await count(db, 'SELECT count(*) FROM raw_utilization.switch')).toBe(8 * rows.length);
    expect((await runQuery(db, 'SELECT archive_url, rows_written FROM _archives ORDER BY archive_url')).rows).toEqual([
      { archive_url: 'gs://b/a.tgz', rows_written: 4 * rows.length },
      { archive_url: 'gs://b/b.tgz', rows_written: 4 * rows.length },
    ]);
    expect((await runQuery(db, 'SELECT archive_url FROM _rejects')).rows).toEqual([{ archive_url: 'gs://b/a.tgz' }]);
    // No temporary or partial file is left among the table's files.
    const files = readdirSync(path.join(dir, 'x.data', 'raw_utilization', 'switch'));
    expect(files.every((f) => f.endsWith('.parquet'))).toBe(true);
  });

  it('refuses a database written by the earlier version before writing anything', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'duckdb-sink-'));
    const db = path.join(dir, 'x.duckdb');
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const instance = await DuckDBInstance.create(db);
    const conn = await instance.connect();
    await conn.run('CREATE SCHEMA raw_utilization');
    await conn.run('CREATE TABLE raw_utilization.switch (id VARCHAR)');
    conn.closeSync();
    instance.closeSync();
    await expect(DuckDbSink.open(db, SchemaSet.load())).rejects.toThrow(
      'raw_utilization.switch is a table in this file, written by an earlier version that kept rows in the database; parse into a new file',
    );
    expect(existsSync(path.join(dir, 'x.data'))).toBe(false);
    expect(await count(db, "SELECT count(*) FROM information_schema.tables WHERE table_name = '_archives'")).toBe(0);
  });
});
