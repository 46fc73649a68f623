import type { BigQueryConnection } from '../sinks/open-sink.js';
import type { Io } from './io.js';

/** What a command's action shares with `run`: where it writes, and the exit code it leaves. */
export interface CommandContext {
  io: Io;
  exitCode: number;
  /** A BigQuery endpoint and auth other than Google's (a test's server), given in code. */
  bigquery?: BigQueryConnection;
}

/** A mistake in how the command was called: one line on stderr and exit code 2. */
export class UsageError extends Error {}
