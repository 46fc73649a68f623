import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { run } from '../src/cli/main.js';
import { goldenCases, runGoldenCase } from '../test/support/golden.js';
import { DEFAULT_LIMITS } from '../src/limits.js';
import { PACKAGE_ROOT } from '../src/package-info.js';
import { runQuery } from '../src/sinks/duckdb/query.js';
import { buildArchive } from '../test/support/archives.js';
import { writeFileSync, mkdirSync } from 'node:fs';
import ndt7 from './ndt7.js';

type Row = { id: string; a: Record<string, unknown>; raw: Record<string, Record<string, unknown>> };

async function rowOf(caseName: string): Promise<Row> {
  const c = goldenCases('ndt7').find((x) => x.name === caseName);
  const { objects } = await runGoldenCase(ndt7, c!);
  expect(objects).toHaveLength(1);
  return objects[0] as Row;
}

const quiet = { stdout: () => {}, stderr: () => {}, isTTY: false };

describe('ndt7 parser', () => {
  it('accepts ndt7 result files only', () => {
    expect(
      ndt7.accepts('2020/03/18/ndt7-download-20200318T000643.982584404Z.ndt-knwp4_1583603744_00000000000058E8.json.gz'),
    ).toBe(true);
    expect(ndt7.accepts('2020/03/18/ndt7-upload-x.json')).toBe(true);
    expect(ndt7.accepts('2020/03/18/ndt5-x.json.gz')).toBe(false);
    expect(ndt7.accepts('ndt7/x.json.gz')).toBe(false); // the file name, not a directory, says ndt7
  });

  it('computes the download summary from the last server measurement (checked by hand)', async () => {
    const row = await rowOf('download-2020');
    expect(row.id).toBe('ndt-knwp4_1583603744_000000000000590E');
    // Last TCPInfo: BytesAcked 48396999, ElapsedTime 10000921 us, MinRTT 285804 us, BytesRetrans 6957479, BytesSent 57838400.
    expect(row.a.MeanThroughputMbps).toBeCloseTo((8 * 48396999) / 10000921, 9);
    expect(row.a.MeanThroughputMbps).toBeCloseTo(38.714, 3);
    expect(row.a.MinRTT).toBe(285.804);
    expect(row.a.LossRate).toBeCloseTo(0.12029, 5);
    expect(row.a).toMatchObject({ CongestionControl: 'bbr', TestTime: '2020-03-18T00:06:57.568560Z' });
  });

  it('computes the upload summary from BytesReceived, with no loss rate (checked by hand)', async () => {
    const row = await rowOf('upload-2020');
    // Last TCPInfo: BytesReceived 3356080, ElapsedTime 10000111 us, MinRTT 173733 us.
    expect(row.a.MeanThroughputMbps).toBeCloseTo(2.68483, 5);
    expect(row.a.MinRTT).toBe(173.733);
    expect(row.a.LossRate).toBe(0);
  });

  it('removes _unsafe from the id and ConnectionInfo from the measurements', async () => {
    const row = await rowOf('download-2022-unsafe-uuid');
    expect(row.id).toBe('ndt-rczlq_1666977535_000000000016912D');
    const measurements = row.raw.Download?.ServerMeasurements as Record<string, unknown>[];
    expect(measurements.length).toBe(29);
    expect(measurements.some((m) => 'ConnectionInfo' in m)).toBe(false);
    expect(row.raw.Download?.UUID).toBe('ndt-rczlq_1666977535_unsafe_000000000016912D');
  });

  it('gives 0 for every figure of a test without measurements', async () => {
    const doc = {
      Upload: { UUID: 'ndt-x_1_0000000000000001', StartTime: '2020-03-18T00:00:00Z', ServerMeasurements: null },
    };
    const rows = [];
    for await (const r of ndt7.parse(
      {
        name: 'ndt7-upload-x.json',
        size: 0,
        pax: {},
        body: (async function* () {
          yield Buffer.from(JSON.stringify(doc));
        })(),
        archive: { url: 'file:///x', experiment: 'ndt', datatype: 'ndt7', date: '2020-03-18' },
        limits: DEFAULT_LIMITS,
      },
      { skip: () => {} },
    ))
      rows.push(r);
    expect(rows[0]?.a).toMatchObject({ MeanThroughputMbps: 0, MinRTT: 0, LossRate: 0 });
    expect(rows[0]?.raw).toEqual({ Upload: { UUID: 'ndt-x_1_0000000000000001', StartTime: '2020-03-18T00:00:00Z' } });
  });

  it('parses the whole real archive into 114 rows, and a truncated entry fails alone', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-ndt7-'));
    const db = path.join(dir, 'x.duckdb');
    const real = path.join(
      PACKAGE_ROOT,
      'testdata/archives/mlab-sandbox/ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz',
    );
    expect(await run(['parse', real, '--sink', `duckdb:${db}`], quiet)).toBe(0);
    const q = await runQuery(
      db,
      'SELECT count(*) n, count(DISTINCT id) ids, min(a.MeanThroughputMbps) > 0 positive FROM ndt.ndt7',
    );
    expect(q.rows).toEqual([{ n: 114, ids: 114, positive: true }]);

    // Real archives hold 10-byte truncated .json.gz entries: that entry fails, the others are rows.
    const good = gzipSync(Buffer.from(JSON.stringify({ Download: { UUID: 'ndt-y_1_0000000000000002' } })));
    const bytes = await buildArchive([
      { name: '2020/03/18/ndt7-download-a.json.gz', content: good.subarray(0, 10) },
      { name: '2020/03/18/ndt7-download-b.json.gz', content: good },
    ]);
    const file = path.join(dir, 'ndt/ndt7/2020/03/18/20200318T010000Z-ndt7-mlab1-abc01-ndt.tgz');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, bytes);
    expect(await run(['parse', file, '--sink', `duckdb:${db}`], quiet)).toBe(1);
    const ledger = await runQuery(
      db,
      `SELECT status, entries_parsed, entries_failed, error_code FROM _archives WHERE archive_url = 'file://${file}'`,
    );
    expect(ledger.rows).toEqual([
      { status: 'partial', entries_parsed: 1, entries_failed: 1, error_code: 'corrupt_entry' },
    ]);
  });
});
