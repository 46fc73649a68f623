import { describe, expect, it } from 'vitest';
import type { Row } from '../../rows/rows.js';
import {
  archiveUrl,
  failure,
  inserts,
  keys,
  ledger,
  open,
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

useSinkTestServer();

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
