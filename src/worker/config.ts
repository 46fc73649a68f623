/**
 * What `mlab-etl serve` runs with: its options checked and given their defaults (the options
 * are declared in src/cli/commands/serve.ts). Kept apart from the worker so that every other
 * command starts without loading the cloud client libraries.
 */
import type { Limits } from '../limits.js';

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
  /** Recorded with each archive in the ledger; none when absent. */
  gitCommit?: string | null;
  /** A DuckDB sink's memory_limit, and a BigQuery sink's insertAll requests in flight: the sinks' defaults when absent. */
  duckdbMemoryLimit?: string;
  bigqueryInsertsInFlight?: number;
}
