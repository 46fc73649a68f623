/**
 * `mlab-etl serve`: the worker, from its checked configuration (src/cli/commands/serve.ts reads
 * the options), until SIGTERM.
 */
import type { Server } from 'node:http';
import { Duration, PubSub } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { startHttpServer } from './http-server.js';
import { jsonLogger, type Logger } from '../log.js';
import { Metrics } from './metrics.js';
import { PushAuthenticator } from './push-auth.js';
import { VERSION } from '../package-info.js';
import { EntryPool } from '../pipeline/threads/entry-pool.js';
import { Registry } from '../parser/registry.js';
import { SchemaSet } from '../schema/schema-set.js';
import { openSink, type BigQueryConnection } from '../sinks/open-sink.js';
import type { Sink } from '../sinks/sink.js';
import { Worker } from './archive-worker.js';
import type { ServeConfig } from './config.js';

export type { ServeConfig } from './config.js';

export interface ServeHandle {
  port: number;
  worker: Worker;
  /** Resolves with the exit code once stopped (by stop() or SIGTERM/SIGINT). */
  done: Promise<number>;
  stop(): Promise<number>;
}

/** Starts the worker; `handleSignals` makes SIGTERM/SIGINT stop it gracefully. */
export async function startServe(
  config: ServeConfig,
  options: {
    logger?: Logger;
    handleSignals?: boolean;
    bigquery?: BigQueryConnection;
    pushCerts?: Record<string, string>;
  } = {},
): Promise<ServeHandle> {
  const logger = options.logger ?? jsonLogger();
  const schemas = SchemaSet.load();
  const registry = await Registry.load(schemas);
  const pool = config.workers > 0 ? await EntryPool.start({ workers: config.workers }) : undefined;
  const metrics = new Metrics({ datatypes: registry.datatypes() });
  metrics.maxInFlight.set(config.maxInFlight);
  const sink = await openWorkerSink(config, schemas, metrics, options.bigquery);
  const storage = new Storage(config.project ? { projectId: config.project } : {});
  const worker = new Worker({
    storage,
    sink,
    registry,
    schemas,
    metrics,
    logger,
    allowBuckets: new Set(config.allowBuckets),
    maxInFlight: config.maxInFlight,
    version: VERSION,
    gitCommit: config.gitCommit ?? null,
    ...(config.maxEntryBytes === null ? {} : { maxEntryBytes: config.maxEntryBytes }),
    limits: config.limits,
    stallTimeoutMs: config.readStallSeconds * 1000,
    ...(pool ? { pool } : {}),
  });
  const pushAuth = config.pushAudience
    ? new PushAuthenticator({
        audience: config.pushAudience,
        serviceAccount: config.pushServiceAccount ?? undefined,
        ...(options.pushCerts ? { certs: options.pushCerts } : {}),
      })
    : undefined;
  const server = await startHttpServer(worker, metrics, logger, {
    port: config.port,
    enableManualWorker: config.enableManualWorker,
    pushAuth,
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;

  const pubsub = config.subscription ? subscribe(worker, config, config.subscription) : null;
  const mode = pushAuthMode(config);
  logger.log('INFO', 'serving', {
    port,
    subscription: config.subscription,
    sink: config.sink.split(':')[0],
    allowBuckets: config.allowBuckets,
    maxInFlight: config.maxInFlight,
    workers: config.workers,
    version: VERSION,
    pushAuth: mode,
  });
  if (mode !== 'service-account') {
    logger.log('WARNING', 'POST /push is open to more than Pub/Sub', {
      pushAuth: mode,
      fix: 'give --push-audience and --push-service-account, or keep the port unreachable from outside the cluster',
    });
  }

  const { stop, done } = stopper({ worker, server, logger, graceSeconds: config.gracePeriodSeconds }, async () => {
    await pubsub?.close();
    await pool?.close();
    await sink.close();
  });
  if (options.handleSignals) {
    process.once('SIGTERM', () => void stop());
    process.once('SIGINT', () => void stop());
  }
  return { port, worker, done, stop };
}

/** The sink, its BigQuery requests and retries counted in the metrics. */
async function openWorkerSink(
  config: ServeConfig,
  schemas: SchemaSet,
  metrics: Metrics,
  bigquery: BigQueryConnection | undefined,
): Promise<Sink> {
  const observer = {
    request: (operation: string, seconds: number) =>
      metrics.sinkLatency.observe({ sink: 'bigquery', operation }, seconds),
    retry: (reason: string) => metrics.sinkRetries.inc({ sink: 'bigquery', reason }),
  };
  return openSink(config.sink, schemas, undefined, {
    ...(config.duckdbMemoryLimit === undefined ? {} : { duckdbMemoryLimit: config.duckdbMemoryLimit }),
    bigquery: {
      observer,
      ...(config.bigqueryInsertsInFlight === undefined ? {} : { maxInFlight: config.bigqueryInsertsInFlight }),
      ...bigquery,
    },
  });
}

/** Streaming pull of the subscription, holding no more messages than archives it may process at once. */
function subscribe(worker: Worker, config: ServeConfig, name: string): PubSub {
  const pubsub = new PubSub(config.project ? { projectId: config.project } : {});
  const subscription = pubsub.subscription(name, {
    flowControl: { maxMessages: config.maxInFlight, allowExcessMessages: false },
    // Leases are extended while an archive is processed; each extension is at most 600 s.
    maxAckDeadline: Duration.from({ seconds: 600 }),
    maxExtensionTime: Duration.from({ hours: 4 }),
  });
  worker.listen(subscription);
  return pubsub;
}

/**
 * The graceful stop, once however often it is asked for: no new connection or work, in-flight
 * archives get the grace period, then every connection still open is cut (a slow or idle client
 * must not hold the process past it: Kubernetes would kill it mid-archive), then `release`.
 */
function stopper(
  { worker, server, logger, graceSeconds }: { worker: Worker; server: Server; logger: Logger; graceSeconds: number },
  release: () => Promise<void>,
): { stop: () => Promise<number>; done: Promise<number> } {
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping: Promise<number> | null = null;
  const stop = (): Promise<number> => {
    stopping ??= (async () => {
      logger.log('INFO', 'stopping', { inFlight: worker.archivesInFlight, graceSeconds });
      const closed = new Promise<void>((r) => server.close(() => r()));
      const { finished } = await worker.stop(graceSeconds * 1000);
      if (!finished) logger.log('WARNING', 'grace period over: unfinished archives nacked', {});
      server.closeAllConnections();
      await closed;
      await release();
      logger.log('INFO', 'stopped', {});
      resolveDone(0);
      return 0;
    })();
    return stopping;
  };
  return { stop, done };
}

/** Who may push: nobody checked, any Google identity with the audience, or the one service account. */
function pushAuthMode(config: ServeConfig): 'none' | 'any-identity' | 'service-account' {
  if (config.pushAudience === null) return 'none';
  return config.pushServiceAccount === null ? 'any-identity' : 'service-account';
}
