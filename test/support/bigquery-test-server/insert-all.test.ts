import { beforeAll, describe, expect, it } from 'vitest';
import { startBigQueryTestServer } from './index.js';
import {
  call,
  client,
  failure,
  freshTable,
  INSERT,
  row,
  SCHEMA,
  T,
  server,
  useSharedServer,
  type ApiErrorLike,
  type ErrorBody,
  type InsertAllResponse,
  type PartialFailure,
} from './harness.js';

useSharedServer();

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
