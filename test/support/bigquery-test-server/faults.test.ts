import { describe, expect, it } from 'vitest';
import {
  call,
  client,
  failure,
  freshTable,
  INSERT,
  row,
  T,
  server,
  useSharedServer,
  type ApiErrorLike,
  type PartialFailure,
} from './harness.js';

useSharedServer();

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
