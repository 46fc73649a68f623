import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EtlError } from '../../errors.js';
import type { ArchiveRecord, RejectRecord } from '../../ledger/records.js';
import { SCHEMAS_DIR } from '../../package-info.js';
import { rowBatch, rowKey, type Row } from '../../rows/rows.js';
import { bigQuerySchema, SchemaSet } from '../../schema/schema-set.js';
import {
  normalizeSchema,
  startBigQueryTestServer,
  type BigQueryTestServer,
  type StoredRow,
} from '../../../test/support/bigquery-test-server.js';
import { BigQuerySink, type BigQuerySinkOptions } from './sink.js';
import { openSink } from '../open-sink.js';
import { run } from '../../cli/main.js';
import { tableFor } from '../../schema/tables.js';

// The client would otherwise probe the GCE metadata server for credentials and project.
process.env.METADATA_SERVER_DETECTION = 'none';

const T = 15_000;
const STARTED = '2024-01-03T00:00:00.000Z';
const PROBE = tableFor('probe', 'probe');

let server: BigQueryTestServer;
let schemaDir: string;
let probeSchemas: SchemaSet;
let prefixCount = 0;

/** A small datatype with the standard columns, a 64-bit counter and a padding column for large rows. */
function probeSchema(
  a: Record<string, unknown> = {
    Counter: { type: 'integer', description: 'A 64-bit counter.' },
    Note: { type: 'string' },
  },
  extra: Record<string, unknown> = {},
  required: string[] = ['id', 'date', 'parser'],
): unknown {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'urn:mlab-etl:schema:probe',
    title: 'probe',
    description: 'Probe samples for the BigQuery sink tests.',
    type: 'object',
    properties: {
      id: { $ref: 'urn:mlab-etl:schema:_common#/$defs/id' },
      date: { $ref: 'urn:mlab-etl:schema:_common#/$defs/date' },
      parser: { $ref: 'urn:mlab-etl:schema:_common#/$defs/parser' },
      a: { type: 'object', description: 'Summary.', properties: a },
      blob: { type: 'string', description: 'Padding.' },
      ...extra,
    },
    required,
  };
}

/** A schema directory with the shared and ledger schemas and this probe schema. */
function schemaSetWith(probe: unknown): SchemaSet {
  const dir = mkdtempSync(path.join(schemaDir, 'set-'));
  for (const f of ['_common.json', '_rejects.json', '_archives.json'])
    copyFileSync(path.join(SCHEMAS_DIR, f), path.join(dir, f));
  writeFileSync(path.join(dir, 'probe.json'), JSON.stringify(probe));
  return SchemaSet.load(dir);
}

beforeAll(async () => {
  server = await startBigQueryTestServer();
  schemaDir = mkdtempSync(path.join(os.tmpdir(), 'bq-sink-test-'));
  probeSchemas = schemaSetWith(probeSchema());
});

afterEach(() => {
  server.faults.clear();
});

afterAll(async () => {
  await server?.close();
  rmSync(schemaDir, { recursive: true, force: true });
});

function authClient(): OAuth2Client {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'test', expiry_date: Date.now() + 3600_000 });
  return auth;
}

/** A sink writing under a prefix of its own, so every test starts with no datasets. */
async function open(options: Partial<BigQuerySinkOptions> = {}): Promise<{ sink: BigQuerySink; prefix: string }> {
  const prefix = `t${++prefixCount}_`;
  const sink = await BigQuerySink.open({
    projectId: 'test',
    datasetPrefix: prefix,
    apiEndpoint: server.url,
    authClient: authClient(),
    schemas: probeSchemas,
    retry: { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 },
    ...options,
  });
  return { sink, prefix };
}

function archiveUrl(name: string): string {
  return `gs://archive-measurement-lab/probe/probe/2024/01/02/${name}.tgz`;
}

function rows(url: string, count: number, extra: (i: number) => Record<string, unknown> = () => ({})): Row[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `r${i}`,
    date: '2024-01-02',
    parser: { Version: 'v0.1.0', Time: STARTED, ArchiveURL: url, Filename: `entry-${Math.floor(i / 100)}.json` },
    a: { Counter: i },
    ...extra(i),
  }));
}

function keys(url: string, batch: Row[]): string[] {
  return batch.map((r, i) => rowKey(url, '1', r.parser.Filename, i));
}

function record(url: string, rowsWritten: number, rowsRejected = 0): ArchiveRecord {
  return {
    archive_url: url,
    experiment: 'probe',
    datatype: 'probe',
    date: '2024-01-02',
    table: 'raw_probe.probe',
    status: rowsRejected > 0 ? 'partial' : 'ok',
    entries_seen: 1,
    directories: 0,
    entries_parsed: 1,
    entries_skipped: 0,
    entries_failed: 0,
    rows_written: rowsWritten,
    rows_rejected: rowsRejected,
    records_skipped: 0,
    parser_version: 'v0.1.0',
    started: STARTED,
    finished: '2024-01-03T00:00:01.000Z',
  };
}

/** Writes rows as the pipeline does: a batch per entry, each row with its index and key. */
async function writeAll(sink: BigQuerySink, all: Row[], allKeys: string[]): Promise<void> {
  let start = 0;
  while (start < all.length) {
    const entry = all[start]?.parser.Filename;
    let end = start;
    while (end < all.length && all[end]?.parser.Filename === entry) end++;
    const indices = Array.from({ length: end - start }, (_, i) => start + i);
    await sink.writeRows(PROBE, rowBatch(all.slice(start, end), allKeys.slice(start, end), indices));
    start = end;
  }
}

/** Writes the rows as the pipeline does (keys and entry indices) and commits the archive. */
async function writeArchive(sink: BigQuerySink, url: string, batch: Row[]): Promise<ArchiveRecord> {
  await writeAll(sink, batch, keys(url, batch));
  const rec = record(url, batch.length);
  await sink.commitArchive(rec);
  return rec;
}

function stored(prefix: string): StoredRow[] {
  return server.state.rows(`${prefix}raw_probe`, 'probe');
}

function ledger(prefix: string, url?: string): Array<Record<string, unknown>> {
  return server.state
    .rows(`${prefix}mlab_etl`, '_archives')
    .map((r) => r.json)
    .filter((r) => url === undefined || r.archive_url === url);
}

function rejects(prefix: string): Array<Record<string, unknown>> {
  return server.state.rows(`${prefix}mlab_etl`, '_rejects').map((r) => r.json);
}

/** insertAll requests to the probe table since `from`, by status. */
function inserts(prefix: string, from = 0): number[] {
  return server.state.requests
    .slice(from)
    .filter((r) => r.route === 'tabledata.insertAll' && r.path.includes(`/datasets/${prefix}raw_probe/`))
    .map((r) => r.status);
}

async function failure(promise: Promise<unknown>): Promise<EtlError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof EtlError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

describe('datasets, tables and views', () => {
  it(
    'creates the partitioned tables, the views and the ledger from the schemas; a second prepare sends nothing',
    async () => {
      const schemas = SchemaSet.load();
      const { sink, prefix } = await open({ schemas });
      const ndt7 = tableFor('ndt', 'ndt7');
      const actions = await sink.setup([ndt7]);

      // ndt7 joins annotation2, so the annotation table and its view come first.
      expect(actions.filter((a) => a.action === 'created').map((a) => a.object)).toEqual([
        `${prefix}raw_ndt`,
        `${prefix}raw_ndt.ndt7`,
        `${prefix}raw_ndt.annotation2`,
        `${prefix}ndt`,
        `${prefix}ndt.annotation2`,
        `${prefix}ndt.ndt7`,
      ]);
      const table = server.state.table(`${prefix}raw_ndt`, 'ndt7');
      expect(table?.schema).toEqual(normalizeSchema(bigQuerySchema(schemas.fields('ndt7'))));
      expect(table?.schema.find((f) => f.name === 'date')?.description).toContain('partitioned by day');
      expect(table?.timePartitioning).toEqual({ type: 'DAY', field: 'date', requirePartitionFilter: true });
      expect(table?.description).toBe(schemas.get('ndt7').description);

      const view = server.state.table(`${prefix}ndt`, 'ndt7');
      expect(view?.type).toBe('VIEW');
      expect(view?.view?.useLegacySql).toBe(false);
      expect(view?.view?.query).toContain(`\`test.${prefix}raw_ndt.ndt7\``);
      expect(view?.view?.query).toContain(`\`test.${prefix}raw_ndt.annotation2\``);

      const archives = server.state.table(`${prefix}mlab_etl`, '_archives');
      expect(archives?.timePartitioning).toEqual({ type: 'DAY', field: 'started' });
      expect(archives?.clustering).toEqual({ fields: ['archive_url'] });
      expect(server.state.table(`${prefix}mlab_etl`, '_rejects')?.timePartitioning).toEqual({
        type: 'DAY',
        field: 'time',
      });

      const before = server.state.requests.length;
      await sink.prepareTable(ndt7);
      await sink.prepareTable(tableFor('ndt', 'annotation2'));
      expect(server.state.requests.length).toBe(before);

      // Another worker (a new process) only reads: nothing is created or patched.
      const { sink: other } = await open({ schemas, datasetPrefix: prefix });
      const again = await other.setup([ndt7]);
      expect(again.every((a) => a.action === 'unchanged')).toBe(true);
      const writes = server.state.requests
        .slice(before)
        .filter((r) => r.method !== 'GET')
        .map((r) => r.route);
      expect(writes).toEqual([]);
      await sink.close();
      await other.close();
    },
    T,
  );

  it(
    'puts back a view whose query was changed by hand',
    async () => {
      const { sink, prefix } = await open();
      await sink.prepareTable(PROBE);
      const view = server.state.table(`${prefix}probe`, 'probe');
      const query = view?.view?.query;
      if (view?.view) view.view.query = 'SELECT 1';

      const { sink: other } = await open({ datasetPrefix: prefix });
      const actions = await other.setup([PROBE]);
      expect(actions.find((a) => a.kind === 'view')).toMatchObject({ action: 'updated', changes: ['query'] });
      expect(server.state.table(`${prefix}probe`, 'probe')?.view?.query).toBe(query);
      await sink.close();
      await other.close();
    },
    T,
  );

  it(
    'adds new optional fields, also inside a record, relaxes REQUIRED, and keeps fields the schema file dropped',
    async () => {
      const { sink, prefix } = await open();
      await sink.prepareTable(PROBE);

      const widened = schemaSetWith(
        probeSchema(
          { Counter: { type: 'integer' }, Note: { type: 'string' }, Machine: { type: 'string', description: 'Host.' } },
          { tags: { type: 'array', items: { type: 'string' } } },
          // parser no longer required: BigQuery allows relaxing REQUIRED to NULLABLE.
          ['id', 'date'],
        ),
      );
      const { sink: next } = await open({ schemas: widened, datasetPrefix: prefix });
      const actions = await next.setup([PROBE]);
      expect(actions.find((a) => a.object === `${prefix}raw_probe.probe`)).toEqual({
        object: `${prefix}raw_probe.probe`,
        kind: 'table',
        action: 'updated',
        changes: ['relaxed parser to NULLABLE', 'added a.Machine', 'added tags'],
      });
      expect(server.state.table(`${prefix}raw_probe`, 'probe')?.schema.find((f) => f.name === 'parser')?.mode).toBe(
        'NULLABLE',
      );
      const schema = server.state.table(`${prefix}raw_probe`, 'probe')?.schema ?? [];
      expect(schema.find((f) => f.name === 'tags')).toEqual({ name: 'tags', type: 'STRING', mode: 'REPEATED' });
      expect(schema.find((f) => f.name === 'a')?.fields?.map((f) => f.name)).toEqual(['Counter', 'Note', 'Machine']);

      // Rows using the new fields are accepted.
      const url = archiveUrl('widened');
      await writeArchive(
        next,
        url,
        rows(url, 2, () => ({ a: { Counter: 1, Machine: 'mlab1' }, tags: ['x'] })),
      );
      expect(stored(prefix)).toHaveLength(2);

      // A schema file without `blob` and `tags` is fine: the table keeps them.
      const narrowed = schemaSetWith(probeSchema(undefined, {}, ['id', 'date']));
      const { sink: third } = await open({ schemas: narrowed, datasetPrefix: prefix });
      expect((await third.setup([PROBE])).every((a) => a.action === 'unchanged')).toBe(true);
      await Promise.all([sink.close(), next.close(), third.close()]);
    },
    T,
  );

  it(
    'refuses a type change or a field that became REQUIRED with schema_incompatible naming the field, and changes nothing',
    async () => {
      const { sink, prefix } = await open();
      await sink.prepareTable(PROBE);
      const before = structuredClone(server.state.table(`${prefix}raw_probe`, 'probe')?.schema);
      const patches = server.state.requestCount('tables.patch');

      const retyped = schemaSetWith(
        probeSchema({ Counter: { type: 'string' }, Note: { type: 'string' }, Extra: { type: 'string' } }),
      );
      const { sink: next } = await open({ schemas: retyped, datasetPrefix: prefix });
      const err = await failure(next.prepareTable(PROBE));
      expect(err.code).toBe('schema_incompatible');
      expect(err.retryable).toBe(false);
      expect(err.message).toContain('field a.Counter is INTEGER in the table and STRING in the schema file');

      const required = schemaSetWith(probeSchema(undefined, {}, ['id', 'date', 'parser', 'blob']));
      const { sink: third } = await open({ schemas: required, datasetPrefix: prefix });
      const err2 = await failure(third.prepareTable(PROBE));
      expect(err2.code).toBe('schema_incompatible');
      expect(err2.message).toContain('field blob became REQUIRED');

      // Nothing written: not even the compatible addition (a.Extra) of the first schema.
      expect(server.state.table(`${prefix}raw_probe`, 'probe')?.schema).toEqual(before);
      expect(server.state.requestCount('tables.patch')).toBe(patches);
      const url = archiveUrl('incompatible');
      await expect(writeAll(next, rows(url, 1), keys(url, rows(url, 1)))).rejects.toMatchObject({
        code: 'schema_incompatible',
      });
      expect(stored(prefix)).toEqual([]);
      await Promise.all([sink.close(), next.close(), third.close()]);
    },
    T,
  );
});

describe('rows', () => {
  it(
    'inserts rows with their keys as insertIds and 64-bit integers to the last digit',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('exact');
      const batch = rows(url, 4);
      (batch[0] as Row).a = { Counter: 9223372036854775807n };
      (batch[1] as Row).a = { Counter: -9223372036854775808n };
      (batch[2] as Row).a = { Counter: 9007199254740993n };
      (batch[3] as Row).a = { Counter: 5n };
      await writeArchive(sink, url, batch);

      const got = stored(prefix);
      expect(got.map((r) => r.insertId)).toEqual(keys(url, batch));
      expect(got.map((r) => (r.json.a as { Counter: unknown }).Counter)).toEqual([
        '9223372036854775807',
        '-9223372036854775808',
        '9007199254740993',
        5,
      ]);
      expect(got[0]?.json.parser).toMatchObject({ ArchiveURL: url, Filename: 'entry-0.json' });
      expect(ledger(prefix, url)).toEqual([expect.objectContaining({ status: 'ok', rows_written: 4 })]);
      await sink.close();
    },
    T,
  );

  it(
    'sends text beyond ASCII byte for byte: the request holds the rows as the pipeline wrote them',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('utf8');
      const names = ['entrée-0.json', 'запись-1.json', '測定-2.json', 'probe-\u{1F4E1}-3.json'];
      const batch = rows(url, 4).map((r, i) => ({ ...r, parser: { ...r.parser, Filename: names[i] as string } }));
      await writeArchive(sink, url, batch);
      expect(stored(prefix).map((r) => (r.json.parser as { Filename: string }).Filename)).toEqual(names);
      await sink.close();
    },
    T,
  );

  it(
    'stores rows once when the same archive is written again (redelivery: same keys)',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('redelivered');
      await writeArchive(sink, url, rows(url, 30));
      await writeArchive(sink, url, rows(url, 30));
      expect(stored(prefix)).toHaveLength(30);
      await sink.close();
    },
    T,
  );

  it(
    'sends at most 500 rows per request: 1,200 rows in 3 requests',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('many');
      const from = server.state.requests.length;
      // Handed over in uneven batches, as entries end: the sink still fills its requests.
      const all = rows(url, 1200);
      const allKeys = keys(url, all);
      for (const [start, end] of [
        [0, 7],
        [7, 430],
        [430, 1199],
        [1199, 1200],
      ] as const) {
        await writeAll(sink, all.slice(start, end), allKeys.slice(start, end));
      }
      await sink.commitArchive(record(url, 1200));
      expect(inserts(prefix, from)).toEqual([200, 200, 200]);
      expect(stored(prefix)).toHaveLength(1200);
      await sink.close();
    },
    T,
  );

  it(
    'keeps requests under 10 MB: 25 rows of 1 MB go in 3 requests',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('large');
      const from = server.state.requests.length;
      await writeArchive(
        sink,
        url,
        rows(url, 25, () => ({ blob: 'x'.repeat(1_000_000) })),
      );
      // 9 rows of about 1,000,200 bytes fit under 10,000,000; BigQuery would answer 400 above 10 MiB.
      expect(inserts(prefix, from)).toEqual([200, 200, 200]);
      expect(stored(prefix)).toHaveLength(25);
      expect(sink.stats.splits).toBe(0);
      await sink.close();
    },
    T,
  );

  it(
    'splits a request answered 413 in halves and stores every row once',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('split');
      const from = server.state.requests.length;
      server.faults.failNext(1, { status: 413 });
      await writeArchive(sink, url, rows(url, 10));
      expect(inserts(prefix, from)).toEqual([413, 200, 200]);
      expect(stored(prefix).map((r) => r.json.id)).toEqual(rows(url, 10).map((r) => r.id));
      await sink.close();
    },
    T,
  );

  it(
    'rejects a single row too large for any request as row_too_large and stores the others',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('oversized');
      const from = server.state.requests.length;
      const batch = rows(url, 3, (i) => (i === 1 ? { blob: 'x'.repeat(10_500_000) } : {}));
      const rec = await writeArchive(sink, url, batch);

      expect(stored(prefix).map((r) => r.json.id)).toEqual(['r0', 'r2']);
      expect(inserts(prefix, from)).toEqual([200]);
      expect(rejects(prefix)).toEqual([
        {
          time: STARTED,
          archive_url: url,
          datatype: 'probe',
          entry: 'entry-0.json',
          row_index: 1,
          code: 'row_too_large',
          message: expect.stringContaining('a request may hold at most 10000000'),
          excerpt: expect.stringMatching(/^\{"id":"r1"/),
        },
      ]);
      // The ledger counts the row as rejected, not written.
      expect(ledger(prefix, url)).toEqual([
        expect.objectContaining({ status: 'partial', rows_written: 2, rows_rejected: 1, error_code: 'row_too_large' }),
      ]);
      expect(rec).toMatchObject({ status: 'partial', rows_written: 2, rows_rejected: 1 });
      await sink.close();
    },
    T,
  );

  it(
    'rejects a row as row_too_large when even a request holding only it is answered 413',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('front-end');
      server.faults.failNext(3, { status: 413 });
      await writeArchive(sink, url, rows(url, 2));
      // [r0, r1] -> 413; [r0] -> 413 (rejected); [r1] -> 413 (rejected).
      expect(stored(prefix)).toEqual([]);
      expect(rejects(prefix).map((r) => [r.code, r.row_index])).toEqual([
        ['row_too_large', 0],
        ['row_too_large', 1],
      ]);
      await sink.close();
    },
    T,
  );
});

describe('retries', () => {
  it(
    'retries 503 and stores the rows once',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('unavailable');
      const from = server.state.requests.length;
      server.faults.failNext(3, { status: 503 });
      await writeArchive(sink, url, rows(url, 10));
      expect(inserts(prefix, from)).toEqual([503, 503, 503, 200]);
      expect(stored(prefix)).toHaveLength(10);
      expect(ledger(prefix, url)).toHaveLength(1);
      await sink.close();
    },
    T,
  );

  it(
    'retries 429, 403 quotaExceeded and 403 rateLimitExceeded',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('quota');
      const from = server.state.requests.length;
      server.faults
        .failNext(1, { status: 429 })
        .failNext(1, { status: 403 })
        .failNext(1, { status: 403, reason: 'rateLimitExceeded' });
      await writeArchive(sink, url, rows(url, 5));
      expect(inserts(prefix, from)).toEqual([429, 403, 403, 200]);
      expect(stored(prefix)).toHaveLength(5);
      await sink.close();
    },
    T,
  );

  it(
    'does not retry 400 invalid or 403 accessDenied: the commit throws and writes no ledger record',
    async () => {
      const { sink, prefix } = await open();
      for (const [name, spec] of [
        ['bad-request', { status: 400 }],
        ['denied', { status: 403, reason: 'accessDenied', message: 'Access Denied: Table probe' }],
      ] as const) {
        const url = archiveUrl(name);
        const from = server.state.requests.length;
        server.faults.failNext(1, spec);
        await writeAll(sink, rows(url, 5), keys(url, rows(url, 5)));
        const err = await failure(sink.commitArchive(record(url, 5)));
        expect(err.code).toBe('sink_error');
        expect(err.retryable).toBe(false);
        expect(err.message).toContain(spec.status === 400 ? '400 invalid' : '403 accessDenied');
        expect(inserts(prefix, from)).toEqual([spec.status]);
        expect(ledger(prefix, url)).toEqual([]);
        // Committing again without writing the archive anew does not pretend it worked.
        await expect(sink.commitArchive(record(url, 5))).rejects.toMatchObject({ code: 'sink_error' });
        expect(ledger(prefix, url)).toEqual([]);
      }
      expect(stored(prefix)).toEqual([]);
      await sink.close();
    },
    T,
  );

  it(
    'gives up after the configured attempts with a retryable error; later writes of that archive fail fast',
    async () => {
      const { sink, prefix } = await open({ maxInFlight: 1, retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 } });
      const url = archiveUrl('down');
      const from = server.state.requests.length;
      server.faults.failNext(3, { status: 500 });
      const all = rows(url, 1001);
      const allKeys = keys(url, all);
      await writeAll(sink, all.slice(0, 500), allKeys.slice(0, 500));
      // With one request in flight, this batch waits until the first request has failed for good.
      await writeAll(sink, all.slice(500, 1000), allKeys.slice(500, 1000));
      await expect(writeAll(sink, all.slice(1000), allKeys.slice(1000))).rejects.toMatchObject({
        code: 'sink_error',
      });
      const err = await failure(sink.commitArchive(record(url, 1001)));
      expect(err.retryable).toBe(true);
      expect(err.message).toContain('after 3 attempts');
      expect(inserts(prefix, from)).toEqual([500, 500, 500, 200]);
      expect(ledger(prefix, url)).toEqual([]);
      await sink.close();
    },
    T,
  );
});

describe('concurrent setup', () => {
  it('reports a failed table setup as sink_error to every archive waiting on it', async () => {
    const { sink } = await open({ retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } });
    try {
      server.faults.failNext(10, { status: 503, reason: 'backendError', route: 'any' });
      const results = await Promise.allSettled([sink.prepareTable(PROBE), sink.prepareTable(PROBE)]);
      server.faults.clear();
      for (const r of results) {
        expect(r.status).toBe('rejected');
        const err = (r as PromiseRejectedResult).reason as EtlError;
        expect(err).toBeInstanceOf(EtlError);
        expect(err.code).toBe('sink_error');
        expect(err.retryable).toBe(true);
      }
      // Not cached as failed: the next attempt prepares the table.
      await sink.prepareTable(PROBE);
    } finally {
      server.faults.clear();
      await sink.close();
    }
  });
});

describe('per-row errors', () => {
  it(
    'sends rows BigQuery refuses to the rejects with its reason, and re-sends the rows it stopped because of them',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('per-row');
      const from = server.state.requests.length;
      // A STRING column given a number: BigQuery's own per-row `invalid`.
      const batch = rows(url, 5, (i) => (i === 2 ? { a: { Note: 5 } } : {}));
      const pipelineRejects: RejectRecord[] = [
        {
          time: STARTED,
          archive_url: url,
          datatype: 'probe',
          entry: 'entry-0.json',
          row_index: 5,
          code: 'schema_violation',
          message: '/a: must be object (keyword type)',
        },
      ];
      await sink.writeRejects(pipelineRejects);
      const rec = await writeArchive(sink, url, batch);

      expect(inserts(prefix, from)).toEqual([200, 200]);
      expect(stored(prefix).map((r) => r.json.id)).toEqual(['r0', 'r1', 'r3', 'r4']);
      const sinkReject = rejects(prefix).find((r) => r.code === 'sink_rejected');
      expect(sinkReject).toEqual({
        time: STARTED,
        archive_url: url,
        datatype: 'probe',
        entry: 'entry-0.json',
        row_index: 2,
        code: 'sink_rejected',
        message: expect.stringContaining('invalid at a.Note: Cannot convert value to string: 5'),
        excerpt: expect.stringMatching(/^\{"id":"r2"/),
      });
      expect(rejects(prefix).map((r) => r.code)).toEqual(['schema_violation', 'sink_rejected']);
      expect(rec).toMatchObject({ status: 'partial', rows_written: 4, rows_rejected: 1, error_code: 'sink_rejected' });
      expect(ledger(prefix, url)).toEqual([expect.objectContaining({ rows_written: 4, rows_rejected: 1 })]);
      await sink.close();
    },
    T,
  );

  it(
    'retries rows answered backendError one by one, and stores them once',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('row-backend');
      let left = 2;
      server.faults.rowErrors((r) => r.json.id === 'r3' && left-- > 0, 'backendError');
      await writeArchive(sink, url, rows(url, 6));
      expect(stored(prefix).map((r) => r.json.id)).toEqual(['r0', 'r1', 'r2', 'r4', 'r5', 'r3']);
      expect(rejects(prefix)).toEqual([]);
      await sink.close();
    },
    T,
  );
});

describe('commit and throughput', () => {
  it(
    'tells what the commit stored, and is ready while BigQuery answers',
    async () => {
      const { sink, prefix } = await open();
      const url = archiveUrl('result');
      const batch = rows(url, 3, (i) => (i === 0 ? { a: { Note: 1 } } : {}));
      await writeAll(sink, batch, keys(url, batch));
      const result = await sink.commit(record(url, 3));
      expect(result.rejected).toEqual({ sink_rejected: 1 });
      expect(result.record).toMatchObject({ rows_written: 2, rows_rejected: 1 });
      expect(ledger(prefix, url)).toEqual([expect.objectContaining({ rows_written: 2, rows_rejected: 1 })]);

      expect(await sink.ready()).toBe(true);
      const { sink: other } = await open({ datasetPrefix: prefix });
      server.faults.failNext(1, { status: 503, route: 'datasets.get' });
      expect(await other.ready()).toBe(false);
      // The answer is reused for a while: probes do not each cost a request.
      const before = server.state.requests.length;
      expect(await other.ready()).toBe(false);
      expect(server.state.requests.length).toBe(before);
      await sink.close();
      expect(await sink.ready()).toBe(false);
      await other.close();
    },
    T,
  );

  it(
    'writes the ledger record only after every row and reject of the archive is stored',
    async () => {
      const { sink, prefix } = await open({ maxInFlight: 4 });
      server.faults.latency(30);
      const url = archiveUrl('ordered');
      const batch = rows(url, 2000, (i) => (i === 1999 ? { a: { Note: 1 } } : {}));
      await writeAll(sink, batch, keys(url, batch));
      // Requests are still in flight when writeRows returns.
      expect(stored(prefix).length).toBeLessThan(1999);
      await sink.commitArchive(record(url, 2000));

      const ledgerRow = server.state.rows(`${prefix}mlab_etl`, '_archives').find((r) => r.json.archive_url === url);
      const last = Math.max(
        ...stored(prefix).map((r) => r.storedAt),
        ...server.state.rows(`${prefix}mlab_etl`, '_rejects').map((r) => r.storedAt),
      );
      expect(stored(prefix)).toHaveLength(1999);
      expect(rejects(prefix)).toHaveLength(1);
      expect(ledgerRow?.storedAt).toBeGreaterThanOrEqual(last);
      const order = server.state.requests.filter((r) => r.route === 'tabledata.insertAll').map((r) => r.path);
      const ledgerAt = order.findIndex((p) => p.includes(`/${prefix}mlab_etl/tables/_archives/`));
      expect(order.slice(ledgerAt + 1).filter((p) => p.includes(prefix))).toEqual([]);
      await sink.close();
    },
    T,
  );

  it(
    'takes the insertAll requests in flight it is opened with (--bigquery-inserts-in-flight), 8 unless told',
    async () => {
      const connection = { apiEndpoint: server.url, authClient: authClient() };
      const told = (await openSink(`bigquery:test.t${++prefixCount}_`, probeSchemas, undefined, {
        bigquery: { ...connection, maxInFlight: 24 },
      })) as BigQuerySink;
      expect(told.insertsInFlight).toBe(24);
      await told.close();
      const byDefault = (await openSink(`bigquery:test.t${++prefixCount}_`, probeSchemas, undefined, {
        bigquery: connection,
      })) as BigQuerySink;
      expect(byDefault.insertsInFlight).toBe(8);
      await byDefault.close();
    },
    T,
  );

  it(
    'is what `mlab-etl setup` writes to when the CLI is given the connection in code',
    async () => {
      let out = '';
      const io = { stdout: (t: string) => (out += t), stderr: (t: string) => (out += t), isTTY: false };
      const prefix = `t${++prefixCount}_`;
      const code = await run(['setup', '--sink', `bigquery:test.${prefix}`, '--bigquery-inserts-in-flight', '2'], io, {
        bigquery: { apiEndpoint: server.url, authClient: authClient() },
      });
      expect(code, out).toBe(0);
      expect(out).toContain(`created   table   ${prefix}raw_utilization.switch\n`);
    },
    T,
  );

  it(
    'sustains throughput against 75 ms of latency with several requests in flight',
    async () => {
      const rates: Record<string, number> = {};
      for (const maxInFlight of [1, 8]) {
        const { sink, prefix } = await open({ maxInFlight });
        await sink.prepareTable(PROBE);
        server.faults.latency(75);
        const url = archiveUrl(`throughput-${maxInFlight}`);
        const all = rows(url, 20_000);
        const allKeys = keys(url, all);
        const start = performance.now();
        for (let i = 0; i < all.length; i += 500) {
          await writeAll(sink, all.slice(i, i + 500), allKeys.slice(i, i + 500));
        }
        await sink.commitArchive(record(url, all.length));
        const seconds = (performance.now() - start) / 1000;
        rates[`maxInFlight=${maxInFlight}`] = Math.round(all.length / seconds);
        expect(stored(prefix)).toHaveLength(20_000);
        server.faults.clear();
        await sink.close();
      }
      console.log(`bigquery sink, 20,000 small rows, 75 ms insertAll latency: rows/s ${JSON.stringify(rates)}`);
    },
    T,
  );
});
