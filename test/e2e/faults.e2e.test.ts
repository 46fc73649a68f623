// Fault injection end to end: `serve` killed with SIGKILL, BigQuery failing, Cloud Storage reads
// cut, Pub/Sub going away. Each scenario injects faults from a seeded random (FAULTS_SEED), then
// checks what an operator relies on: every row of every archive visible once through the
// analysts' view rule, and a final ledger record per archive. docs/reliability.md explains the
// guarantees each scenario stands for and what is not guaranteed.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import {
  createServer as createTcpServer,
  connect as tcpConnect,
  type Server as TcpServer,
  type Socket,
} from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { PubSub, type Message, type Subscription, type Topic } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { silentLogger } from '../../src/log.js';
import { PACKAGE_ROOT } from '../../src/package-info.js';
import { serveConfigOf } from '../../src/cli/commands/serve.js';
import { startServe, type ServeConfig } from '../../src/worker/serve.js';
import {
  seededRandom,
  startBigQueryTestServer,
  type BigQueryTestServer,
} from '../support/bigquery-test-server/index.js';
import { childProcessEnv, emulatorEnv, objectFinalizeNotification, startPubSubEmulator } from '../support/emulators.js';
import type { SharedEmulators } from '../support/global-setup.js';
import { startGcsFaultProxy, type GcsFaultProxy } from '../support/gcs-fault-proxy.js';
import { BUNDLED, dummyAuthClient, readJsonl, tempDir, uploadObject, waitFor } from '../support/helpers.js';

const SEED = Number(process.env['FAULTS_SEED'] ?? 6);
const BUCKET = 'archive-mlab-faults';
const SOURCES = BUNDLED.dir;
/** The real archives copied under other dates; each copy is a distinct archive with rows of its own (id, date). */
const NDT7 = BUNDLED.ndt7;
const SWITCH = BUNDLED.switch;
const SWITCH_2016 = 'utilization/switch/2016/05/12/20160512T180000.000000Z-switch-mlab3-svg01-utilization.tgz';
const ANNOTATION = BUNDLED.annotation2;
const TEN = [NDT7, SWITCH_2016, NDT7, ANNOTATION, SWITCH, NDT7, SWITCH_2016, ANNOTATION, NDT7, SWITCH];

type Json = Record<string, unknown>;

let pubsubEmu: SharedEmulators['pubsub'];
let gcsEmu: SharedEmulators['gcs'];
let proxy: GcsFaultProxy;
let pubsub: PubSub;
let storage: Storage;
const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();
const cleanups: Array<() => Promise<unknown>> = [];

/** The BigQuery test server's generator: the same seed gives the same faults. */
const seeded = seededRandom;

const tmp = (tag: string): string => tempDir(`faults-${tag}`);

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const thousands = (n: number): string => n.toLocaleString('en-US');

interface Staged {
  name: string;
  url: string;
  size: number;
  generation: string;
}

/**
 * Uploads copies of real archives, one per day from `firstDay`, and lays the same paths out under
 * a local directory, so a local `parse` of that directory gives the expected rows.
 */
async function stage(sources: string[], firstDay: string): Promise<{ archives: Staged[]; localDir: string }> {
  const localDir = tmp('archives');
  const archives: Staged[] = [];
  for (const [i, source] of sources.entries()) {
    const day = new Date(Date.parse(`${firstDay}T00:00:00Z`) + i * 86_400_000).toISOString().slice(0, 10);
    const [y, m, d] = day.split('-') as [string, string, string];
    const parts = source.split('/');
    const file = (parts.at(-1) as string).replace(/^\d{8}T/, `${y}${m}${d}T`);
    const name = [...parts.slice(0, -4), y, m, d, file].join('/');
    const bytes = readFileSync(path.join(SOURCES, source));
    mkdirSync(path.dirname(path.join(localDir, name)), { recursive: true });
    copyFileSync(path.join(SOURCES, source), path.join(localDir, name));
    const object = storage.bucket(BUCKET).file(name);
    // The upload's answer is the object resource: no second request for its generation and size.
    await uploadObject(object, bytes, { contentType: 'application/gzip' });
    const meta = object.metadata;
    archives.push({
      name,
      url: `gs://${BUCKET}/${name}`,
      size: Number(meta.size),
      generation: String(meta.generation),
    });
  }
  return { archives, localDir };
}

async function notify(topic: Topic, a: Staged): Promise<void> {
  const n = objectFinalizeNotification({
    bucket: BUCKET,
    name: a.name,
    generation: a.generation,
    size: String(a.size),
  });
  await topic.publishMessage({ data: n.data, attributes: n.attributes });
}

async function newSubscription(
  client: PubSub,
  tag: string,
  maxDeliveryAttempts: number,
): Promise<{ topic: Topic; subscription: Subscription; dead: Subscription }> {
  const id = `${tag}-${Date.now()}`;
  const [topic] = await client.createTopic(`archives-${id}`);
  const [deadTopic] = await client.createTopic(`dead-${id}`);
  const [dead] = await deadTopic.createSubscription(`dead-${id}`);
  const [subscription] = await topic.createSubscription(`worker-${id}`, {
    ackDeadlineSeconds: 10,
    deadLetterPolicy: { deadLetterTopic: deadTopic.name, maxDeliveryAttempts },
  });
  return { topic, subscription, dead };
}

/** Messages a subscription still hands out within `ms` (nacked again, so they stay). */
async function pending(subscription: Subscription, ms = 1500): Promise<number> {
  let n = 0;
  const onMessage = (m: Message): void => {
    n++;
    m.nack();
  };
  subscription.on('message', onMessage);
  await sleep(ms);
  subscription.removeListener('message', onMessage);
  await subscription.close();
  return n;
}

// ---------------------------------------------------------------------------------------------
// Expected rows and the view rule

/**
 * A row as both sides must agree on it: provenance of the processing left out (when, from where,
 * and which commit: others may commit while a worker started later runs).
 */
function comparable(row: Json): string {
  const { Time: _t, ArchiveURL: _u, GitCommit: _c, ...parser } = row.parser as Json;
  return canonical({ ...row, parser });
}

function canonical(v: unknown): string {
  if (typeof v === 'bigint') return JSON.stringify(v.toString());
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Json;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

const rowKey = (table: string, row: Json): string => `${table}|${String(row.id)}|${String(row.date)}`;

interface Expected {
  /** table|id|date -> the row as comparable() renders it. */
  rows: Map<string, string>;
  /** Rows per archive, by gs:// URL. */
  perArchive: Map<string, number>;
}

const quiet = { stdout: () => {}, stderr: () => {}, isTTY: false };

/** What a local `parse` of the staged archives gives. */
async function expectedRows(localDir: string): Promise<Expected> {
  const out = tmp('expected');
  expect(await run(['parse', localDir, '--sink', `jsonl:${out}`, '--no-progress'], quiet)).toBe(0);
  const rows = new Map<string, string>();
  const perArchive = new Map<string, number>();
  for (const dataset of readdirSync(out).filter((d) => d.startsWith('raw_'))) {
    for (const file of readdirSync(path.join(out, dataset))) {
      const table = `${dataset}.${file.replace(/\.jsonl$/, '')}`;
      for (const row of readJsonl(path.join(out, dataset, file))) {
        const key = rowKey(table, row);
        expect(rows.has(key), `${key} twice in a local parse`).toBe(false);
        rows.set(key, comparable(row));
        const url = String((row.parser as Json).ArchiveURL).replace(`file://${localDir}/`, `gs://${BUCKET}/`);
        perArchive.set(url, (perArchive.get(url) ?? 0) + 1);
      }
    }
  }
  return { rows, perArchive };
}

/** The analysts' view rule (views.ts): one row per (id, date), the newest parser.Time winning. */
function viewRule(table: string, rows: Json[]): Map<string, Json> {
  const newest = new Map<string, Json>();
  for (const r of rows) {
    const key = rowKey(table, r);
    const seen = newest.get(key);
    if (!seen || String((r.parser as Json).Time) >= String((seen.parser as Json).Time)) newest.set(key, r);
  }
  return newest;
}

/** How the visible rows differ from the expected ones: all zero when each expected row shows once, unchanged. */
function diff(
  expected: Map<string, string>,
  visible: Map<string, string>,
): { missing: number; extra: number; changed: number } {
  let missing = 0;
  let changed = 0;
  for (const [key, row] of expected) {
    const got = visible.get(key);
    if (got === undefined) missing++;
    else if (got !== row) changed++;
  }
  const extra = [...visible.keys()].filter((k) => !expected.has(k)).length;
  return { missing, extra, changed };
}

interface LedgerRecord {
  archive_url: string;
  status: string;
  rows_written: number;
  started: string;
  finished: string;
  error_code?: string | null;
}

/** The final record of each archive: the latest by `finished`, then `started` (attempts run one after another). */
function finalRecords(records: LedgerRecord[]): Map<string, LedgerRecord> {
  const last = new Map<string, LedgerRecord>();
  for (const r of records) {
    const seen = last.get(r.archive_url);
    if (!seen || `${r.finished} ${r.started}` >= `${seen.finished} ${seen.started}`) last.set(r.archive_url, r);
  }
  return last;
}

function expectFinalOk(records: LedgerRecord[], archives: Staged[], expected: Expected): void {
  const last = finalRecords(records);
  expect([...last.keys()].sort()).toEqual(archives.map((a) => a.url).sort());
  for (const a of archives) {
    expect(last.get(a.url), a.url).toMatchObject({ status: 'ok', rows_written: expected.perArchive.get(a.url) });
  }
}

// ---------------------------------------------------------------------------------------------
// serve as a child process

interface ServeChild {
  proc: ChildProcessByStdio<null, Readable, Readable>;
  logs: () => string;
  port: Promise<number>;
  exited: Promise<number | null>;
}

/** `serve` as a child process; with `bigquery`, its BigQuery sink writes to that test server. */
function spawnServe(args: string[], env: NodeJS.ProcessEnv, bigquery?: BigQueryTestServer): ServeChild {
  const command = bigquery
    ? [path.join(PACKAGE_ROOT, 'test/support/serve-against-test-bigquery.ts'), bigquery.url]
    : [path.join(PACKAGE_ROOT, 'src/cli/main.ts'), 'serve'];
  const proc = spawn(process.execPath, ['--import', 'tsx', ...command, ...args], {
    cwd: PACKAGE_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let logs = '';
  proc.stderr.on('data', (d: Buffer) => (logs += d.toString()));
  proc.stdout.resume();
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      children.delete(proc);
      resolve(code);
    }),
  );
  const port = waitFor(
    'serve to listen',
    () => {
      const line = logs.split('\n').find((l) => l.includes('"message":"serving"'));
      return line ? (JSON.parse(line) as { port: number }).port : null;
    },
    30_000,
  );
  return { proc, logs: () => logs, port, exited };
}

async function metric(port: number, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(pattern.source, 'gm'))) sum += Number(m[1]);
  return sum;
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  // The run's emulators; the Pub/Sub restart test stops and starts one of its own.
  ({ pubsub: pubsubEmu, gcs: gcsEmu } = inject('emulators'));
  proxy = await startGcsFaultProxy(gcsEmu.host);
  // The clients read the environment when constructed: the test's own uploads go straight to the
  // emulator, the workers started later read through the fault proxy.
  Object.assign(process.env, emulatorEnv({ pubsub: pubsubEmu, gcs: gcsEmu }));
  pubsub = new PubSub({ projectId: pubsubEmu.projectId });
  storage = new Storage();
  Object.assign(
    process.env,
    emulatorEnv({ pubsub: pubsubEmu, gcs: { host: proxy.host, projectId: gcsEmu.projectId } }),
  );
}, 60_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await pubsub?.close();
  await proxy?.close();
}, 30_000);

/** Raw rows and ledger of a JSONL sink directory (`writing`: a worker may be appending to it). */
function jsonlSink(dir: string, { writing = false } = {}): { tables: Map<string, Json[]>; ledger: LedgerRecord[] } {
  const tables = new Map<string, Json[]>();
  for (const dataset of existsSync(dir) ? readdirSync(dir).filter((d) => d.startsWith('raw_')) : []) {
    for (const file of readdirSync(path.join(dir, dataset))) {
      tables.set(`${dataset}.${file.replace(/\.jsonl$/, '')}`, readJsonl(path.join(dir, dataset, file), { writing }));
    }
  }
  return { tables, ledger: readJsonl(path.join(dir, '_archives.jsonl'), { writing }) as unknown as LedgerRecord[] };
}

/** The rows the view rule shows, over every table, as comparable() renders them. */
function visibleRows(tables: Map<string, Json[]>): Map<string, string> {
  const visible = new Map<string, string>();
  for (const [table, rows] of tables) for (const [key, row] of viewRule(table, rows)) visible.set(key, comparable(row));
  return visible;
}

// ---------------------------------------------------------------------------------------------
// BigQuery test server contents

const DATA_TABLES = [
  ['raw_ndt', 'ndt7'],
  ['raw_ndt', 'annotation2'],
  ['raw_utilization', 'switch'],
] as const;

function bqLedger(bq: BigQueryTestServer): LedgerRecord[] {
  return bq.state.table('mlab_etl', '_archives')
    ? bq.state.rows('mlab_etl', '_archives').map((r) => r.json as unknown as LedgerRecord)
    : [];
}

/**
 * The raw rows BigQuery holds, after checking that each was stored under one insertId of its own
 * and that every archive has exactly its rows: no processing stored a row under a second insertId.
 */
/**
 * What BigQuery must hold after any fault: every expected row once through the view rule and once
 * in the raw tables (insertIds deduplicated the repeats), and a final ok ledger record per archive.
 */
function expectBigQueryEndState(bq: BigQueryTestServer, archives: Staged[], expected: Expected) {
  const tables = bqRows(bq, archives, expected);
  const visible = visibleRows(tables);
  expect(diff(expected.rows, visible)).toEqual({ missing: 0, extra: 0, changed: 0 });
  expect(count(tables)).toBe(expected.rows.size);
  const ledger = bqLedger(bq);
  expectFinalOk(ledger, archives, expected);
  return { tables, visible, ledger };
}

function bqRows(bq: BigQueryTestServer, archives: Staged[], expected: Expected): Map<string, Json[]> {
  const tables = new Map<string, Json[]>();
  for (const [dataset, table] of DATA_TABLES) {
    const rows = bq.state.table(dataset, table) ? bq.state.rows(dataset, table) : [];
    const ids = rows.map((r) => r.insertId);
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    expect(new Set(ids).size).toBe(rows.length);
    tables.set(
      `${dataset}.${table}`,
      rows.map((r) => r.json),
    );
  }
  for (const a of archives) {
    let n = 0;
    for (const rows of tables.values()) n += rows.filter((r) => (r.parser as Json).ArchiveURL === a.url).length;
    expect(n, a.url).toBe(expected.perArchive.get(a.url));
  }
  return tables;
}

const count = (tables: Map<string, Json[]>): number => [...tables.values()].reduce((n, rows) => n + rows.length, 0);

function allFinalOk(records: LedgerRecord[], archives: Staged[]): boolean {
  const final = finalRecords(records);
  return archives.every((a) => final.get(a.url)?.status === 'ok');
}

function config(subscription: string, sink: string, flags: string[] = []): ServeConfig {
  // Through the option parser, so options added later get their defaults.
  return serveConfigOf([
    ...['--subscription', subscription, '--project', pubsubEmu.projectId, '--allow-bucket', BUCKET, '--sink', sink],
    ...['--port', '0', '--max-in-flight', '2', '--grace-period', '5', '--read-stall-timeout', '1'],
    ...flags,
  ]);
}

// ---------------------------------------------------------------------------------------------

const ACK_DEADLINE_MS = 10_000;
const KILLS = 3;

/**
 * One subscription whose first worker is killed with SIGKILL while it processes an archive, at a
 * random point, and whose second worker drains it. Each kill gets a subscription of its own: the
 * emulator, unlike Pub/Sub, goes on handing messages to the streams of a killed subscriber, so
 * after two or three kills on one subscription a message can take minutes to come back.
 */
async function killRound(
  bq: BigQueryTestServer,
  round: number,
  archives: Staged[],
  delayMs: number,
): Promise<{ kill: string; leftover: number; deadLettered: number }> {
  // Every kill costs each leased message a delivery attempt: keep the dead-letter topic out of it.
  const { topic, subscription, dead } = await newSubscription(pubsub, `kill${round}`, 100);
  const env = childProcessEnv({ pubsub: pubsubEmu, gcs: { host: proxy.host, projectId: gcsEmu.projectId } });
  const args = [
    ...['--subscription', subscription.name, '--allow-bucket', BUCKET, '--sink', 'bigquery:test'],
    ...['--port', '0', '--max-in-flight', '2', '--grace-period', '0', '--read-stall-timeout', '1'],
  ];
  const first = spawnServe(args, env, bq);
  const firstPort = await first.port;
  for (const a of archives) await notify(topic, a);
  // Timed from the moment an archive is in flight: before that the worker has nothing to lose.
  await waitFor(
    `round ${round}: an archive in flight`,
    async () => (await metric(firstPort, /^mlab_etl_archives_in_flight (\d+)$/)) > 0,
    30_000,
  );
  await sleep(delayMs);
  const committed = bqLedger(bq).filter((r) => archives.some((a) => a.url === r.archive_url)).length;
  first.proc.kill('SIGKILL');
  expect(await first.exited).toBe(null);
  const killedAt = Date.now();

  const second = spawnServe(args, env, bq);
  const port = await second.port;
  // Drained: every archive has a final ok record, the killed worker's leases have expired (so
  // what it held came back), and nothing has moved for two seconds.
  let seen = -1;
  let still = 0;
  await waitFor(
    `round ${round}: a final ok ledger record for every archive`,
    async () => {
      const handled = await metric(port, /^mlab_etl_messages_total\{[^}]*\} (\d+)$/);
      const inFlight = await metric(port, /^mlab_etl_archives_in_flight (\d+)$/);
      still = handled === seen && inFlight === 0 ? still + 1 : 0;
      seen = handled;
      return allFinalOk(bqLedger(bq), archives) && Date.now() - killedAt > ACK_DEADLINE_MS + 3000 && still >= 20;
    },
    60_000,
  ).catch((err: Error) => {
    const final = [...finalRecords(bqLedger(bq)).values()].filter((r) => archives.some((a) => a.url === r.archive_url));
    throw new Error(`${err.message}; final records: ${JSON.stringify(final)}; logs:\n${second.logs().slice(-4000)}`);
  });
  second.proc.kill('SIGTERM');
  expect(await second.exited).toBe(0);
  // A message the killed worker committed but could not ack may still be on its way back.
  return {
    kill: `${seconds(delayMs)} into its batch of ${archives.length} (${committed} committed by then)`,
    leftover: await pending(subscription),
    deadLettered: await pending(dead),
  };
}

describe('serve killed with SIGKILL during a batch', () => {
  it('ends with every row stored once, once through the view rule, and a final ok ledger record per archive', async () => {
    const started = Date.now();
    const random = seeded(SEED);
    const bq = await startBigQueryTestServer({ projectId: 'test' });
    cleanups.push(() => bq.close());
    const { archives, localDir } = await stage(TEN, '2021-01-01');
    const expected = await expectedRows(localDir);
    // Slow downloads keep archives in flight long enough for a kill to land inside one.
    proxy.throttle(25, 16 * 1024);
    let rounds: Awaited<ReturnType<typeof killRound>>[];
    try {
      rounds = await Promise.all(
        Array.from({ length: KILLS }, (_, k) =>
          killRound(
            bq,
            k,
            archives.slice(Math.floor((k * archives.length) / KILLS), Math.floor(((k + 1) * archives.length) / KILLS)),
            100 + random() * 1400,
          ),
        ),
      );
    } finally {
      proxy.throttle(0);
    }

    expect(rounds.map((r) => r.deadLettered)).toEqual(rounds.map(() => 0));
    const { tables, visible, ledger } = expectBigQueryEndState(bq, archives, expected);
    const sent = bq.state.requestCount('tabledata.insertAll', 200);
    console.log(
      `[kill -9] seed ${SEED}: killed serve ${KILLS} times with SIGKILL, ${rounds.map((r) => r.kill).join('; ')}, ` +
        `each time a new serve drained the subscription; ${archives.length} archives; ` +
        `${thousands(count(tables))} rows stored, each under one insertId (${sent} insertAll requests), ` +
        `${thousands(visible.size)} through the view rule, equal to a local parse; ${ledger.length} ledger records, ` +
        `the final one per archive ok; ${rounds.reduce((n, r) => n + r.leftover, 0)} redeliveries still pending, ` +
        `none dead-lettered; ${seconds(Date.now() - started)}`,
    );
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------

const FAULT_WINDOW_MS = 5000;

describe('BigQuery answering 503, 429 and per-row errors for a while', () => {
  it('ends with every row stored once by insertId, once through the view rule, and a final ok record per archive', async () => {
    const started = Date.now();
    const bq = await startBigQueryTestServer({ projectId: 'test', seed: SEED });
    cleanups.push(() => bq.close());
    const { archives, localDir } = await stage(TEN, '2021-02-01');
    const expected = await expectedRows(localDir);
    const { topic, subscription, dead } = await newSubscription(pubsub, 'bq', 10);
    const handle = await startServe(config(subscription.name, 'bigquery:test'), {
      logger: silentLogger,
      bigquery: {
        apiEndpoint: bq.url,
        authClient: dummyAuthClient(),
        retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 },
      },
    });
    cleanups.push(() => handle.stop());
    const pick = seeded(SEED + 1);
    let rowFaults = 0;
    bq.faults
      .failRate(0.25, { status: 503 }, SEED + 2)
      .failRate(0.15, { status: 429 }, SEED + 3)
      // Two table preparations at once can share at most six failed tables.get: with three attempts
      // each, at least one archive fails as a whole, leaving a failed ledger record before its ok one.
      .failNext(6, { status: 503, route: 'tables.get' })
      .rowErrors(() => {
        const hit = pick() < 0.03;
        if (hit) rowFaults++;
        return hit;
      });
    for (const a of archives) await notify(topic, a);
    await sleep(FAULT_WINDOW_MS);
    bq.faults.clear();
    const injected = bq.state.requestCounts();

    await waitFor(
      'a final ok ledger record for every archive',
      () => allFinalOk(bqLedger(bq), archives) && handle.worker.archivesInFlight === 0,
      40_000,
    );
    const metrics = await (await fetch(`http://127.0.0.1:${handle.port}/metrics`)).text();
    await handle.stop();
    expect(await pending(subscription)).toBe(0);
    expect(await pending(dead)).toBe(0);

    const { tables, visible, ledger } = expectBigQueryEndState(bq, archives, expected);
    const failed = ledger.filter((r) => r.status !== 'ok');
    const nacks = Number(/^mlab_etl_messages_total\{trigger="pull",outcome="nack"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    const retries = [...metrics.matchAll(/^mlab_etl_sink_retries_total\{[^}]*\} (\d+)$/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
    // Enough faults that some archive needed a second delivery, not only the sink's own retries.
    expect(nacks).toBeGreaterThan(0);
    expect(failed.length).toBeGreaterThan(0);
    // Each failed attempt is recorded, then retried; which code it gets is a known gap (below).
    expect(failed.every((r) => r.status === 'failed')).toBe(true);
    console.log(
      `[bigquery] seed ${SEED}: for ${seconds(FAULT_WINDOW_MS)} BigQuery answered ` +
        `${injected['tabledata.insertAll 503'] ?? 0} insertAll requests with 503 and ${injected['tabledata.insertAll 429'] ?? 0} with 429, ` +
        `${injected['tables.get 503'] ?? 0} tables.get with 503, and refused ${rowFaults} rows with backendError; ` +
        `${retries} sink retries, ${nacks} messages nacked and redelivered; ${archives.length} archives; ` +
        `${thousands(count(tables))} rows stored, each under one insertId, ${thousands(visible.size)} through the view rule, equal to a local parse; ` +
        `${ledger.length} ledger records (${failed.length} of failed attempts: ${failed.map((r) => r.error_code).join(', ')}), ` +
        `the final one per archive ok; subscription and dead-letter topic empty; ${seconds(Date.now() - started)}`,
    );
  }, 90_000);
});

// ---------------------------------------------------------------------------------------------

describe('Cloud Storage reads cut at random offsets', () => {
  it('resumes each cut read from its byte offset: every row once, no row twice, resumes counted', async () => {
    const started = Date.now();
    const random = seeded(SEED + 5);
    const { archives, localDir } = await stage(
      [NDT7, SWITCH_2016, ANNOTATION, NDT7, SWITCH, SWITCH_2016],
      '2021-03-01',
    );
    const expected = await expectedRows(localDir);
    const out = tmp('cuts');
    const { topic, subscription } = await newSubscription(pubsub, 'cuts', 5);
    // One archive at a time, so each cut belongs to a known archive. The JSONL sink keeps every
    // row it is given: a byte read twice would show as a row twice.
    const resumed: Array<{ url: string; offset: number; error: string }> = [];
    const handle = await startServe(config(subscription.name, `jsonl:${out}`, ['--max-in-flight', '1']), {
      logger: {
        log: (_severity, message, fields = {}) => {
          if (message === 'resuming archive read')
            resumed.push(fields as { url: string; offset: number; error: string });
        },
      },
    });
    cleanups.push(() => handle.stop());
    const cuts: string[] = [];
    let armed = 0;
    let total = 0;
    for (const a of archives) {
      // k cuts, each after `step` bytes of a response: at bytes step, 2 step, ... k step of the archive.
      const k = 1 + Math.floor(random() * 3);
      const step = 1 + Math.floor(random() * (Math.floor(a.size / (k + 1)) - 1));
      const before = proxy.stats();
      proxy.cutNext(k, step);
      await notify(topic, a);
      await waitFor(`the ledger record of ${a.name}`, () =>
        jsonlSink(out, { writing: true }).ledger.some((r) => r.archive_url === a.url),
      );
      proxy.cutNext(0, 0);
      const after = proxy.stats();
      // An armed cut is used up by the next download even when the client stops reading it before
      // the cut point (a request it gave up on), so fewer cuts than armed may happen.
      const happened = after.cut - before.cut;
      expect(happened, a.name).toBeLessThanOrEqual(k);
      // Every cut download was asked for again, from where the reader was.
      expect(after.downloads - before.downloads, a.name).toBeGreaterThanOrEqual(happened + 1);
      armed += k;
      total += happened;
      const at = Array.from({ length: happened }, (_, i) => thousands((i + 1) * step)).join(', ');
      const from = resumed
        .filter((r) => r.url === a.url)
        .map((r) => thousands(r.offset))
        .join(', ');
      cuts.push(
        `${a.name.split('/')[1] as string} of ${thousands(a.size)} bytes cut at ${at || '-'}, resumed from ${from || '-'}`,
      );
    }
    const resumes = await metric(handle.port, /^mlab_etl_source_resumes_total (\d+)$/);
    await handle.stop();

    const sink = jsonlSink(out);
    expect(sink.ledger).toHaveLength(archives.length);
    expectFinalOk(sink.ledger, archives, expected);
    let raw = 0;
    for (const [table, rows] of sink.tables) {
      raw += rows.length;
      expect(new Set(rows.map((r) => rowKey(table, r))).size, table).toBe(rows.length);
    }
    const visible = visibleRows(sink.tables);
    expect(diff(expected.rows, visible)).toEqual({ missing: 0, extra: 0, changed: 0 });
    expect(raw).toBe(expected.rows.size);
    expect(total).toBeGreaterThan(armed / 2);
    // Resumes and cuts need not match: a cut before the response headers are read is sent again by
    // the client library itself, before any byte is delivered; a read that stalls for the stall
    // timeout on a busy machine is resumed without a cut.
    expect(resumes).toBe(resumed.length);
    expect(resumes).toBeGreaterThan(0);
    for (const a of archives) {
      const offsets = resumed.filter((r) => r.url === a.url).map((r) => r.offset);
      expect(offsets, a.name).toEqual([...offsets].sort((x, y) => x - y));
      for (const o of offsets) expect(o, a.name).toBeLessThan(a.size);
    }
    console.log(
      `[gcs cuts] seed ${SEED}: ${total} downloads cut (of ${armed} armed): ${cuts.join('; ')}; ` +
        `mlab_etl_source_resumes_total ${resumes}, as many as the worker logged; ` +
        `${archives.length} archives, one ok ledger record each; ${thousands(raw)} raw rows, each once and equal to a local parse; ` +
        `${seconds(Date.now() - started)}`,
    );
  }, 90_000);
});

// ---------------------------------------------------------------------------------------------

interface TcpFront {
  /** `127.0.0.1:PORT`: what the worker is given as PUBSUB_EMULATOR_HOST, whatever is behind it. */
  host: string;
  /** Where connections go; null drops every connection and refuses new ones, as a service that is down. */
  setTarget(port: number | null): void;
  close(): Promise<void>;
}

async function startTcpFront(target: number): Promise<TcpFront> {
  let upstreamPort: number | null = target;
  const open = new Set<Socket>();
  const server: TcpServer = createTcpServer((client) => {
    if (upstreamPort === null) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(upstreamPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    host: `127.0.0.1:${port}`,
    setTarget(p) {
      upstreamPort = p;
      if (p === null) for (const s of open) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const OUTAGE_MS = 4000;
const portOf = (host: string): number => Number(host.split(':').at(-1));

describe('the Pub/Sub emulator restarted mid-run', () => {
  it('survives the outage: alive throughout, ready again after it, and processes what is published after it', async () => {
    const started = Date.now();
    const emulator = await startPubSubEmulator();
    cleanups.push(() => emulator.stop());
    const front = await startTcpFront(portOf(emulator.host));
    cleanups.push(() => front.close());
    const id = Date.now();
    const names = { topic: `archives-restart-${id}`, subscription: `worker-restart-${id}` };
    const create = async (client: PubSub): Promise<Topic> => {
      const [t] = await client.createTopic(names.topic);
      await t.createSubscription(names.subscription, { ackDeadlineSeconds: 10 });
      return t;
    };
    let client = new PubSub({ projectId: emulator.projectId, apiEndpoint: emulator.host });
    cleanups.push(() => client.close());
    let topic = await create(client);
    const { archives, localDir } = await stage(
      [SWITCH, ANNOTATION, NDT7, SWITCH, ANNOTATION, SWITCH_2016],
      '2021-04-01',
    );
    const expected = await expectedRows(localDir);
    const [first, second, inFlight, ...after] = archives as [Staged, Staged, Staged, ...Staged[]];
    const out = tmp('restart');
    const child = spawnServe(
      [
        ...['--subscription', names.subscription, '--allow-bucket', BUCKET, '--sink', `jsonl:${out}`],
        ...['--port', '0', '--max-in-flight', '2', '--grace-period', '5', '--read-stall-timeout', '1'],
      ],
      childProcessEnv({
        pubsub: { host: front.host, projectId: emulator.projectId },
        gcs: { host: proxy.host, projectId: gcsEmu.projectId },
      }),
    );
    const port = await child.port;
    const status = async (p: string): Promise<number> => (await fetch(`http://127.0.0.1:${port}${p}`)).status;
    const ledger = (): LedgerRecord[] => jsonlSink(out, { writing: true }).ledger;
    const okSince = (a: Staged, since: number): boolean =>
      ledger().some((r) => r.archive_url === a.url && r.status === 'ok' && Date.parse(r.started) >= since);

    await notify(topic, first);
    await notify(topic, second);
    // As long as the waits after the restart: a busy machine or a Storage emulator hiccup makes the
    // worker resume or redeliver, which takes longer than the default 30 s.
    await waitFor('the archives published before the outage', () => okSince(first, 0) && okSince(second, 0), 45_000);
    expect(await status('/readyz')).toBe(200);
    // Their acks have left (the client sends them within a fraction of a second).
    await sleep(1500);

    // The outage starts while an archive is being read: its ack will have nowhere to go.
    proxy.throttle(20, 16 * 1024);
    const downloads = proxy.stats().downloads;
    await notify(topic, inFlight);
    await waitFor('the download to start', () => proxy.stats().downloads > downloads);
    const down = Date.now();
    front.setTarget(null);
    await emulator.stop();
    const readyz = new Map<number, number>();
    const healthz = new Map<number, number>();
    while (Date.now() - down < OUTAGE_MS) {
      const [r, h] = await Promise.all([status('/readyz'), status('/healthz')]);
      readyz.set(r, (readyz.get(r) ?? 0) + 1);
      healthz.set(h, (healthz.get(h) ?? 0) + 1);
      await sleep(200);
    }
    proxy.throttle(0);
    expect(child.proc.exitCode).toBe(null);
    expect([...healthz.keys()]).toEqual([200]);
    // Not ready while Pub/Sub cannot be reached: the readiness probe asks it.
    expect(readyz.get(503) ?? 0).toBeGreaterThan(0);

    // A restarted emulator is empty. The topic and subscription are back before the worker can
    // reach it again, as they would be after a real outage.
    const restarted = await startPubSubEmulator();
    cleanups.push(() => restarted.stop());
    await client.close();
    client = new PubSub({ projectId: restarted.projectId, apiEndpoint: restarted.host });
    topic = await create(client);
    front.setTarget(portOf(restarted.host));
    const outage = Date.now() - down;
    // Pub/Sub would redeliver what was not acked when it went down; the emulator lost it, so it
    // is published again: whatever had no ok record a second before the outage.
    const unacked = [first, second, inFlight].filter(
      (a) =>
        !ledger().some((r) => r.archive_url === a.url && r.status === 'ok' && Date.parse(r.finished) < down - 1000),
    );
    const committedDuringOutage = okSince(inFlight, 0);
    for (const a of [...unacked, ...after]) await notify(topic, a);
    await waitFor(
      'the archives published after the restart',
      () => [...unacked, ...after].every((a) => okSince(a, down)),
      45_000,
    );
    await waitFor('/readyz to answer 200', async () => (await status('/readyz')) === 200, 40_000);
    const acked = await metric(port, /^mlab_etl_messages_total\{trigger="pull",outcome="ack"\} (\d+)$/m);
    child.proc.kill('SIGTERM');
    expect(await child.exited).toBe(0);

    const sink = jsonlSink(out);
    expectFinalOk(sink.ledger, archives, expected);
    const visible = visibleRows(sink.tables);
    expect(diff(expected.rows, visible)).toEqual({ missing: 0, extra: 0, changed: 0 });
    const raw = count(sink.tables);
    const seen = (m: Map<number, number>): string => [...m].map(([s, n]) => `${s} x${n}`).join(', ');
    console.log(
      `[pubsub restart] Pub/Sub unreachable for ${seconds(outage)} (emulator stopped; a new one started, ` +
        `topic and subscription recreated) while 1 archive was being read (committed during the outage: ${committedDuringOutage ? 'yes' : 'no'}); ` +
        `/healthz ${seen(healthz)}, /readyz ${seen(readyz)} during the outage, 200 after it; the worker lived on; ` +
        `${unacked.length} unacked archive(s) republished and ${after.length} new ones processed after the restart ` +
        `(${acked} messages acked in all); ${sink.ledger.length} ledger records, the final one per archive ok; ` +
        `${thousands(visible.size)} rows through the view rule, equal to a local parse (the JSONL sink holds ${thousands(raw)}: ` +
        `${thousands(raw - visible.size)} repeats of redelivered archives that the view rule hides); ${seconds(Date.now() - started)}`,
    );
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
