import type { Io } from './io.js';

/** What a command's action shares with `run`: where it writes, and the exit code it leaves. */
export interface CommandContext {
  io: Io;
  exitCode: number;
}

/** A mistake in how the command was called: one line on stderr and exit code 2. */
export class UsageError extends Error {}
