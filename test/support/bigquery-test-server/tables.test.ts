import { describe, expect, it } from 'vitest';
import { bigQuerySchema, SchemaSet } from '../../../src/schema/schema-set.js';
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
  type PartialFailure,
} from './harness.js';
import { startBigQueryTestServer } from './index.js';

useSharedServer();

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
