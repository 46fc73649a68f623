/** `mlab-etl serve`: the production worker, until SIGTERM. Its options are in README's Operating section. */
import os from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_LIMITS, type Limits } from '../../limits.js';
import type { ServeConfig } from '../../worker/config.js';
import { UsageError, type CommandContext } from '../context.js';
import {
  gitCommitOption,
  given,
  integer,
  limitOption,
  list,
  option,
  projectOption,
  withSinkOptions,
  workersOption,
  type SinkOptionValues,
} from '../options.js';

/** The option values as commander hands them over, checked; blank strings are empty variables. */
interface ServeOptions extends SinkOptionValues {
  subscription: string | null;
  project: string | null;
  allowBucket?: string[];
  sink?: string;
  port: number;
  maxInFlight: number;
  gracePeriod: number;
  workers: number;
  enableV2Worker: boolean;
  maxEntryBytes: number | null | '';
  limit: Partial<Limits>;
  pushAudience: string | null;
  pushServiceAccount: string | null;
  pushAnyIdentity: boolean;
  readStallTimeout: number;
  gitCommit: string | null;
}

const BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

function bucket(name: string): void {
  if (!BUCKET.test(name)) throw new InvalidArgumentError(`${JSON.stringify(name)} is not a bucket name.`);
}

/** `--enable-v2-worker` alone, or true/false (the variable's value: an endpoint without auth is off unless asked for). */
function onOff(text: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes'].includes(t)) return true;
  if (['0', 'false', 'no'].includes(t)) return false;
  throw new InvalidArgumentError('Expected true or false.');
}

/** What the worker takes messages from, reads and writes to, and how many archives at once. */
function declareServe(command: Command): Command {
  command
    .description('process archives from Cloud Storage as Pub/Sub notifications arrive (the production worker)')
    .addOption(
      option('--subscription <name>', 'Pub/Sub subscription to pull', {
        env: 'MLAB_ETL_SUBSCRIPTION',
        default: null,
        defaultText: 'none, only POST /push',
      }),
    )
    .addOption(projectOption())
    .addOption(
      option('--allow-bucket <bucket>', 'a bucket the worker may read (required); repeatable, comma-separated', {
        env: 'MLAB_ETL_ALLOW_BUCKETS',
        parse: list(bucket),
      }),
    )
    .addOption(
      option('--sink <spec>', 'bigquery:PROJECT[.DATASET_PREFIX], or duckdb:FILE or jsonl:DIR for a trial (required)', {
        env: 'MLAB_ETL_SINK',
      }),
    )
    .addOption(
      option('--port <n>', 'HTTP port for /metrics, /healthz, /readyz, /push', {
        env: 'PORT',
        default: 8080,
        parse: integer(0, 65535),
      }),
    )
    .addOption(
      option('--max-in-flight <n>', 'archives processed at once', {
        env: 'MLAB_ETL_MAX_IN_FLIGHT',
        default: os.availableParallelism(),
        defaultText: 'the number of cores',
        parse: integer(1, 1000),
      }),
    )
    .addOption(
      option('--grace-period <seconds>', 'on SIGTERM, time for in-flight archives to finish', {
        env: 'MLAB_ETL_GRACE_PERIOD',
        default: 60,
        parse: integer(0, 3600),
      }),
    );
  return withSinkOptions(declareProcessing(command)).addOption(gitCommitOption());
}

/** How each archive is processed, and who may push. */
function declareProcessing(command: Command): Command {
  return command
    .addOption(
      workersOption(
        'worker threads that parse entries, shared by the archives in flight; 0 parses on the main thread, auto: one per core',
        'MLAB_ETL_WORKERS',
      ),
    )
    .addOption(
      option('--enable-v2-worker [true|false]', 'enable GET /v2/worker?filename=gs://... (unauthenticated)', {
        env: 'MLAB_ETL_ENABLE_V2_WORKER',
        default: false,
        parse: onOff,
      }),
    )
    .addOption(
      option('--max-entry-bytes <n>', 'skip entries larger than this (as stored)', {
        env: 'MLAB_ETL_MAX_ENTRY_BYTES',
        default: null,
        defaultText: `the maxEntryBytes limit, ${DEFAULT_LIMITS.maxEntryBytes}`,
        parse: integer(1),
      }),
    )
    .addOption(limitOption('archiveTimeoutMs=600000', 'MLAB_ETL_LIMITS'))
    .addOption(
      option('--push-audience <audience>', 'require Pub/Sub OIDC tokens with this audience on POST /push', {
        env: 'MLAB_ETL_PUSH_AUDIENCE',
        default: null,
        defaultText: 'none, POST /push unauthenticated',
      }),
    )
    .addOption(
      option(
        '--push-service-account <email>',
        "and signed for this service account (the push subscription's --push-auth-service-account); required with --push-audience",
        { env: 'MLAB_ETL_PUSH_SERVICE_ACCOUNT', default: null, defaultText: 'none' },
      ),
    )
    .addOption(
      option(
        '--push-any-identity [true|false]',
        'with --push-audience and no --push-service-account, accept a token of any Google identity (anyone with a Google account could then push)',
        { env: 'MLAB_ETL_PUSH_ANY_IDENTITY', default: false, parse: onOff },
      ),
    )
    .addOption(
      option('--read-stall-timeout <seconds>', 'resume a Cloud Storage read that delivers nothing for this long', {
        env: 'MLAB_ETL_READ_STALL_TIMEOUT',
        default: 60,
        parse: integer(1, 3600),
      }),
    );
}

/** The checked options as the worker takes them; the two it cannot start without are required here. */
function serveConfig(opts: ServeOptions): ServeConfig {
  const allowBuckets = opts.allowBucket ?? [];
  if (allowBuckets.length === 0)
    throw new UsageError('--allow-bucket (or MLAB_ETL_ALLOW_BUCKETS) is required: the buckets the worker may read');
  const sink = given(opts.sink);
  if (sink === null)
    throw new UsageError(
      '--sink (or MLAB_ETL_SINK) is required: bigquery:PROJECT[.DATASET_PREFIX] in production, jsonl:DIR or duckdb:FILE for a trial',
    );
  const pushAudience = given(opts.pushAudience);
  const pushServiceAccount = given(opts.pushServiceAccount);
  // An audience alone is checked by every Google-signed token of any identity: it protects nothing.
  if (pushAudience !== null && pushServiceAccount === null && !opts.pushAnyIdentity)
    throw new UsageError(
      "--push-audience alone accepts a token of any Google identity: give --push-service-account EMAIL (the push subscription's --push-auth-service-account), or --push-any-identity to accept any",
    );
  if (pushAudience === null && pushServiceAccount !== null)
    throw new UsageError('--push-service-account needs --push-audience: without it POST /push checks no token');
  return {
    subscription: given(opts.subscription),
    project: given(opts.project),
    allowBuckets,
    sink,
    port: opts.port,
    maxInFlight: opts.maxInFlight,
    workers: opts.workers,
    gracePeriodSeconds: opts.gracePeriod,
    enableManualWorker: opts.enableV2Worker,
    maxEntryBytes: typeof opts.maxEntryBytes === 'number' ? opts.maxEntryBytes : null,
    limits: opts.limit,
    readStallSeconds: opts.readStallTimeout,
    pushAudience,
    pushServiceAccount,
    gitCommit: given(opts.gitCommit),
    duckdbMemoryLimit: opts.duckdbMemoryLimit,
    bigqueryInsertsInFlight: opts.bigqueryInsertsInFlight,
  };
}

export function addServeCommand(program: Command, { bigquery }: CommandContext): void {
  declareServe(program.command('serve')).action(async (opts: ServeOptions) => {
    const config = serveConfig(opts);
    // The cloud client libraries load only for the commands that use them.
    const { startServe } = await import('../../worker/serve.js');
    const handle = await startServe(config, { handleSignals: true, ...(bigquery ? { bigquery } : {}) });
    // Archives past the grace period were nacked: exit without finishing them.
    process.exit(await handle.done);
  });
}

/**
 * The configuration `serve` would start with, from these arguments and the environment, for
 * starting the worker in-process; a bad option throws commander's or a UsageError.
 */
export function serveConfigOf(argv: string[]): ServeConfig {
  let config: ServeConfig | undefined;
  const command = declareServe(new Command('serve'))
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} })
    .action((opts: ServeOptions) => {
      config = serveConfig(opts);
    });
  command.parse(argv, { from: 'user' });
  if (!config) throw new Error('serve: no configuration');
  return config;
}
