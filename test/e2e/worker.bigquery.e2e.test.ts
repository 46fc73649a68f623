// serve into BigQuery end to end: Pub/Sub emulator, Storage emulator, the BigQuery test server.
// What an operator relies on: the same rows as a local parse, redelivery never doubling rows,
// reprocessing showing only the newest rows through the view's rule, BigQuery outages survived.
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PubSub, type Topic } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { silentLogger } from '../../src/log.js';
import { BUNDLED, dummyAuthClient, uploadObject, waitFor } from '../support/helpers.js';
import { runQuery } from '../../src/sinks/duckdb/query.js';
import { startServe, type ServeHandle } from '../../src/worker/serve.js';
import { startBigQueryTestServer, type BigQueryTestServer } from '../support/bigquery-test-server/index.js';
import { emulatorEnv, objectFinalizeNotification } from '../support/emulators.js';
import type { SharedEmulators } from '../support/global-setup.js';

const BUCKET = 'archive-mlab-bigquery';
const ARCHIVES = BUNDLED.dir;
const SWITCH = BUNDLED.switch;
const NDT7 = BUNDLED.ndt7;
const ANNOTATION = BUNDLED.annotation2;

let pubsubEmu: SharedEmulators['pubsub'];
let gcsEmu: SharedEmulators['gcs'];
let bq: BigQueryTestServer;
let pubsub: PubSub;
let storage: Storage;
let topic: Topic;
let handle: ServeHandle;

const authClient = dummyAuthClient;

type Json = Record<string, unknown>;
const rows = (dataset: string, table: string): Json[] =>
  bq.state.table(dataset, table) ? bq.state.rows(dataset, table).map((r) => r.json as Json) : [];
const ledger = () => rows('mlab_etl', '_archives');

async function notify(name: string, attributes: Record<string, string> = {}): Promise<void> {
  const [meta] = await storage.bucket(BUCKET).file(name).getMetadata();
  const n = objectFinalizeNotification({
    bucket: BUCKET,
    name,
    generation: String(meta.generation),
    size: String(meta.size),
  });
  await topic.publishMessage({ data: n.data, attributes: { ...n.attributes, ...attributes } });
}

/** The analysts' view rule, applied to what BigQuery holds: one row per (id, date), newest parser.Time. */
function viewRule(all: Json[]): Json[] {
  const newest = new Map<string, Json>();
  for (const r of all) {
    const key = `${String(r.id)}|${String(r.date)}`;
    const seen = newest.get(key);
    if (!seen || String((r.parser as Json).Time) > String((seen.parser as Json).Time)) newest.set(key, r);
  }
  return [...newest.values()];
}

beforeAll(async () => {
  ({ pubsub: pubsubEmu, gcs: gcsEmu } = inject('emulators'));
  bq = await startBigQueryTestServer({ projectId: 'test' });
  Object.assign(process.env, emulatorEnv({ pubsub: pubsubEmu, gcs: gcsEmu }));
  pubsub = new PubSub({ projectId: pubsubEmu.projectId });
  storage = new Storage();
  for (const name of [SWITCH, NDT7, ANNOTATION]) {
    await uploadObject(storage.bucket(BUCKET).file(name), readFileSync(path.join(ARCHIVES, name)));
  }
  // Names of this file's own: the emulator is shared with the other end-to-end files.
  [topic] = await pubsub.createTopic('archives-bigquery');
  const [dead] = await pubsub.createTopic('dead-bigquery');
  const [sub] = await topic.createSubscription('worker-bigquery', {
    ackDeadlineSeconds: 10,
    deadLetterPolicy: { deadLetterTopic: dead.name, maxDeliveryAttempts: 5 },
  });
  handle = await startServe(
    {
      subscription: sub.name,
      project: pubsubEmu.projectId,
      allowBuckets: [BUCKET],
      sink: 'bigquery:test',
      port: 0,
      maxInFlight: 2,
      workers: 0,
      gracePeriodSeconds: 5,
      enableManualWorker: false,
      maxEntryBytes: null,
      readStallSeconds: 5,
      limits: {},
      pushAudience: null,
      pushServiceAccount: null,
    },
    {
      logger: silentLogger,
      bigquery: {
        apiEndpoint: bq.url,
        authClient: authClient(),
        retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 },
      },
    },
  );
}, 90_000);

afterAll(async () => {
  await handle?.stop();
  await pubsub?.close();
  await bq?.close();
}, 30_000);

describe('serve into BigQuery', () => {
  it('stores the same rows as the DuckDB sink, with ledger records after the rows', async () => {
    await notify(SWITCH);
    await notify(NDT7);
    await notify(ANNOTATION);
    await waitFor('three ledger records', () => ledger().length >= 3);
    expect(
      ledger()
        .map((r) => [r.archive_url, r.status, r.rows_written])
        .sort(),
    ).toEqual([
      [`gs://${BUCKET}/${ANNOTATION}`, 'ok', 57],
      [`gs://${BUCKET}/${NDT7}`, 'ok', 114],
      [`gs://${BUCKET}/${SWITCH}`, 'ok', 30],
    ]);
    expect(bq.state.table('raw_ndt', 'ndt7')?.timePartitioning).toMatchObject({ type: 'DAY', field: 'date' });
    expect(bq.state.table('ndt', 'ndt7')?.view?.query).toContain('LEFT JOIN');

    const db = path.join(mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-bq-')), 'x.duckdb');
    const quiet = { stdout: () => {}, stderr: () => {}, isTTY: false };
    expect(
      await run(['parse', ...[SWITCH, NDT7].map((n) => path.join(ARCHIVES, n)), '--sink', `duckdb:${db}`], quiet),
    ).toBe(0);
    // Compare as BigQuery JSON: DuckDB renders its rows back through the same serializer as the BigQuery sink.
    const local = await runQuery(
      db,
      'SELECT id, a.CongestionControl AS cc, a.MeanThroughputMbps AS mbps, a.MinRTT AS rtt, len(raw.Download.ServerMeasurements) AS n FROM raw_ndt.ndt7 ORDER BY id',
    );
    const stored = rows('raw_ndt', 'ndt7')
      .map((r) => ({
        id: r.id,
        cc: (r.a as Json).CongestionControl,
        mbps: (r.a as Json).MeanThroughputMbps,
        rtt: (r.a as Json).MinRTT,
        n: ((r.raw as Json).Download as Json | undefined)?.ServerMeasurements
          ? (((r.raw as Json).Download as Json).ServerMeasurements as unknown[]).length
          : null,
      }))
      .sort((x, y) => String(x.id).localeCompare(String(y.id)));
    expect(stored).toEqual(local.rows);
    const switchLocal = await runQuery(
      db,
      'SELECT id, a.SwitchOctetsUplinkRxCounter::VARCHAR AS c, raw.Metrics[1].sample[1].collectstart::VARCHAR AS s FROM raw_utilization.switch ORDER BY id',
    );
    const switchStored = rows('raw_utilization', 'switch')
      .map((r) => ({
        id: r.id,
        c: String((r.a as Json).SwitchOctetsUplinkRxCounter),
        s: String((((r.raw as Json).Metrics as Json[])[0]?.sample as Json[])[0]?.collectstart),
      }))
      .sort((x, y) => String(x.id).localeCompare(String(y.id)));
    expect(switchStored).toEqual(switchLocal.rows);
  });

  it('sends the same insertIds on redelivery, so BigQuery stores the rows once', async () => {
    const before = bq.state.rows('raw_utilization', 'switch').length;
    const ids = new Set(bq.state.rows('raw_utilization', 'switch').map((r) => r.insertId));
    await notify(SWITCH);
    await waitFor('a fourth ledger record', () => ledger().length >= 4);
    expect(bq.state.rows('raw_utilization', 'switch')).toHaveLength(before);
    expect(ids.size).toBe(30);
  });

  it('reprocessing sends newer rows, and the view rule shows one copy of each', async () => {
    const quiet = { stdout: () => {}, stderr: () => {}, isTTY: false };
    expect(await run(['reprocess', `gs://${BUCKET}/utilization/switch/`, '--topic', topic.name], quiet)).toBe(0);
    await waitFor('the reprocessed archive', () => ledger().length >= 5);
    const all = rows('raw_utilization', 'switch');
    expect(all).toHaveLength(60);
    const visible = viewRule(all);
    expect(visible).toHaveLength(30);
    const newest = ledger().at(-1)?.started as string;
    expect(visible.every((r) => (r.parser as Json).Time === newest)).toBe(true);
  });

  it('survives BigQuery answering 503 for a while: the message is retried and the rows arrive once', async () => {
    // A new archive (same tests, another day), so its rows are easy to count.
    const copy = 'ndt/ndt7/2020/03/20/20200320T000000.000000Z-ndt7-mlab3-syd03-ndt.tgz';
    await uploadObject(storage.bucket(BUCKET).file(copy), readFileSync(path.join(ARCHIVES, NDT7)));
    // More failures than one processing retries (3 attempts): the commit fails, the message is nacked and redelivered.
    bq.faults.failNext(8, { status: 503, route: 'tabledata.insertAll' });
    await notify(copy);
    const url = `gs://${BUCKET}/${copy}`;
    await waitFor(
      'the ledger record after the outage',
      () => ledger().find((r) => r.archive_url === url && r.status === 'ok'),
      60_000,
    );
    expect(bq.state.requestCount('tabledata.insertAll', 503)).toBe(8);
    expect(ledger().filter((r) => r.archive_url === url)).toHaveLength(1);
    const stored = rows('raw_ndt', 'ndt7').filter((r) => (r.parser as Json).ArchiveURL === url);
    expect(stored).toHaveLength(114);
    expect(new Set(stored.map((r) => r.id)).size).toBe(114);
    const metrics = await (await fetch(`http://127.0.0.1:${handle.port}/metrics`)).text();
    expect(metrics).toMatch(/mlab_etl_messages_total\{trigger="pull",outcome="nack"\} [1-9]/);
    expect(metrics).toMatch(/mlab_etl_sink_retries_total\{sink="bigquery",reason="503"\} [1-9]/);
    expect(metrics).toMatch(
      /mlab_etl_sink_request_duration_seconds_count\{sink="bigquery",operation="insertAll"\} [1-9]/,
    );
  }, 90_000);
});
