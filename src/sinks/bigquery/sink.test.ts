import { describe, expect, it } from 'vitest';
import type { RejectRecord } from '../../ledger/records.js';
import { openSink } from '../open-sink.js';
import type { BigQuerySink } from './sink.js';
import {
  archiveUrl,
  authClient,
  inserts,
  keys,
  ledger,
  nextPrefix,
  open,
  PROBE,
  probeSchemas,
  record,
  rejects,
  rows,
  server,
  STARTED,
  stored,
  T,
  useSinkTestServer,
  writeAll,
  writeArchive,
} from '../../../test/support/bigquery-sink-harness.js';
import { run } from '../../cli/main.js';

useSinkTestServer();

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
      const told = (await openSink(`bigquery:test.${nextPrefix()}`, probeSchemas, undefined, {
        bigquery: { ...connection, maxInFlight: 24 },
      })) as BigQuerySink;
      expect(told.insertsInFlight).toBe(24);
      await told.close();
      const byDefault = (await openSink(`bigquery:test.${nextPrefix()}`, probeSchemas, undefined, {
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
      const prefix = `${nextPrefix()}`;
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
