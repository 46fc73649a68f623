// The joined view analysts query: one row per test, server and client from annotation2 of D-1..D.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { run } from '../cli/main.js';
import { runQuery } from '../sinks/duckdb/query.js';
import { SchemaSet } from './schema-set.js';
import { buildArchive } from '../../test/support/archives.js';
import { planView } from './views.js';

const quiet = { stdout: () => {}, stderr: () => {}, isTTY: false };
const dir = mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-views-'));
const db = path.join(dir, 'x.duckdb');

function ndt7Doc(uuid: string) {
  return {
    Download: {
      UUID: uuid,
      StartTime: '2020-03-18T00:00:00Z',
      ServerMeasurements: [
        { TCPInfo: { BytesAcked: 1_000_000, ElapsedTime: 1_000_000, MinRTT: 10_000, BytesSent: 100, BytesRetrans: 1 } },
      ],
    },
  };
}

function annotation(uuid: string, country: string) {
  return { UUID: uuid, Server: { Site: 'abc01', Machine: 'mlab1' }, Client: { Geo: { CountryCode: country } } };
}

async function place(rel: string, entries: { name: string; content: Buffer | string }[]): Promise<void> {
  const file = path.join(dir, 'in', rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, await buildArchive(entries));
}

beforeAll(async () => {
  const tests = ['same-day', 'none', 'day-before', 'two-days-before', 'both-days'].map(
    (s) => `ndt-${s}_1_0000000000000001`,
  );
  await place(
    'ndt/ndt7/2020/03/18/20200318T010000Z-ndt7-mlab1-abc01-ndt.tgz',
    tests.map((u) => ({
      name: `2020/03/18/ndt7-download-${u}.json.gz`,
      content: gzipSync(JSON.stringify(ndt7Doc(u))),
    })),
  );
  const ann = (uuid: string, c: string) => ({ name: `${uuid}.json`, content: JSON.stringify(annotation(uuid, c)) });
  await place('ndt/annotation2/2020/03/18/20200318T010000Z-annotation2-mlab1-abc01-ndt.tgz', [
    ann('ndt-same-day_1_0000000000000001', 'AA'),
    ann('ndt-both-days_1_0000000000000001', 'DD'),
  ]);
  await place('ndt/annotation2/2020/03/17/20200317T010000Z-annotation2-mlab1-abc01-ndt.tgz', [
    ann('ndt-day-before_1_0000000000000001', 'BB'),
    ann('ndt-both-days_1_0000000000000001', 'CC'),
  ]);
  await place('ndt/annotation2/2020/03/16/20200316T010000Z-annotation2-mlab1-abc01-ndt.tgz', [
    ann('ndt-two-days-before_1_0000000000000001', 'EE'),
  ]);
  expect(await run(['parse', path.join(dir, 'in'), '--sink', `duckdb:${db}`], quiet)).toBe(0);
});

describe('joined view ndt.ndt7', () => {
  it('has the columns id, date, parser, server, client, a, raw', async () => {
    const r = await runQuery(db, 'SELECT * FROM ndt.ndt7 LIMIT 1');
    expect(r.columns).toEqual(['id', 'date', 'parser', 'server', 'client', 'a', 'raw']);
  });

  it('joins annotations of the same day and the day before, keeps tests without one, once each', async () => {
    const r = await runQuery(db, 'SELECT id, client.Geo.CountryCode AS country FROM ndt.ndt7 ORDER BY id');
    expect(r.rows).toEqual([
      { id: 'ndt-both-days_1_0000000000000001', country: 'DD' },
      { id: 'ndt-day-before_1_0000000000000001', country: 'BB' },
      { id: 'ndt-none_1_0000000000000001', country: null },
      { id: 'ndt-same-day_1_0000000000000001', country: 'AA' },
      { id: 'ndt-two-days-before_1_0000000000000001', country: null },
    ]);
  });

  it('answers the analysts’ first query', async () => {
    const r = await runQuery(
      db,
      "SELECT id, a.MeanThroughputMbps, client.Geo.CountryCode FROM ndt.ndt7 WHERE id LIKE 'ndt-same-day%'",
    );
    expect(r.rows).toEqual([{ id: 'ndt-same-day_1_0000000000000001', MeanThroughputMbps: 8, CountryCode: 'AA' }]);
  });
});

describe('view definitions', () => {
  it('renders the same join for BigQuery with its date arithmetic and qualified names', () => {
    const schemas = SchemaSet.load();
    const plan = planView({ dataset: 'raw_ndt', table: 'ndt7', viewDataset: 'ndt' }, schemas);
    expect(plan.needs.map((n) => `${n.dataset}.${n.table}`)).toEqual(['raw_ndt.annotation2']);
    const sql = plan.sql('bigquery', (d, t) => `\`p.${d}.${t}\``);
    expect(sql).toContain('FROM `p.raw_ndt.ndt7`');
    expect(sql).toContain('LEFT JOIN (SELECT * FROM `p.raw_ndt.annotation2`');
    expect(sql).toContain('ann.date BETWEEN DATE_SUB(t.date, INTERVAL 1 DAY) AND t.date');
    const plain = planView({ dataset: 'raw_utilization', table: 'switch', viewDataset: 'utilization' }, schemas);
    expect(plain.needs).toEqual([]);
    expect(plain.sql('duckdb', (d, t) => `${d}.${t}`)).toMatch(
      /^SELECT \* FROM raw_utilization\.switch WHERE TRUE QUALIFY/,
    );
  });
});
