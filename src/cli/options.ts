/** Option values shared by several commands, checked as commander hands them over. */
import os from 'node:os';
import { LimitError, parseLimits, type Limits } from '../limits.js';
import { UsageError } from './context.js';

/** Commander accumulator for repeatable options. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function limitsOrUsage(pairs: string[]): Partial<Limits> {
  try {
    return parseLimits(pairs);
  } catch (err) {
    if (err instanceof LimitError) throw new UsageError(err.message);
    throw err;
  }
}

/** `--workers`: a count from 0 (parse on the main thread) to 64, or `auto` (one per core). */
export function workersOption(value: string, name = '--workers'): number {
  if (value === 'auto') return os.availableParallelism();
  if (!/^\d+$/.test(value) || Number(value) > 64)
    throw new UsageError(`${name} must be a whole number from 0 to 64, or auto`);
  return Number(value);
}

export function positiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${name} ${value}: expected a positive integer`);
  return n;
}
