// `serve`'s HTTP face against clients that misbehave on purpose: it stops within its grace
// period whatever they do (in Kubernetes, past terminationGracePeriodSeconds it is killed
// mid-archive), and --max-in-flight holds whatever their timing.
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { serveConfigOf } from '../../src/cli/commands/serve.js';
import { silentLogger } from '../../src/log.js';
import { startServe, type ServeHandle } from '../../src/worker/serve.js';
import { tempDir } from '../support/helpers.js';

// Cloud Storage at a port nobody listens on: an admitted archive fails (source_unavailable) after
// its resumes, which keeps it in flight for a few seconds.
process.env.STORAGE_EMULATOR_HOST = 'http://127.0.0.1:9';

async function config(dir: string, ...more: string[]) {
  return serveConfigOf(['--allow-bucket', 'archive-mlab-test', '--sink', `jsonl:${dir}`, '--port', '0', ...more]);
}

describe('serve with slow and idle clients', () => {
  const sockets: Socket[] = [];
  let serve: ServeHandle | undefined;
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    await serve?.stop();
  });

  it('stops within the grace period while clients trickle headers or sit idle', async () => {
    serve = await startServe(await config(tempDir('shutdown'), '--grace-period', '1'), { logger: silentLogger });
    const port = serve.port;
    const trickles: NodeJS.Timeout[] = [];
    for (let i = 0; i < 3; i++) {
      const slow = connect(port, '127.0.0.1');
      sockets.push(slow);
      slow.on('error', () => undefined);
      // A request whose headers never end: a byte every 200 ms.
      const text = 'POST /push HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(10_000);
      let at = 0;
      trickles.push(setInterval(() => slow.write(text[at++ % text.length] ?? 'a'), 200));
    }
    const idle = connect(port, '127.0.0.1');
    sockets.push(idle);
    idle.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    await serve.stop();
    const seconds = (Date.now() - started) / 1000;
    for (const t of trickles) clearInterval(t);
    // The grace period (1 s) and the closing of the sink, nothing more.
    expect(seconds).toBeLessThan(3);
  }, 30_000);
});

describe('serve under a header-then-body push flood', () => {
  let serve: ServeHandle | undefined;
  afterEach(async () => {
    await serve?.stop();
  });

  it('admits --max-in-flight requests however their bodies are timed; the rest get 429', async () => {
    serve = await startServe(await config(tempDir('flood'), '--max-in-flight', '2', '--grace-period', '1'), {
      logger: silentLogger,
    });
    const port = serve.port;
    const name = 'ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz';
    const body = JSON.stringify({
      message: {
        attributes: {
          bucketId: 'archive-mlab-test',
          objectId: name,
          eventType: 'OBJECT_FINALIZE',
          objectGeneration: '1',
        },
        data: Buffer.from(JSON.stringify({ name, bucket: 'archive-mlab-test', size: '1000' })).toString('base64'),
        messageId: '1',
      },
      subscription: 'projects/p/subscriptions/s',
    });
    // 12 clients send their headers at once, wait a second, then their bodies. Those refused are
    // answered at once; the admitted ones stay in flight (their archive cannot be read), so what
    // came back within 3 s is exactly the refused.
    const sockets: Socket[] = [];
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const socket = connect(port, '127.0.0.1');
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.on('data', (d: Buffer) => {
        const status = /^HTTP\/1\.1 (\d+)/.exec(d.toString())?.[1];
        if (status) statuses.push(Number(status));
      });
      socket.write(
        `POST /push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
      );
      setTimeout(() => socket.write(body), 1000);
    }
    await new Promise((r) => setTimeout(r, 3000));
    for (const s of sockets) s.destroy();
    expect(statuses, `statuses ${statuses.join(' ')}`).toEqual(Array.from({ length: 10 }, () => 429));
    expect(serve.worker.archivesInFlight).toBe(2);
  }, 30_000);
});

describe('serve under a flood of pushes for made-up datatypes and buckets', () => {
  let serve: ServeHandle | undefined;
  afterEach(async () => {
    await serve?.stop();
  });

  it('keeps /metrics to a constant number of series, writes no ledger record and creates nothing', async () => {
    const out = tempDir('flood-labels');
    serve = await startServe(await config(out, '--max-in-flight', '64'), { logger: silentLogger });
    const base = `http://127.0.0.1:${serve.port}`;
    // mlab-etl's own series (prom-client's process and GC metrics come and go with the runtime).
    const series = async (): Promise<number> =>
      (await (await fetch(`${base}/metrics`)).text()).split('\n').filter((l) => l.startsWith('mlab_etl_')).length;
    const push = async (i: number): Promise<number> => {
      // Half for the allowed bucket with a datatype nobody registered, half for buckets not allowed.
      const bucket = i % 2 === 0 ? 'archive-mlab-test' : `attacker-${i}`;
      // A path M-Lab's grammar accepts (experiment names are letters), a datatype nobody registered.
      const experiment = `x${[...i.toString(26)].map((c) => String.fromCharCode(97 + parseInt(c, 26))).join('')}`;
      const name = `${experiment}/madeup${i}/2020/03/18/20200318T000000.000000Z-madeup${i}-mlab1-abc01-${experiment}.tgz`;
      const body = JSON.stringify({
        message: {
          attributes: { bucketId: bucket, objectId: name, eventType: 'OBJECT_FINALIZE', objectGeneration: '1' },
          data: Buffer.from(JSON.stringify({ name, bucket })).toString('base64'),
          messageId: String(i),
        },
        subscription: 'projects/p/subscriptions/s',
      });
      const res = await fetch(`${base}/push`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      });
      await res.arrayBuffer();
      return res.status;
    };
    const flood = async (from: number, count: number): Promise<number[]> => {
      const statuses: number[] = [];
      for (let i = from; i < from + count; i += 32) {
        statuses.push(
          ...(await Promise.all(Array.from({ length: Math.min(32, from + count - i) }, (_, k) => push(i + k)))),
        );
      }
      return statuses;
    };
    const before = await series();
    const first = await flood(0, 1000);
    const afterFirst = await series();
    const second = await flood(1000, 1000);
    const afterSecond = await series();
    // Acked (200): redelivery cannot make them readable.
    expect(new Set([...first, ...second])).toEqual(new Set([200]));
    // A few new series (the `other` datatype with the two refusal codes, the refused pushes), then none however many more.
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain('mlab_etl_archive_failures_total{datatype="other",code="unknown_datatype"} 1000');
    expect(text).toContain('mlab_etl_archive_failures_total{datatype="other",code="bucket_not_allowed"} 1000');
    expect(afterFirst - before).toBeLessThanOrEqual(4);
    expect(afterSecond).toBe(afterFirst);
    // Nothing written or created for them: no ledger record, no table.
    expect(readdirSync(out)).toEqual([]);
  }, 120_000);
});

describe('serve says at start-up who may push', () => {
  it('warns when POST /push checks no token, and when any Google identity passes', async () => {
    for (const [flags, mode] of [
      [[], 'none'],
      [['--push-audience', 'https://w/push', '--push-any-identity'], 'any-identity'],
      [
        ['--push-audience', 'https://w/push', '--push-service-account', 'push@p.iam.gserviceaccount.com'],
        'service-account',
      ],
    ] as const) {
      const lines: Array<{ severity: string; message: string; fields: Record<string, unknown> }> = [];
      const logger = {
        log: (severity: string, message: string, fields: Record<string, unknown> = {}) =>
          lines.push({ severity, message, fields }),
      };
      const handle = await startServe(await config(tempDir('auth'), ...flags), { logger });
      await handle.stop();
      expect(lines.find((l) => l.message === 'serving')?.fields.pushAuth).toBe(mode);
      const warned = lines.some(
        (l) => l.severity === 'WARNING' && l.message === 'POST /push is open to more than Pub/Sub',
      );
      expect(warned, mode).toBe(mode !== 'service-account');
    }
  });
});

describe('serve answers a body that is not a push envelope', () => {
  it('with 400, as the README says, whether it is not JSON or JSON without a "message" object', async () => {
    const handle = await startServe(await config(tempDir('envelope')), { logger: silentLogger });
    try {
      for (const body of [
        'not json',
        '{}',
        '[1,2]',
        '{"message":"x"}',
        '{"filename":"gs://archive-mlab-test/a.tgz"}',
      ]) {
        const res = await fetch(`http://127.0.0.1:${handle.port}/push`, { method: 'POST', body });
        const answer = (await res.json()) as { code?: string };
        expect([body, res.status, answer.code]).toEqual([body, 400, 'bad_message']);
      }
    } finally {
      await handle.stop();
    }
  });
});
