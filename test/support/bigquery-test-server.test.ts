import { BigQuery, type BigQueryOptions, type Table } from '@google-cloud/bigquery';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigQuerySchema, SchemaSet } from '../../src/schema/schema-set.js';
import { startBigQueryTestServer, type BigQueryTestServer, type TableInput } from './bigquery-test-server.js';

// The client would otherwise probe the GCE metadata server for credentials and project.
process.env.METADATA_SERVER_DETECTION = 'none';

const T = 15_000;

interface RowErrorEntry {
  reason: string;
  location: string;
  message: string;
}
interface InsertAllResponse {
  kind: string;
  insertErrors?: Array<{ index: number; errors: RowErrorEntry[] }>;
}
interface ErrorBody {
  error: {
    code: number;
    message: string;
    status?: string;
    errors: Array<{ reason: string; message: string; domain: string }>;
  };
}
/** What `table.insert` throws when BigQuery reports per-row errors. */
interface PartialFailure {
  name: string;
  errors: Array<{ errors: Array<{ reason: string; message: string }>; row: unknown }>;
  response: InsertAllResponse;
}
interface ApiErrorLike {
  code: number;
  message: string;
  errors: Array<{ reason: string; message: string }>;
}

const SCHEMA = [
  { name: 'id', type: 'STRING', mode: 'REQUIRED' },
  { name: 'date', type: 'DATE', mode: 'REQUIRED' },
  { name: 'counter', type: 'INT64' },
  { name: 'ratio', type: 'FLOAT64', mode: 'NULLABLE' },
  {
    name: 'a',
    type: 'RECORD',
    fields: [
      { name: 'Site', type: 'STRING' },
      { name: 'CollectionTime', type: 'TIMESTAMP' },
    ],
  },
  { name: 'tags', type: 'STRING', mode: 'REPEATED' },
];

const INSERT = { raw: true, partialRetries: 0, skipInvalidRows: false, ignoreUnknownValues: false };

function row(
  id: string,
  extra: Record<string, unknown> = {},
  insertId: string = id,
): { insertId: string; json: unknown } {
  return { insertId, json: { id, date: '2024-01-02', ...extra } };
}

let server: BigQueryTestServer;
let tableCount = 0;

beforeAll(async () => {
  server = await startBigQueryTestServer();
  server.state.createDataset('ds');
});

afterAll(async () => {
  await server?.close();
});

function authClient(): OAuth2Client {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'test', expiry_date: Date.now() + 3600_000 });
  return auth;
}

function client(target: BigQueryTestServer = server, extra: BigQueryOptions = {}): BigQuery {
  return new BigQuery({ projectId: 'test', apiEndpoint: target.url, authClient: authClient(), ...extra });
}

/** A new table in dataset `ds`, made through the server state so each test starts clean. */
function freshTable(input: TableInput = { schema: SCHEMA }, bq: BigQuery = client()): { id: string; table: Table } {
  const id = `t${++tableCount}`;
  server.state.createTable('ds', id, input);
  return { id, table: bq.dataset('ds').table(id) };
}

async function failure<E>(promise: Promise<unknown>): Promise<E> {
  try {
    await promise;
  } catch (err) {
    return err as E;
  }
  throw new Error('expected the call to fail');
}

/** A raw request, for bodies the client cannot produce (bare 64-bit literals) and exact reply bodies. */
async function call(
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = { authorization: 'Bearer test' },
  target: BigQueryTestServer = server,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${target.url}/bigquery/v2/projects/test${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as unknown) : undefined };
}

describe('datasets and tables through @google-cloud/bigquery', () => {
  it(
    'creates a dataset and a partitioned, clustered table and returns the schema as BigQuery spells it',
    async () => {
      const bq = client();
      const [dataset] = await bq.createDataset('created', { location: 'EU' });
      expect(server.state.dataset('created')?.location).toBe('EU');
      expect(await bq.dataset('created').exists()).toEqual([true]);
      expect(await bq.dataset('absent').exists()).toEqual([false]);

      const again = await failure<ApiErrorLike>(bq.createDataset('created'));
      expect(again.code).toBe(409);
      expect(again.errors[0]?.reason).toBe('duplicate');

      await dataset.createTable('switch', {
        schema: SCHEMA,
        timePartitioning: { type: 'DAY', field: 'date' },
        clustering: { fields: ['id'] },
        description: 'switch samples',
      });
      const meta = (await dataset.table('switch').getMetadata())[0] as Record<string, unknown>;
      expect(meta).toMatchObject({
        id: 'test:created.switch',
        type: 'TABLE',
        location: 'EU',
        timePartitioning: { type: 'DAY', field: 'date' },
        clustering: { fields: ['id'] },
        description: 'switch samples',
      });
      const fields = (meta.schema as { fields: unknown[] }).fields;
      expect(fields[2]).toEqual({ name: 'counter', type: 'INTEGER', mode: 'NULLABLE' });
      expect(fields[4]).toMatchObject({ name: 'a', type: 'RECORD', mode: 'NULLABLE' });

      const dup = await failure<ApiErrorLike>(dataset.createTable('switch', { schema: SCHEMA }));
      expect(dup.code).toBe(409);
      expect(dup.message).toBe('Already Exists: Table test:created.switch');

      const orphan = await failure<ApiErrorLike>(bq.dataset('absent').createTable('x', { schema: SCHEMA }));
      expect(orphan.code).toBe(404);
      expect(orphan.errors[0]?.reason).toBe('notFound');
    },
    T,
  );

  it(
    'refuses a partitioning column that is not a date or timestamp',
    async () => {
      const err = await failure<ApiErrorLike>(
        client()
          .dataset('ds')
          .createTable('bad_partition', { schema: SCHEMA, timePartitioning: { type: 'DAY', field: 'counter' } }),
      );
      expect(err.code).toBe(400);
      expect(err.message).toContain('TIMESTAMP, DATE or DATETIME');
    },
    T,
  );

  it(
    "creates a table from each of the project's datatype schemas",
    async () => {
      const schemas = SchemaSet.load();
      const dataset = client().dataset('ds');
      for (const datatype of schemas.datatypes()) {
        const fields = bigQuerySchema(schemas.fields(datatype)) as Array<{ name: string }>;
        const hasDate = fields.some((f) => f.name === 'date');
        await dataset.createTable(`schema_${datatype}`, {
          schema: fields,
          ...(hasDate ? { timePartitioning: { type: 'DAY', field: 'date' } } : {}),
        });
        expect(server.state.table('ds', `schema_${datatype}`)?.schema.length).toBe(fields.length);
      }
    },
    T,
  );

  it(
    'answers 401 to a request without a bearer token',
    async () => {
      const res = await call('GET', '/datasets/ds', undefined, {});
      expect(res.status).toBe(401);
      expect((res.json as ErrorBody).error.errors[0]?.reason).toBe('required');
    },
    T,
  );
});

describe('insertAll', () => {
  it(
    'stores rows exactly as sent: an INT64 string keeps every digit',
    async () => {
      const { id, table } = freshTable();
      await table.insert(
        [
          row('r1', {
            counter: '9223372036854775807',
            a: { Site: 'lga01', CollectionTime: '2024-01-02T03:04:05.123456Z' },
          }),
          row('r2', { counter: -5, ratio: 0.25, tags: ['x', 'y'] }),
        ],
        INSERT,
      );
      const rows = server.state.rows('ds', id);
      expect(rows.map((r) => r.insertId)).toEqual(['r1', 'r2']);
      expect(rows[0]?.json).toEqual({
        id: 'r1',
        date: '2024-01-02',
        counter: '9223372036854775807',
        a: { Site: 'lga01', CollectionTime: '2024-01-02T03:04:05.123456Z' },
      });
      expect(rows[1]?.json.tags).toEqual(['x', 'y']);
    },
    T,
  );

  it(
    'parses integer literals losslessly: the INT64 maximum is accepted and kept as a bigint',
    async () => {
      const { id } = freshTable();
      // JSON.parse would round this literal to 2^63 and the range check would then refuse it.
      const res = await call(
        'POST',
        `/datasets/ds/tables/${id}/insertAll`,
        '{"rows":[{"insertId":"big","json":{"id":"big","date":"2024-01-02","counter":9223372036854775807}}]}',
      );
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ kind: 'bigquery#tableDataInsertAllResponse' });
      expect(server.state.rows('ds', id)[0]?.json.counter).toBe(9223372036854775807n);
    },
    T,
  );

  it(
    'rejects an unknown field and a wrong type with reason and location, stops the other rows and stores none',
    async () => {
      const { id, table } = freshTable();
      const err = await failure<PartialFailure>(
        table.insert(
          [
            row('ok1'),
            row('unknown', { extra: 1 }),
            row('nested', { a: { Site: 'x', bogus: true } }),
            row('wrongtype', { counter: 'abc' }),
            row('ok2'),
          ],
          INSERT,
        ),
      );
      expect(err.name).toBe('PartialFailureError');
      expect(err.response.insertErrors).toEqual([
        { index: 0, errors: [{ reason: 'stopped', location: '', message: '' }] },
        { index: 1, errors: [{ reason: 'invalid', location: 'extra', message: 'no such field: extra.' }] },
        { index: 2, errors: [{ reason: 'invalid', location: 'a.bogus', message: 'no such field: a.bogus.' }] },
        { index: 3, errors: [{ reason: 'invalid', location: 'counter', message: expect.stringContaining('abc') }] },
        { index: 4, errors: [{ reason: 'stopped', location: '', message: '' }] },
      ]);
      // What the client hands the caller: the failed rows with their reasons, ready to retry or dead-letter.
      expect(err.errors.map((e) => e.errors[0]?.reason)).toEqual([
        'stopped',
        'invalid',
        'invalid',
        'invalid',
        'stopped',
      ]);
      expect(server.state.rows('ds', id)).toEqual([]);
    },
    T,
  );

  it(
    'stores the valid rows when skipInvalidRows is set, and drops unknown fields when ignoreUnknownValues is set',
    async () => {
      const { id, table } = freshTable();
      const err = await failure<PartialFailure>(
        table.insert([row('ok1'), row('bad', { counter: 1.5 }), row('ok2')], { ...INSERT, skipInvalidRows: true }),
      );
      expect(err.response.insertErrors?.map((e) => e.index)).toEqual([1]);
      expect(server.state.rows('ds', id).map((r) => r.json.id)).toEqual(['ok1', 'ok2']);

      await table.insert([row('loose', { extra: 1, a: { Site: 's', more: 2 } })], {
        ...INSERT,
        ignoreUnknownValues: true,
      });
      expect(server.state.rows('ds', id)[2]?.json).toEqual({ id: 'loose', date: '2024-01-02', a: { Site: 's' } });
    },
    T,
  );

  it(
    'rejects INT64 values outside the signed 64-bit range',
    async () => {
      const { id, table } = freshTable();
      const err = await failure<PartialFailure>(
        table.insert(
          [row('over', { counter: '9223372036854775808' }), row('under', { counter: '-9223372036854775809' })],
          INSERT,
        ),
      );
      expect(err.response.insertErrors?.map((e) => e.errors[0])).toEqual([
        { reason: 'invalid', location: 'counter', message: expect.stringContaining('out of range') },
        { reason: 'invalid', location: 'counter', message: expect.stringContaining('out of range') },
      ]);
      await table.insert([row('min', { counter: '-9223372036854775808' })], INSERT);
      expect(server.state.rows('ds', id).map((r) => r.json.counter)).toEqual(['-9223372036854775808']);
    },
    T,
  );

  it(
    'rejects a row missing a REQUIRED field or setting it to null',
    async () => {
      const { id, table } = freshTable();
      const err = await failure<PartialFailure>(
        table.insert(
          [
            { insertId: 'x', json: { id: 'no-date' } },
            { insertId: 'y', json: { id: 'null-date', date: null } },
          ],
          INSERT,
        ),
      );
      expect(err.response.insertErrors).toEqual([
        { index: 0, errors: [{ reason: 'invalid', location: 'date', message: 'Missing required field: date.' }] },
        { index: 1, errors: [{ reason: 'invalid', location: 'date', message: expect.stringContaining('NULL') }] },
      ]);
      expect(server.state.rows('ds', id)).toEqual([]);
    },
    T,
  );

  describe('value rules per column type', () => {
    let id = '';
    beforeAll(() => {
      id = freshTable({
        schema: [
          { name: 'i', type: 'INT64' },
          { name: 'f', type: 'FLOAT64' },
          { name: 'n', type: 'NUMERIC' },
          { name: 'bn', type: 'BIGNUMERIC' },
          { name: 'b', type: 'BOOL' },
          { name: 's', type: 'STRING' },
          { name: 'd', type: 'DATE' },
          { name: 'ts', type: 'TIMESTAMP' },
          { name: 'dt', type: 'DATETIME' },
          { name: 'tm', type: 'TIME' },
          { name: 'by', type: 'BYTES' },
          { name: 'tags', type: 'STRING', mode: 'REPEATED' },
          { name: 'rec', type: 'RECORD', fields: [{ name: 'x', type: 'INT64' }] },
        ],
      }).id;
    });

    const BN_MAX = '578960446186580977117854925043439539266.34992332820282019728792003956564819967';
    // [column, JSON text of the value, accepted, location of the error when refused]
    const cases: Array<[string, string, boolean, string?]> = [
      ['i', '1', true],
      ['i', '"42"', true],
      ['i', '-9223372036854775808', true],
      ['i', '9223372036854775808', false],
      ['i', '1.5', false],
      ['i', '"1.5"', false],
      ['i', '"abc"', false],
      ['i', 'true', false],
      ['f', '1.5', true],
      ['f', '"2.5e3"', true],
      ['f', '"NaN"', true],
      ['f', '"abc"', false],
      ['f', 'true', false],
      ['n', '"99999999999999999999999999999.999999999"', true],
      ['n', '1.25', true],
      ['n', '"100000000000000000000000000000"', false],
      ['n', '"0.0000000001"', false],
      ['bn', `"${BN_MAX}"`, true],
      ['bn', `"${BN_MAX.slice(0, -1)}8"`, false],
      ['b', 'true', true],
      ['b', '"true"', false],
      ['b', '1', false],
      ['s', '"x"', true],
      ['s', '5', false],
      ['d', '"2024-02-29"', true],
      ['d', '"2023-02-29"', false],
      ['d', '"2024-2-1"', false],
      ['ts', '"2024-01-02T03:04:05Z"', true],
      ['ts', '"2024-01-02 03:04:05.123456+02:00"', true],
      ['ts', '1700000000.5', true],
      ['ts', '"2024-01-02T03:04:05.123456789Z"', false],
      ['ts', '"2024-13-01T00:00:00Z"', false],
      ['ts', '"yesterday"', false],
      ['dt', '"2024-01-02T03:04:05.5"', true],
      ['dt', '"2024-01-02T25:00:00"', false],
      ['tm', '"23:59:59.999999"', true],
      ['tm', '"24:00:00"', false],
      ['by', '"aGVsbG8="', true],
      ['by', '"not base64!"', false],
      ['tags', '["a","b"]', true],
      ['tags', 'null', true],
      ['tags', '["a",null]', false, 'tags[1]'],
      ['tags', '"a"', false],
      ['rec', '{"x":"5"}', true],
      ['rec', '{"x":"five"}', false, 'rec.x'],
      ['rec', '5', false],
      ['rec', '[{"x":1}]', false],
    ];

    it.each(cases)(
      '%s = %s accepted: %s',
      async (column, value, accepted, location = column) => {
        const before = server.state.rows('ds', id).length;
        const res = await call(
          'POST',
          `/datasets/ds/tables/${id}/insertAll`,
          `{"rows":[{"json":{"${column}":${value}}}]}`,
        );
        expect(res.status).toBe(200);
        const body = res.json as InsertAllResponse;
        if (accepted) {
          expect(body.insertErrors).toBeUndefined();
          expect(server.state.rows('ds', id).length).toBe(before + 1);
        } else {
          expect(body.insertErrors?.[0]?.errors[0]).toMatchObject({ reason: 'invalid', location });
          expect(server.state.rows('ds', id).length).toBe(before);
        }
      },
      T,
    );
  });

  it(
    'stores a row once when its insertId comes again, within one request or across requests',
    async () => {
      const { id, table } = freshTable();
      await table.insert([row('a'), row('b'), row('a-again', {}, 'a')], INSERT);
      await table.insert([row('a'), row('b'), row('c')], INSERT);
      expect(server.state.rows('ds', id).map((r) => r.json.id)).toEqual(['a', 'b', 'c']);
    },
    T,
  );

  it(
    'forgets insertIds after the dedup window',
    async () => {
      let now = 1_700_000_000_000;
      const windowed = await startBigQueryTestServer({ dedupWindowMs: 60_000, clock: () => now });
      try {
        windowed.state.createDataset('ds');
        windowed.state.createTable('ds', 't', { schema: SCHEMA });
        const table = client(windowed).dataset('ds').table('t');
        await table.insert([row('a')], INSERT);
        now += 30_000;
        await table.insert([row('a')], INSERT);
        now += 61_000;
        await table.insert([row('a')], INSERT);
        expect(windowed.state.rows('ds', 't')).toHaveLength(2);
      } finally {
        await windowed.close();
      }
    },
    T,
  );

  it(
    'answers 404 notFound for a missing table',
    async () => {
      const err = await failure<ApiErrorLike>(
        client()
          .dataset('ds')
          .table('nope')
          .insert([row('x')], INSERT),
      );
      expect(err.code).toBe(404);
      expect(err.errors[0]?.reason).toBe('notFound');
      expect(err.message).toBe('Not found: Table test:ds.nope');
    },
    T,
  );

  it(
    'refuses an insert into a view, and a view in legacy SQL that quotes names with backticks',
    async () => {
      const { id } = freshTable();
      const dataset = client().dataset('ds');
      await dataset.createTable(`${id}_view`, { view: `SELECT id FROM \`test.ds.${id}\`` });
      const err = await failure<ApiErrorLike>(dataset.table(`${id}_view`).insert([row('x')], INSERT));
      expect(err.code).toBe(400);
      expect(err.errors[0]?.reason).toBe('invalid');

      // The API's default for views is legacy SQL.
      const legacy = await failure<ApiErrorLike>(
        dataset.createTable(`${id}_legacy`, { view: { query: `SELECT id FROM \`test.ds.${id}\`` } }),
      );
      expect(legacy.code).toBe(400);
      expect(legacy.message).toContain('Try using standard SQL');

      const dangling = await failure<ApiErrorLike>(
        dataset.createTable(`${id}_dangling`, { view: 'SELECT 1 FROM `test.ds.nothing`' }),
      );
      expect(dangling.code).toBe(404);
    },
    T,
  );

  it(
    'refuses more than 50,000 rows in one request',
    async () => {
      const { id } = freshTable({ schema: [{ name: 'x', type: 'STRING' }] });
      const body = `{"rows":[${Array.from({ length: 50_001 }, () => '{"json":{}}').join(',')}]}`;
      const res = await call('POST', `/datasets/ds/tables/${id}/insertAll`, body);
      expect(res.status).toBe(400);
      expect((res.json as ErrorBody).error.message).toContain('too many rows present in the request, limit: 50000');
      expect(server.state.rows('ds', id)).toEqual([]);
    },
    T,
  );

  it('answers 400 for a request over 10 MB and 413 for one far over it', async () => {
    const { id, table } = freshTable();
    const big = await failure<ApiErrorLike>(table.insert([row('big', { tags: ['x'.repeat(10_500_000)] })], INSERT));
    expect(big.code).toBe(400);
    expect(big.errors[0]?.reason).toBe('badRequest');
    expect(big.message).toBe('Request payload size exceeds the limit: 10485760 bytes.');

    const huge = await failure<ApiErrorLike>(table.insert([row('huge', { tags: ['x'.repeat(34_000_000)] })], INSERT));
    expect(huge.code).toBe(413);
    expect(server.state.rows('ds', id)).toEqual([]);
  }, 30_000);

  it(
    'reports a row over the row size limit as a per-row invalid error',
    async () => {
      const small = await startBigQueryTestServer({ limits: { maxRowBytes: 1_000 } });
      try {
        small.state.createDataset('ds');
        small.state.createTable('ds', 't', { schema: SCHEMA });
        const table = client(small).dataset('ds').table('t');
        const err = await failure<PartialFailure>(
          table.insert([row('wide', { tags: ['x'.repeat(2_000)] }), row('ok')], INSERT),
        );
        expect(err.response.insertErrors?.[0]?.errors[0]).toMatchObject({
          reason: 'invalid',
          message: expect.stringContaining('Maximum allowed row size exceeded'),
        });
        expect(err.response.insertErrors?.[1]?.errors[0]?.reason).toBe('stopped');
      } finally {
        await small.close();
      }
    },
    T,
  );
});

describe('schema updates', () => {
  it(
    'accepts a new NULLABLE field, also inside a record, and rows that use it',
    async () => {
      const { id, table } = freshTable();
      const widened = SCHEMA.map((f) =>
        f.name === 'a' ? { ...f, fields: [...(f.fields ?? []), { name: 'Machine', type: 'STRING' }] } : f,
      );
      await table.setMetadata({ schema: [...widened, { name: 'note', type: 'STRING', mode: 'NULLABLE' }] });
      await table.insert([row('r', { note: 'n', a: { Machine: 'mlab1' } })], INSERT);
      expect(server.state.rows('ds', id)).toHaveLength(1);
      expect(server.state.table('ds', id)?.schema.at(-1)).toEqual({ name: 'note', type: 'STRING', mode: 'NULLABLE' });
    },
    T,
  );

  it(
    'relaxes REQUIRED to NULLABLE',
    async () => {
      const { id, table } = freshTable();
      await table.setMetadata({ schema: SCHEMA.map((f) => (f.name === 'date' ? { ...f, mode: 'NULLABLE' } : f)) });
      expect(server.state.table('ds', id)?.schema[1]?.mode).toBe('NULLABLE');
    },
    T,
  );

  it(
    'refuses a changed type, a removed field and a new REQUIRED field with 400, leaving the table as it was',
    async () => {
      const { id, table } = freshTable();
      const changes = [
        SCHEMA.map((f) => (f.name === 'counter' ? { ...f, type: 'STRING' } : f)),
        SCHEMA.filter((f) => f.name !== 'ratio'),
        [...SCHEMA, { name: 'must', type: 'STRING', mode: 'REQUIRED' }],
        SCHEMA.map((f) => (f.name === 'ratio' ? { ...f, mode: 'REQUIRED' } : f)),
      ];
      const messages: string[] = [];
      for (const schema of changes) {
        const err = await failure<ApiErrorLike>(table.setMetadata({ schema }));
        expect(err.code).toBe(400);
        expect(err.errors[0]?.reason).toBe('invalid');
        expect(err.message).toContain(`Provided Schema does not match Table test:ds.${id}.`);
        messages.push(err.message);
      }
      expect(messages[0]).toContain('Field counter has changed type from INTEGER to STRING');
      expect(server.state.table('ds', id)?.schema.map((f) => `${f.name}:${f.type}:${f.mode}`)).toEqual([
        'id:STRING:REQUIRED',
        'date:DATE:REQUIRED',
        'counter:INTEGER:NULLABLE',
        'ratio:FLOAT:NULLABLE',
        'a:RECORD:NULLABLE',
        'tags:STRING:REPEATED',
      ]);
    },
    T,
  );

  it(
    'refuses a read-modify-write whose etag is stale (412)',
    async () => {
      const { table } = freshTable();
      const meta = (await table.getMetadata())[0] as { etag: string };
      await table.setMetadata({ description: 'first' });
      const err = await failure<ApiErrorLike>(table.setMetadata({ etag: meta.etag, description: 'second' }));
      expect(err.code).toBe(412);
    },
    T,
  );

  it(
    'can delay a schema update on the streaming path, as BigQuery does',
    async () => {
      let now = 1_700_000_000_000;
      const slow = await startBigQueryTestServer({ schemaUpdateDelayMs: 120_000, clock: () => now });
      try {
        slow.state.createDataset('ds');
        slow.state.createTable('ds', 't', { schema: SCHEMA });
        now += 600_000;
        const table = client(slow).dataset('ds').table('t');
        await table.setMetadata({ schema: [...SCHEMA, { name: 'note', type: 'STRING' }] });
        const err = await failure<PartialFailure>(table.insert([row('early', { note: 'n' })], INSERT));
        expect(err.response.insertErrors?.[0]?.errors[0]?.message).toBe('no such field: note.');
        now += 121_000;
        await table.insert([row('late', { note: 'n' })], INSERT);
        expect(slow.state.rows('ds', 't')).toHaveLength(1);
      } finally {
        await slow.close();
      }
    },
    T,
  );
});

describe('fault injection', () => {
  it(
    'fails the next insertAll with 503; the client retries and the rows are stored once',
    async () => {
      const { id, table } = freshTable(undefined, client(server, { retryOptions: { maxRetryDelay: 0.05 } }));
      const before = server.state.requestCounts();
      server.faults.failNext(1, { status: 503 });
      await table.insert([row('r1'), row('r2')], INSERT);
      const after = server.state.requestCounts();
      expect((after['tabledata.insertAll 503'] ?? 0) - (before['tabledata.insertAll 503'] ?? 0)).toBe(1);
      expect((after['tabledata.insertAll 200'] ?? 0) - (before['tabledata.insertAll 200'] ?? 0)).toBe(1);
      expect(server.state.rows('ds', id)).toHaveLength(2);
    },
    T,
  );

  it(
    'answers quota errors with BigQuery bodies: 403 quotaExceeded, 403 rateLimitExceeded, 429',
    async () => {
      const { table, id } = freshTable(undefined, client(server, { retryOptions: { autoRetry: false } }));
      server.faults.failNext(1, { status: 403 });
      const quota = await failure<ApiErrorLike>(table.insert([row('q')], INSERT));
      expect(quota.code).toBe(403);
      expect(quota.errors[0]?.reason).toBe('quotaExceeded');

      server.faults.failNext(1, { status: 429 });
      const limited = await failure<ApiErrorLike>(table.insert([row('q')], INSERT));
      expect(limited.code).toBe(429);
      expect(limited.errors[0]?.reason).toBe('rateLimitExceeded');

      server.faults.failNext(1, { status: 403, reason: 'rateLimitExceeded' });
      const res = await call(
        'POST',
        `/datasets/ds/tables/${id}/insertAll`,
        '{"rows":[{"json":{"id":"q","date":"2024-01-02"}}]}',
      );
      expect(res.status).toBe(403);
      expect(res.json).toEqual({
        error: {
          code: 403,
          message: expect.stringContaining('Exceeded rate limits'),
          errors: [
            { reason: 'rateLimitExceeded', domain: 'global', message: expect.stringContaining('Exceeded rate limits') },
          ],
          status: 'PERMISSION_DENIED',
        },
      });
      expect(server.state.rows('ds', id)).toEqual([]);
    },
    T,
  );

  it(
    'fails requests at a seeded rate, the same ones for the same seed',
    async () => {
      const { id } = freshTable();
      const body = '{"rows":[{"json":{"id":"r","date":"2024-01-02"}}]}';
      const run = async (): Promise<number[]> => {
        server.faults.clear().failRate(0.5, { status: 500 }, 42);
        const statuses: number[] = [];
        for (let i = 0; i < 20; i++)
          statuses.push((await call('POST', `/datasets/ds/tables/${id}/insertAll`, body)).status);
        server.faults.clear();
        return statuses;
      };
      const first = await run();
      expect(await run()).toEqual(first);
      expect(first).toContain(500);
      expect(first).toContain(200);
    },
    T,
  );

  it(
    'returns injected per-row errors for chosen rows and stores the others',
    async () => {
      const { id, table } = freshTable();
      server.faults.rowErrors((r) => r.json.id === 'r2', 'backendError');
      const err = await failure<PartialFailure>(table.insert([row('r1'), row('r2'), row('r3')], INSERT));
      server.faults.clear();
      expect(err.response.insertErrors).toEqual([
        { index: 1, errors: [expect.objectContaining({ reason: 'backendError' })] },
      ]);
      expect(err.errors[0]?.row).toEqual(row('r2'));
      expect(server.state.rows('ds', id).map((r) => r.json.id)).toEqual(['r1', 'r3']);
    },
    T,
  );

  it(
    'adds latency to insertAll',
    async () => {
      const { table } = freshTable();
      server.faults.latency(80);
      const start = performance.now();
      await table.insert([row('slow')], INSERT);
      const elapsed = performance.now() - start;
      server.faults.clear();
      expect(elapsed).toBeGreaterThanOrEqual(75);
    },
    T,
  );
});
