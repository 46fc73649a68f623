/**
 * The options' declarations: each option's flag, environment variable, default and check, in
 * one place. Commander reads the variables (the flag wins) and runs the checks before a
 * command starts, so a bad value stops it with a message naming the option and exit code 2.
 * Options used by several commands are declared here; the others in their command's file,
 * with `option()`.
 */
import os from 'node:os';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { LimitError, parseLimits, type Limits } from '../limits.js';
import { checkoutHead } from '../package-info.js';
import { DEFAULT_BIGQUERY_INSERTS_IN_FLIGHT, DEFAULT_DUCKDB_MEMORY } from '../sinks/defaults.js';
import type { BigQueryConnection, SinkSettings } from '../sinks/open-sink.js';

export interface OptionSpec<T> {
  /** The environment variable read when the flag is not given. */
  env?: string;
  /** The value when neither is given. */
  default?: T;
  /** How --help shows the default, when the value alone would not say it. */
  defaultText?: string;
  /** Text to value; throws InvalidArgumentError saying what was expected. */
  parse?: (text: string, previous: T) => T;
}

/**
 * An option. An empty variable counts as unset, as a ConfigMap leaves a value out: it keeps
 * the default (commander turns a null or absent one into '', which given() reads as absent).
 */
export function option<T>(flags: string, description: string, spec: OptionSpec<T> = {}): Option {
  const declared = new Option(flags, description);
  if (spec.env !== undefined) declared.env(spec.env);
  if (spec.default !== undefined) declared.default(spec.default, spec.defaultText);
  const parse = spec.parse ?? (spec.env === undefined ? undefined : (text: string) => text as T);
  if (parse) declared.argParser((text: string, previous: T) => (text.trim() === '' ? previous : parse(text, previous)));
  return declared;
}

/** '' (an empty variable) and undefined are both "not given". */
export function given(value: string | null | undefined): string | null {
  return value === undefined || value === '' ? null : value;
}

/** An integer from min to max. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `Expected an integer of at least ${min}.`
          : `Expected an integer from ${min} to ${max}.`,
      );
    }
    return n;
  };
}

/** `--workers`: a count from 0 (parse on the main thread) to 64, or `auto` (one per core). */
export function workers(text: string): number {
  if (text.trim() === 'auto') return os.availableParallelism();
  try {
    return integer(0, 64)(text);
  } catch {
    throw new InvalidArgumentError('Expected a whole number from 0 to 64, or auto.');
  }
}

/** A repeatable option whose values may also be comma-separated (as its variable holds them). */
export function list(check: (item: string) => void = () => {}): (text: string, previous?: string[]) => string[] {
  return (text, previous = []) => {
    const items = text
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    items.forEach(check);
    return [...previous, ...items];
  };
}

/** `--limit name=value`, repeatable and comma-separated: safety limits changed from their defaults. */
export function limits(text: string, previous: Partial<Limits> = {}): Partial<Limits> {
  try {
    return { ...previous, ...parseLimits([text]) };
  } catch (err) {
    if (err instanceof LimitError) throw new InvalidArgumentError(err.message);
    throw err;
  }
}

export const workersOption = (description: string, env?: string): Option =>
  option('--workers <n>', description, { env, default: 0, parse: workers });

export const limitOption = (example: string, env?: string): Option =>
  option(
    '--limit <name=value>',
    `change a safety limit, e.g. ${example}; repeatable${env ? ', comma-separated' : ''}`,
    { env, default: {}, defaultText: 'see docs/errors.md', parse: limits },
  );

export const projectOption = (): Option =>
  option('--project <id>', 'Google Cloud project', {
    env: 'GOOGLE_CLOUD_PROJECT',
    default: null,
    defaultText: 'the credentials tell',
  });

/** The source revision recorded with each archive in the ledger. */
export const gitCommitOption = (): Option =>
  option('--git-commit <sha>', 'source revision recorded in the ledger', {
    env: 'MLAB_ETL_GIT_COMMIT',
    default: checkoutHead(),
    defaultText: "the checkout's HEAD",
  });

/** The values of withSinkOptions' options. */
export interface SinkOptionValues {
  duckdbMemoryLimit: string;
  bigqueryInsertsInFlight: number;
}

/** How the commands that write rows open their sink, besides its spec. */
export function withSinkOptions(command: Command): Command {
  return command
    .addOption(
      option('--duckdb-memory-limit <size>', "a DuckDB sink's memory_limit, e.g. 1GB", {
        env: 'MLAB_ETL_DUCKDB_MEMORY_LIMIT',
        default: DEFAULT_DUCKDB_MEMORY,
      }),
    )
    .addOption(
      option(
        '--bigquery-inserts-in-flight <n>',
        'insertAll requests a BigQuery sink sends at once, each of up to 10 MB of rows held until BigQuery answers',
        {
          env: 'MLAB_ETL_BIGQUERY_INSERTS_IN_FLIGHT',
          default: DEFAULT_BIGQUERY_INSERTS_IN_FLIGHT,
          parse: integer(1, 256),
        },
      ),
    );
}

/** The sink settings of these options, with a test's BigQuery server if it gave one. */
export function sinkSettings(values: SinkOptionValues, bigquery?: BigQueryConnection): SinkSettings {
  return {
    duckdbMemoryLimit: values.duckdbMemoryLimit,
    bigquery: { maxInFlight: values.bigqueryInsertsInFlight, ...bigquery },
  };
}
