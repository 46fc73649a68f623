/**
 * `mlab-etl serve` options: flags with environment-variable equivalents, read and validated once
 * at start. Kept apart from the worker so that every other command starts without loading the
 * cloud client libraries.
 */
import os from 'node:os';
import { LimitError, parseLimits, type Limits } from '../limits.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface ServeConfig {
  subscription: string | null;
  project: string | null;
  allowBuckets: string[];
  sink: string;
  port: number;
  maxInFlight: number;
  /** Worker threads that parse entries; 0 parses on the main thread. */
  workers: number;
  gracePeriodSeconds: number;
  enableManualWorker: boolean;
  maxEntryBytes: number | null;
  /** Safety limits changed from their defaults (limits.ts). */
  limits: Partial<Limits>;
  /** A Cloud Storage read that delivers nothing for this long is resumed. */
  readStallSeconds: number;
  /** Audience required of push OIDC tokens; push is unauthenticated when null. */
  pushAudience: string | null;
  pushServiceAccount: string | null;
}

/** Raw option values from commander: flags win over the environment. */
export interface ServeFlags {
  subscription?: string;
  project?: string;
  allowBucket?: string[];
  sink?: string;
  port?: string;
  maxInFlight?: string;
  workers?: string;
  gracePeriod?: string;
  enableV2Worker?: boolean;
  maxEntryBytes?: string;
  limit?: string[];
  readStallTimeout?: string;
  pushAudience?: string;
  pushServiceAccount?: string;
}

/** The options' environment variables, as documented in README's Operating section. */
export const SERVE_ENV = {
  subscription: 'MLAB_ETL_SUBSCRIPTION',
  project: 'GOOGLE_CLOUD_PROJECT',
  allowBucket: 'MLAB_ETL_ALLOW_BUCKETS',
  sink: 'MLAB_ETL_SINK',
  port: 'PORT',
  maxInFlight: 'MLAB_ETL_MAX_IN_FLIGHT',
  workers: 'MLAB_ETL_WORKERS',
  gracePeriod: 'MLAB_ETL_GRACE_PERIOD',
  enableV2Worker: 'MLAB_ETL_ENABLE_V2_WORKER',
  maxEntryBytes: 'MLAB_ETL_MAX_ENTRY_BYTES',
  limit: 'MLAB_ETL_LIMITS',
  readStallTimeout: 'MLAB_ETL_READ_STALL_TIMEOUT',
  pushAudience: 'MLAB_ETL_PUSH_AUDIENCE',
  pushServiceAccount: 'MLAB_ETL_PUSH_SERVICE_ACCOUNT',
} as const;

function int(value: string, option: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(`${option} ${JSON.stringify(value)}: expected an integer from ${min} to ${max}`);
  }
  return n;
}

function limitsOf(pairs: string[]): Partial<Limits> {
  try {
    return parseLimits(pairs);
  } catch (err) {
    if (err instanceof LimitError) throw new ConfigError(err.message);
    throw err;
  }
}

function required(value: string | undefined, message: string): string {
  if (value === undefined) throw new ConfigError(message);
  return value;
}

const BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

export function serveConfig(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const pick = (k: keyof typeof SERVE_ENV, flag: string | undefined): string | undefined =>
    flag ?? (env[SERVE_ENV[k]] || undefined);
  const buckets = flags.allowBucket?.length
    ? flags.allowBucket
    : (env[SERVE_ENV.allowBucket] ?? '')
        .split(',')
        .map((b) => b.trim())
        .filter(Boolean);
  if (buckets.length === 0)
    throw new ConfigError(`--allow-bucket (or ${SERVE_ENV.allowBucket}) is required: the buckets the worker may read`);
  for (const b of buckets)
    if (!BUCKET.test(b)) throw new ConfigError(`--allow-bucket ${JSON.stringify(b)}: not a bucket name`);
  const port = pick('port', flags.port);
  const inFlight = pick('maxInFlight', flags.maxInFlight);
  const workers = pick('workers', flags.workers);
  const grace = pick('gracePeriod', flags.gracePeriod);
  const maxEntry = pick('maxEntryBytes', flags.maxEntryBytes);
  const stall = pick('readStallTimeout', flags.readStallTimeout);
  const manual =
    flags.enableV2Worker ?? ['1', 'true', 'yes'].includes((env[SERVE_ENV.enableV2Worker] ?? '').toLowerCase());
  return {
    subscription: pick('subscription', flags.subscription) ?? null,
    pushAudience: pick('pushAudience', flags.pushAudience) ?? null,
    pushServiceAccount: pick('pushServiceAccount', flags.pushServiceAccount) ?? null,
    project: pick('project', flags.project) ?? null,
    allowBuckets: buckets,
    sink: required(
      pick('sink', flags.sink),
      `--sink (or ${SERVE_ENV.sink}) is required: bigquery:PROJECT[.DATASET_PREFIX] in production, jsonl:DIR or duckdb:FILE for a trial`,
    ),
    port: port === undefined ? 8080 : int(port, '--port', 0, 65535),
    maxInFlight: inFlight === undefined ? os.availableParallelism() : int(inFlight, '--max-in-flight', 1, 1000),
    workers:
      workers === undefined ? 0 : workers === 'auto' ? os.availableParallelism() : int(workers, '--workers', 0, 64),
    gracePeriodSeconds: grace === undefined ? 60 : int(grace, '--grace-period', 0, 3600),
    enableManualWorker: manual,
    maxEntryBytes: maxEntry === undefined ? null : int(maxEntry, '--max-entry-bytes', 1, Number.MAX_SAFE_INTEGER),
    limits: limitsOf(flags.limit ?? (env[SERVE_ENV.limit] ? [env[SERVE_ENV.limit] as string] : [])),
    readStallSeconds: stall === undefined ? 60 : int(stall, '--read-stall-timeout', 1, 3600),
  };
}
