// The production worker end to end, against the real Pub/Sub emulator and the Storage emulator
// (behind a proxy that can cut or slow downloads), with real M-Lab archives.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PubSub, type Subscription, type Topic } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { silentLogger } from '../../src/log.js';
import { BUNDLED, readJsonl, tempDir, uploadObject, waitFor } from '../support/helpers.js';
import { PACKAGE_ROOT } from '../../src/package-info.js';
import { startServe, type ServeConfig, type ServeHandle } from '../../src/worker/serve.js';
import { startGcsFaultProxy, type GcsFaultProxy } from '../support/gcs-fault-proxy.js';
import { childProcessEnv, emulatorEnv, objectFinalizeNotification } from '../support/emulators.js';
import type { SharedEmulators } from '../support/global-setup.js';

const BUCKET = 'archive-mlab-test';
const OTHER_BUCKET = 'not-allowed-bucket';
const ARCHIVES = BUNDLED.dir;
const SWITCH = BUNDLED.switch;
const NDT7 = BUNDLED.ndt7;
const CORRUPT = 'ndt/ndt7/2020/03/19/20200319T000000.000000Z-ndt7-mlab3-syd03-ndt.tgz';

let pubsubEmu: SharedEmulators['pubsub'];
let gcsEmu: SharedEmulators['gcs'];
let proxy: GcsFaultProxy;
let pubsub: PubSub;
let storage: Storage;
let counter = 0;

const lines = readJsonl;
/** The ledger so far, read while the worker may be appending to it. */
const ledgerSoFar = (dir: string): Record<string, unknown>[] =>
  readJsonl(path.join(dir, '_archives.jsonl'), { writing: true });

async function upload(bucket: string, name: string, bytes: Buffer): Promise<{ generation: string; size: number }> {
  const file = storage.bucket(bucket).file(name);
  await uploadObject(file, bytes, { contentType: 'application/gzip' });
  const meta = file.metadata;
  return { generation: String(meta.generation), size: Number(meta.size) };
}

async function notify(topic: Topic, bucket: string, name: string, extra: Record<string, string> = {}): Promise<void> {
  const [meta] = await storage.bucket(bucket).file(name).getMetadata();
  const n = objectFinalizeNotification({ bucket, name, generation: String(meta.generation), size: String(meta.size) });
  await topic.publishMessage({ data: n.data, attributes: { ...n.attributes, ...extra } });
}

async function newSubscription(): Promise<{ topic: Topic; subscription: Subscription; name: string }> {
  const id = `t${++counter}-${Date.now()}`;
  const [topic] = await pubsub.createTopic(`archives-${id}`);
  const [dead] = await pubsub.createTopic(`dead-${id}`);
  const [subscription] = await topic.createSubscription(`worker-${id}`, {
    ackDeadlineSeconds: 10,
    deadLetterPolicy: { deadLetterTopic: dead.name, maxDeliveryAttempts: 5 },
  });
  return { topic, subscription, name: subscription.name };
}

function config(out: string, subscription: string | null, overrides: Partial<ServeConfig> = {}): ServeConfig {
  return {
    subscription,
    project: pubsubEmu.projectId,
    allowBuckets: [BUCKET],
    sink: `jsonl:${out}`,
    port: 0,
    maxInFlight: 2,
    workers: 0,
    gracePeriodSeconds: 5,
    enableManualWorker: true,
    maxEntryBytes: null,
    readStallSeconds: 1,
    limits: {},
    pushAudience: null,
    pushServiceAccount: null,
    ...overrides,
  };
}

const tmp = (): string => tempDir('worker');

beforeAll(async () => {
  ({ pubsub: pubsubEmu, gcs: gcsEmu } = inject('emulators'));
  proxy = await startGcsFaultProxy(gcsEmu.host);
  Object.assign(
    process.env,
    emulatorEnv({ pubsub: pubsubEmu, gcs: { host: proxy.host, projectId: gcsEmu.projectId } }),
  );
  pubsub = new PubSub({ projectId: pubsubEmu.projectId });
  storage = new Storage();
  await upload(BUCKET, SWITCH, readFileSync(path.join(ARCHIVES, SWITCH)));
  await upload(BUCKET, NDT7, readFileSync(path.join(ARCHIVES, NDT7)));
  const ndt7 = readFileSync(path.join(ARCHIVES, NDT7));
  await upload(BUCKET, CORRUPT, ndt7.subarray(0, 100_000));
  await upload(BUCKET, 'ndt/ndt7/2020/03/18/README.txt', Buffer.from('not an archive'));
  await upload(OTHER_BUCKET, NDT7, ndt7);
}, 90_000);

afterAll(async () => {
  await pubsub?.close();
  await proxy?.close();
}, 30_000);

describe('serve with streaming pull', () => {
  let handle: ServeHandle;
  let out: string;
  let topic: Topic;

  beforeAll(async () => {
    out = tmp();
    const s = await newSubscription();
    topic = s.topic;
    // Entries are parsed in worker threads here, as an operator sets MLAB_ETL_WORKERS.
    handle = await startServe(config(out, s.name, { workers: 2 }), { logger: silentLogger });
  }, 30_000);

  afterAll(async () => {
    await handle?.stop();
  }, 30_000);

  it('processes OBJECT_FINALIZE notifications into the same rows as a local parse', async () => {
    await notify(topic, BUCKET, SWITCH);
    await notify(topic, BUCKET, NDT7);
    const ledger = await waitFor('two ledger records', () => (ledgerSoFar(out).length >= 2 ? ledgerSoFar(out) : null));
    expect(ledger.map((r) => [r.archive_url, r.status, r.rows_written]).sort()).toEqual([
      [`gs://${BUCKET}/${NDT7}`, 'ok', 114],
      [`gs://${BUCKET}/${SWITCH}`, 'ok', 30],
    ]);

    const local = tmp();
    const quiet = { stdout: () => {}, stderr: () => {}, isTTY: false };
    expect(
      await run(['parse', path.join(ARCHIVES, SWITCH), path.join(ARCHIVES, NDT7), '--sink', `jsonl:${local}`], quiet),
    ).toBe(0);
    for (const table of ['raw_ndt/ndt7.jsonl', 'raw_utilization/switch.jsonl']) {
      const strip = (rows: Record<string, unknown>[]) =>
        rows
          .map(({ parser, ...rest }): Record<string, unknown> => ({
            ...rest,
            file: (parser as { Filename: string }).Filename,
          }))
          .sort((a, b) => `${String(a.id)} ${String(a.file)}`.localeCompare(`${String(b.id)} ${String(b.file)}`));
      const served = lines(path.join(out, table));
      expect(strip(served)).toEqual(strip(lines(path.join(local, table))));
      expect((served[0]?.parser as { ArchiveURL: string }).ArchiveURL).toMatch(/^gs:\/\/archive-mlab-test\//);
    }
  });

  it('acks and counts what it cannot or need not process: permanent failures in the ledger, refusals counted only', async () => {
    const before = lines(path.join(out, '_archives.jsonl')).length;
    await notify(topic, BUCKET, CORRUPT);
    await notify(topic, OTHER_BUCKET, NDT7);
    await notify(topic, BUCKET, 'ndt/ndt7/2020/03/18/README.txt');
    await notify(topic, BUCKET, NDT7, { eventType: 'OBJECT_DELETE' });
    await topic.publishMessage({ data: Buffer.from('not json') });
    const ledger = await waitFor('one more ledger record', () => {
      const l = ledgerSoFar(out);
      return l.length >= before + 1 ? l.slice(before) : null;
    });
    // A bucket not allowed is refused from the object's name: counted and logged, no ledger record
    // (anyone who can publish could otherwise make the worker write one per message).
    expect(ledger.map((r) => [r.archive_url, r.status, r.error_code]).sort()).toEqual([
      [`gs://${BUCKET}/${CORRUPT}`, 'failed', 'truncated_archive'],
    ]);
    const metrics = await waitFor('counted messages', async () => {
      const text = await (await fetch(`http://127.0.0.1:${handle.port}/metrics`)).text();
      return text.includes('mlab_etl_messages_total{trigger="pull",outcome="bad"} 1') &&
        text.includes('outcome="ignored"} 2') &&
        text.includes('mlab_etl_messages_total{trigger="pull",outcome="refused"} 1')
        ? text
        : null;
    });
    expect(metrics).toContain('mlab_etl_messages_total{trigger="pull",outcome="ack"} 3');
    // 114 from the good archive, and the rows of the entries the truncated copy held whole before its cut.
    const cutRows = Number(ledger.find((r) => r.archive_url === `gs://${BUCKET}/${CORRUPT}`)?.rows_written);
    expect(cutRows).toBeGreaterThan(0);
    expect(metrics).toContain(`mlab_etl_rows_total{datatype="ndt7",status="written"} ${114 + cutRows}`);
    expect(metrics).toContain('mlab_etl_archive_failures_total{datatype="other",code="bucket_not_allowed"} 1');
    expect(metrics).toContain('mlab_etl_archive_failures_total{datatype="ndt7",code="truncated_archive"} 1');
    expect(metrics).toMatch(/mlab_etl_archive_duration_seconds_count\{datatype="switch",status="ok"\} 1/);
    expect(metrics).toContain('process_resident_memory_bytes');
    // Acked, so not redelivered: the ledger does not grow.
    await new Promise((r) => setTimeout(r, 1500));
    expect(lines(path.join(out, '_archives.jsonl'))).toHaveLength(before + 1);
  });

  it('is alive and ready, and prints no configuration', async () => {
    const base = `http://127.0.0.1:${handle.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const pages = await Promise.all(
      ['/healthz', '/readyz', '/metrics', '/nope'].map(async (p) => (await fetch(`${base}${p}`)).text()),
    );
    for (const page of pages) {
      expect(page).not.toContain(pubsubEmu.host);
      expect(page).not.toContain('GOOGLE_CLOUD_PROJECT');
    }
  });

  it('resumes a download cut mid-archive without losing or doubling rows', async () => {
    const before = lines(path.join(out, '_archives.jsonl')).length;
    const rowsBefore = lines(path.join(out, 'raw_ndt/ndt7.jsonl')).length;
    proxy.cutNext(2, 150_000);
    await notify(topic, BUCKET, NDT7);
    const record = await waitFor('the ledger record', () => ledgerSoFar(out)[before]);
    expect(record).toMatchObject({ status: 'ok', rows_written: 114, entries_parsed: 114 });
    expect(lines(path.join(out, 'raw_ndt/ndt7.jsonl')).length - rowsBefore).toBe(114);
    expect(proxy.stats().cut).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`http://127.0.0.1:${handle.port}/metrics`)).text();
    expect(metrics).toMatch(/mlab_etl_source_resumes_total [2-9]/);
  });

  it('creates no table for an object that does not exist, whatever experiment its name says', async () => {
    const before = lines(path.join(out, '_archives.jsonl')).length;
    const missing = 'madeupexp/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-madeupexp.tgz';
    const n = objectFinalizeNotification({ bucket: BUCKET, name: missing, generation: '1', size: '1000' });
    await topic.publishMessage(n);
    const record = await waitFor('the ledger record', () => ledgerSoFar(out)[before]);
    expect(record).toMatchObject({ status: 'failed', error_code: 'object_not_found' });
    expect(existsSync(path.join(out, 'raw_madeupexp'))).toBe(false);
  });
});

describe('HTTP triggers', () => {
  let handle: ServeHandle;
  let out: string;
  let base: string;

  beforeAll(async () => {
    out = tmp();
    handle = await startServe(config(out, null), { logger: silentLogger });
    base = `http://127.0.0.1:${handle.port}`;
  }, 30_000);

  afterAll(async () => {
    await handle?.stop();
  }, 30_000);

  async function push(message: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${base}/push`, {
      method: 'POST',
      body: JSON.stringify({ message, subscription: 'projects/p/subscriptions/s' }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it('answers push with 200 once the archive is committed, and acks permanent failures', async () => {
    const [meta] = await storage.bucket(BUCKET).file(SWITCH).getMetadata();
    const n = objectFinalizeNotification({
      bucket: BUCKET,
      name: SWITCH,
      generation: String(meta.generation),
      size: String(meta.size),
    });
    const ok = await push({ attributes: n.attributes, data: n.data.toString('base64'), messageId: '1' });
    expect(ok).toMatchObject({ status: 200, body: { status: 'ok', rows: 30 } });
    expect(lines(path.join(out, '_archives.jsonl')).map((r) => r.status)).toEqual(['ok']);

    const corrupt = await push({
      data: Buffer.from(JSON.stringify({ filename: `gs://${BUCKET}/${CORRUPT}` })).toString('base64'),
    });
    expect(corrupt).toMatchObject({
      status: 200,
      body: { status: 'failed', code: 'truncated_archive', disposition: 'ack' },
    });
    expect((await push({ data: '!!not base64!!' })).status).toBe(200);
    const notJson = await fetch(`${base}/push`, { method: 'POST', body: 'nope' });
    expect(notJson.status).toBe(400);
  });

  it('serves /v2/worker with an error status for every failure', async () => {
    const get = async (q: string) => (await fetch(`${base}/v2/worker${q}`)).status;
    expect(await get(`?filename=gs://${BUCKET}/${SWITCH}`)).toBe(200);
    expect(await get(`?filename=gs://${BUCKET}/${CORRUPT}`)).toBe(422);
    expect(await get(`?filename=gs://${OTHER_BUCKET}/${NDT7}`)).toBe(403);
    expect(await get(`?filename=gs://${BUCKET}/ndt/ndt7/2020/03/18/20200318T000000Z-ndt7-mlab3-syd03-ndt.tgz`)).toBe(
      404,
    );
    expect(await get('')).toBe(400);
    expect(await get(`?filename=gs://${BUCKET}/ndt/ndt7/2020/03/18/README.txt`)).toBe(400);
  });
});

describe('push authentication', () => {
  it('refuses push requests without a valid OIDC token when an audience is required', async () => {
    const { generateKeyPairSync, createSign } = await import('node:crypto');
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const certs = { k1: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
    const audience = 'https://worker.example/push';
    const account = 'push@p.iam.gserviceaccount.com';
    const handle = await startServe(
      { ...config(tmp(), null), pushAudience: audience, pushServiceAccount: account },
      { logger: silentLogger, pushCerts: certs },
    );
    try {
      const now = Math.floor(Date.now() / 1000);
      const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const body = `${enc({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${enc({ iss: 'https://accounts.google.com', aud: audience, email: account, email_verified: true, iat: now, exp: now + 600 })}`;
      const jwt = `${body}.${createSign('RSA-SHA256').update(body).sign(privateKey).toString('base64url')}`;
      const message = {
        data: Buffer.from(JSON.stringify({ filename: `gs://${BUCKET}/${SWITCH}` })).toString('base64'),
      };
      const post = (headers: Record<string, string>) =>
        fetch(`http://127.0.0.1:${handle.port}/push`, { method: 'POST', headers, body: JSON.stringify({ message }) });
      expect((await post({})).status).toBe(401);
      expect((await post({ authorization: `Bearer ${jwt.slice(0, -2)}xx` })).status).toBe(403);
      expect((await post({ authorization: `Bearer ${jwt}` })).status).toBe(200);
    } finally {
      await handle.stop();
    }
  });
});

describe('a subscription created after the worker starts', () => {
  it('is pulled once it exists: the closed subscription is reopened', async () => {
    const out = tmp();
    const id = `late-${Date.now()}`;
    const [topic] = await pubsub.createTopic(`archives-${id}`);
    const handle = await startServe(config(out, `projects/${pubsubEmu.projectId}/subscriptions/worker-${id}`), {
      logger: silentLogger,
    });
    try {
      await new Promise((r) => setTimeout(r, 1500));
      await topic.createSubscription(`worker-${id}`, { ackDeadlineSeconds: 10 });
      await notify(topic, BUCKET, SWITCH);
      const record = await waitFor('the archive pulled late', () => ledgerSoFar(out)[0], 45_000);
      expect(record).toMatchObject({ status: 'ok', rows_written: 30 });
    } finally {
      await handle.stop();
    }
  }, 60_000);
});

describe('reprocess', () => {
  it('publishes one message per archive under a prefix within the dates, which the worker parses again', async () => {
    const out = tmp();
    const s = await newSubscription();
    const quiet = { stdout: () => {}, stderr: () => {}, isTTY: false };
    let said = '';
    const code = await run(
      [
        'reprocess',
        `gs://${BUCKET}/ndt/ndt7/2020/03/`,
        '--topic',
        s.topic.name,
        '--from',
        '2020-03-18',
        '--to',
        '2020-03-18',
      ],
      { ...quiet, stdout: (t) => (said += t) },
    );
    expect(code).toBe(0);
    // Under the prefix: the archive of the 18th, the corrupt one of the 19th (outside --to), README.txt.
    expect(said).toContain('Published 1 archives');
    expect(said).toContain('(3 objects listed, 2 not archives or outside the dates)');
    const handle = await startServe(config(out, s.name), { logger: silentLogger });
    try {
      const record = await waitFor('the reprocessed archive', () => ledgerSoFar(out)[0]);
      expect(record).toMatchObject({ archive_url: `gs://${BUCKET}/${NDT7}`, status: 'ok', rows_written: 114 });
    } finally {
      await handle.stop();
    }
  }, 60_000);
});

describe('shutdown', () => {
  it('on SIGTERM during an archive exits 0, and the unfinished message is redelivered and completes', async () => {
    const out = tmp();
    const s = await newSubscription();
    proxy.throttle(50, 16 * 1024); // about 3 s for the ndt7 archive
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(PACKAGE_ROOT, 'src/cli/main.ts'),
        'serve',
        '--subscription',
        s.name,
        '--allow-bucket',
        BUCKET,
        '--sink',
        `jsonl:${out}`,
        '--port',
        '0',
        '--grace-period',
        '0',
        '--read-stall-timeout',
        '1',
      ],
      {
        cwd: PACKAGE_ROOT,
        env: childProcessEnv({ pubsub: pubsubEmu, gcs: { host: proxy.host, projectId: gcsEmu.projectId } }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let logs = '';
    child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor('the worker to serve', () => logs.includes('"message":"serving"'));
      const downloadsBefore = proxy.stats().downloads;
      await notify(s.topic, BUCKET, NDT7);
      await waitFor('the download to start', () => proxy.stats().downloads > downloadsBefore);
      await new Promise((r) => setTimeout(r, 300));
      child.kill('SIGTERM');
      expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))])).toBe(0);
      expect(logs).toContain('"message":"stopped"');
      expect(lines(path.join(out, '_archives.jsonl'))).toEqual([]);
    } finally {
      child.kill('SIGKILL');
      proxy.throttle(0);
    }
    // A new worker on the same subscription gets the nacked message and finishes the archive.
    const handle = await startServe(config(out, s.name), { logger: silentLogger });
    try {
      const record = await waitFor('the redelivered archive', () => ledgerSoFar(out)[0], 40_000);
      expect(record).toMatchObject({ archive_url: `gs://${BUCKET}/${NDT7}`, status: 'ok', rows_written: 114 });
    } finally {
      await handle.stop();
    }
  }, 90_000);
});
