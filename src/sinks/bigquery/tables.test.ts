import { describe, expect, it } from 'vitest';
import { EtlError } from '../../errors.js';
import { bigQuerySchema, SchemaSet } from '../../schema/schema-set.js';
import { tableFor } from '../../schema/tables.js';
import { normalizeSchema } from '../../../test/support/bigquery-test-server/index.js';
import {
  archiveUrl,
  failure,
  keys,
  open,
  PROBE,
  probeSchema,
  rows,
  schemaSetWith,
  server,
  stored,
  T,
  useSinkTestServer,
  writeAll,
  writeArchive,
} from '../../../test/support/bigquery-sink-harness.js';

useSinkTestServer();

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
