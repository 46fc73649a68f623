/** `mlab-etl serve`: the production worker, until SIGTERM. */
import type { Command } from 'commander';
import { ConfigError, SERVE_ENV, serveConfig, type ServeFlags } from '../../worker/config.js';
import { UsageError } from '../context.js';
import { collect } from '../options.js';

export function addServeCommand(program: Command): void {
  program
    .command('serve')
    .description('process archives from Cloud Storage as Pub/Sub notifications arrive (the production worker)')
    .option(
      '--subscription <name>',
      `Pub/Sub subscription to pull (env ${SERVE_ENV.subscription}); without it, only POST /push`,
    )
    .option('--project <id>', `Google Cloud project (env ${SERVE_ENV.project})`)
    .option(
      '--allow-bucket <bucket>',
      `a bucket the worker may read; repeatable (env ${SERVE_ENV.allowBucket}, comma-separated)`,
      collect,
    )
    .option('--sink <spec>', `duckdb:FILE, jsonl:DIR or bigquery:PROJECT[.DATASET_PREFIX] (env ${SERVE_ENV.sink})`)
    .option('--port <n>', `HTTP port for /metrics, /healthz, /readyz, /push (env ${SERVE_ENV.port}, default 8080)`)
    .option(
      '--max-in-flight <n>',
      `archives processed at once (env ${SERVE_ENV.maxInFlight}, default: the number of cores)`,
    )
    .option(
      '--grace-period <seconds>',
      `on SIGTERM, time for in-flight archives to finish (env ${SERVE_ENV.gracePeriod}, default 60)`,
    )
    .option(
      '--workers <n>',
      `worker threads that parse entries, shared by the archives in flight; 0 parses on the main thread, auto: one per core (env ${SERVE_ENV.workers}, default 0)`,
    )
    .option('--enable-v2-worker', `enable GET /v2/worker?filename=gs://... (env ${SERVE_ENV.enableV2Worker}=true)`)
    .option('--max-entry-bytes <n>', `skip entries larger than this (env ${SERVE_ENV.maxEntryBytes})`)
    .option(
      '--limit <name=value>',
      `change a safety limit, e.g. archiveTimeoutMs=600000; repeatable (env ${SERVE_ENV.limit}, comma-separated)`,
      collect,
    )
    .option(
      '--push-audience <audience>',
      `require Pub/Sub OIDC tokens with this audience on POST /push (env ${SERVE_ENV.pushAudience})`,
    )
    .option(
      '--push-service-account <email>',
      `and signed for this service account (env ${SERVE_ENV.pushServiceAccount})`,
    )
    .option(
      '--read-stall-timeout <seconds>',
      `resume a Cloud Storage read that delivers nothing for this long (env ${SERVE_ENV.readStallTimeout}, default 60)`,
    )
    .action(serve);
}

async function serve(flags: ServeFlags): Promise<void> {
  let config;
  try {
    config = serveConfig(flags);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  // The cloud client libraries load only for the commands that use them.
  const { startServe } = await import('../../worker/serve.js');
  const handle = await startServe(config, { handleSignals: true });
  // Archives past the grace period were nacked: exit without finishing them.
  process.exit(await handle.done);
}
