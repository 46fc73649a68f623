#!/usr/bin/env node
/**
 * The `mlab-etl` command. `run(argv, io)` is the whole CLI, so tests call it in-process.
 * Exit codes: 0 success, 1 some archive or entry failed or rows were rejected, 2 bad usage.
 */
import { realpathSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { EntryPool } from '../pipeline/threads/entry-pool.js';
import { EtlError } from '../errors.js';
import { boundHeapGrowth } from './heap.js';
import { DEFAULT_LIMITS, LimitError, parseLimits, type Limits } from '../limits.js';
import { findArchives, localArchive } from '../source/local-source.js';
import { GIT_COMMIT, VERSION } from '../package-info.js';
import { processArchive, type ArchiveResult } from '../pipeline/process-archive.js';
import { Registry } from '../parser/registry.js';
import { bigQuerySchema, SchemaSet } from '../schema/schema-set.js';
import { DEFAULT_DUCKDB_FILE, DEFAULT_SINK, openSink, SinkSpecError } from '../sinks/open-sink.js';
import { tableFor, tableName } from '../schema/tables.js';
import { scaffoldParser, ScaffoldError } from './scaffold.js';
import { ConfigError, SERVE_ENV, serveConfig, type ServeFlags } from '../worker/config.js';
import { schemaMarkdown } from '../schema/schema-docs.js';
import { formatSummary, Progress } from './summary.js';
import { processIo, type Io } from './io.js';

class UsageError extends Error {}

/** Commander accumulator for repeatable options. */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function limitsOrUsage(pairs: string[]): Partial<Limits> {
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

function positiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${name} ${value}: expected a positive integer`);
  return n;
}

interface ParseOptions {
  sink: string;
  datatype?: string;
  experiment?: string;
  date?: string;
  maxEntryBytes: string;
  limit?: string[];
  progress: boolean;
  workers: string;
}

async function parseCommand(paths: string[], opts: ParseOptions, io: Io): Promise<number> {
  const maxEntryBytes = positiveInt(opts.maxEntryBytes, '--max-entry-bytes');
  const workers = workersOption(opts.workers);
  const limits = limitsOrUsage(opts.limit ?? []);
  const toStdout = opts.sink === 'stdout';
  // Trying a parser on one's own file: rows on stdout, everything else on stderr, and only
  // --datatype is needed (nothing is stored, so the experiment and date only name the rows).
  const report = toStdout ? io.stderr : io.stdout;
  if (toStdout && opts.datatype !== undefined) {
    opts.experiment ??= 'local';
    opts.date ??= new Date().toISOString().slice(0, 10);
  }
  const schemas = SchemaSet.load();
  const registry = await Registry.load(schemas);
  const { files, missing } = await findArchives(paths);
  for (const m of missing) io.stderr(`mlab-etl: ${m.error.message}\n`);
  if (files.length === 0) {
    io.stderr(`mlab-etl: no archives (.tgz, .tar.gz, .tar) found in ${paths.join(' ')}\n`);
    return 1;
  }
  const sink = await openSink(opts.sink, schemas, io);
  const sources = files.map((f) =>
    localArchive(f, { datatype: opts.datatype, experiment: opts.experiment, date: opts.date }),
  );
  const progress = new Progress(
    io,
    opts.progress && io.isTTY,
    sources.reduce((n, s) => n + (s.size ?? 0), 0),
    sources.length,
  );
  const results: ArchiveResult[] = [];
  const started = Date.now();
  let pool: EntryPool | undefined;
  try {
    if (workers > 0) pool = await EntryPool.start({ workers });
    for (const source of sources) {
      const result = await processArchive(
        source,
        {
          registry,
          schemas,
          sink,
          version: VERSION,
          gitCommit: GIT_COMMIT,
          maxEntryBytes,
          limits,
          ...(pool ? { pool } : {}),
        },
        { onBytes: (n) => progress.archiveBytes(n) },
      );
      progress.archiveDone(source.size ?? 0);
      results.push(result);
    }
  } finally {
    progress.clear();
    await pool?.close();
    await sink.close();
  }
  report(formatSummary(results, sink.description, (Date.now() - started) / 1000));
  const failed = missing.length > 0 || results.some((r) => r.record.status !== 'ok');
  return failed ? 1 : 0;
}

export async function run(argv: string[], io: Io = processIo): Promise<number> {
  let exitCode = 0;
  const program = new Command('mlab-etl')
    .description('Turns M-Lab measurement archives into validated rows: DuckDB locally, BigQuery in production.')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });

  program
    .command('parse')
    .description('parse archives (.tgz/.tar.gz/.tar files, or directories searched for them) into a sink')
    .argument('<path...>', 'archive files or directories; any other file is read as an archive of that one entry')
    .option('--sink <spec>', 'duckdb:FILE, jsonl:DIR, or stdout (rows as JSONL, problems on stderr)', DEFAULT_SINK)
    .option(
      '--datatype <name>',
      'datatype, for archives whose path does not follow <experiment>/<datatype>/YYYY/MM/DD/',
    )
    .option('--experiment <name>', 'experiment, likewise')
    .option('--date <YYYY-MM-DD>', 'partition date, likewise')
    .option('--max-entry-bytes <n>', 'skip entries larger than this (as stored)', String(DEFAULT_LIMITS.maxEntryBytes))
    .option(
      '--limit <name=value>',
      'change a safety limit (docs/errors.md), e.g. maxJsonDepth=100; repeatable',
      collect,
    )
    .option('--no-progress', 'do not draw progress on the terminal')
    .option(
      '--workers <n>',
      'worker threads that parse entries while this one reads archives and writes rows; 0: parse here too, "auto": one per core',
      '0',
    )
    .action(async (paths: string[], opts: ParseOptions) => {
      exitCode = await parseCommand(paths, opts, io);
    });

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
    .action(async (flags: ServeFlags) => {
      let config;
      try {
        config = serveConfig(flags);
      } catch (err) {
        if (err instanceof ConfigError) throw new UsageError(err.message);
        throw err;
      }
      // The cloud client libraries load only for the commands that use them.
      const { startServe } = await import('../worker/serve.js');
      const handle = await startServe(config, { handleSignals: true });
      // Archives past the grace period were nacked: exit without finishing them.
      process.exit(await handle.done);
    });

  program
    .command('setup')
    .description('create or update the datasets, tables and views of every datatype in the sink (idempotent)')
    .requiredOption('--sink <spec>', 'bigquery:PROJECT[.DATASET_PREFIX] (or duckdb:FILE)')
    .option(
      '--experiment <name...>',
      "experiments to set up a datatype for, instead of its schema's x-mlab.experiments",
    )
    .action(async (opts: { sink: string; experiment?: string[] }) => {
      const schemas = SchemaSet.load();
      const sink = await openSink(opts.sink, schemas, io);
      try {
        const refs = schemas
          .datatypes()
          .flatMap((d) => (opts.experiment ?? schemas.meta(d).experiments ?? []).map((e) => tableFor(e, d)));
        if (sink.setup) {
          for (const a of await sink.setup(refs)) {
            io.stdout(
              `${a.action.padEnd(9)} ${a.kind.padEnd(7)} ${a.object}${a.changes?.length ? ` (${a.changes.join(', ')})` : ''}\n`,
            );
          }
        } else {
          for (const ref of refs) await sink.prepareTable(ref);
          io.stdout(`prepared ${refs.map((r) => tableName(r)).join(', ')} in ${sink.description}\n`);
        }
      } finally {
        await sink.close();
      }
    });

  program
    .command('reprocess')
    .description('publish one message per archive under a gs:// prefix, to parse them again with the workers')
    .argument('<prefix>', 'gs://BUCKET/PREFIX, e.g. gs://archive-measurement-lab/ndt/ndt7/2020/03/')
    .requiredOption('--topic <topic>', 'the topic the workers subscribe to')
    .option('--from <YYYY-MM-DD>', 'first archive date (date directory) to include')
    .option('--to <YYYY-MM-DD>', 'last archive date to include')
    .option('--project <id>', 'Google Cloud project (env GOOGLE_CLOUD_PROJECT)')
    .option('--dry-run', 'list what would be published, publish nothing')
    .action(
      async (
        prefix: string,
        opts: { topic: string; from?: string; to?: string; project?: string; dryRun?: boolean },
      ) => {
        let lastDraw = 0;
        // The cloud client libraries load only for the commands that use them.
        const { reprocess } = await import('../worker/reprocess.js');
        const result = await reprocess({
          prefixUrl: prefix,
          topic: opts.topic,
          from: opts.from,
          to: opts.to,
          project: opts.project,
          dryRun: Boolean(opts.dryRun),
          onProgress: (published, listed) => {
            if (!io.isTTY || Date.now() - lastDraw < 100) return;
            lastDraw = Date.now();
            io.stderr(`\r\x1b[K${published} published, ${listed} listed`);
          },
        });
        if (io.isTTY) io.stderr('\r\x1b[K');
        if (opts.dryRun) for (const f of result.filenames) io.stdout(`${f}\n`);
        io.stdout(
          `${opts.dryRun ? 'Would publish' : 'Published'} ${opts.dryRun ? result.filenames.length : result.published} archives to ${opts.topic} ` +
            `(${result.listed} objects listed, ${result.skipped} not archives or outside the dates)\n`,
        );
      },
    );

  program
    .command('query')
    .description('run SQL over the local DuckDB file')
    .argument('<sql>', 'the query, e.g. "SELECT * FROM utilization.switch LIMIT 5"')
    .option('--db <file>', 'DuckDB file', DEFAULT_DUCKDB_FILE)
    .option('--json', 'one JSON object per row instead of a table')
    .action(async (sql: string, opts: { db: string; json?: boolean }) => {
      const { formatTable, runQuery } = await import('../sinks/duckdb/query.js');
      const result = await runQuery(opts.db, sql);
      if (opts.json) io.stdout(result.rows.map((r) => JSON.stringify(r)).join('\n') + (result.rows.length ? '\n' : ''));
      else io.stdout(`${formatTable(result)}\n`);
    });

  program
    .command('parsers')
    .description('list the registered datatypes')
    .action(async () => {
      const registry = await Registry.load(SchemaSet.load());
      const width = Math.max(0, ...registry.datatypes().map((d) => d.length));
      for (const p of registry.all()) io.stdout(`${p.name.padEnd(width)}  ${p.description}\n`);
    });

  program
    .command('schema')
    .description("print a datatype's row schema")
    .argument('<datatype>')
    .addOption(
      new Option('--format <format>', 'json-schema, bigquery (bq mk --schema format) or markdown')
        .choices(['json-schema', 'bigquery', 'markdown'])
        .default('json-schema'),
    )
    .option('--bigquery', 'same as --format bigquery')
    .action((datatype: string, opts: { format: string; bigquery?: boolean }) => {
      const schemas = SchemaSet.load();
      if (!schemas.has(datatype) || datatype.startsWith('_')) {
        throw new UsageError(`no schema for datatype ${datatype} (known: ${schemas.datatypes().join(', ')})`);
      }
      const format = opts.bigquery ? 'bigquery' : opts.format;
      if (format === 'markdown') io.stdout(schemaMarkdown(schemas, datatype));
      else {
        const out = format === 'bigquery' ? bigQuerySchema(schemas.fields(datatype)) : schemas.get(datatype);
        io.stdout(`${JSON.stringify(out, null, 2)}\n`);
      }
    });

  program
    .command('new-parser')
    .description('scaffold a new datatype: parsers/<datatype>.ts, schemas/<datatype>.json and a first golden case')
    .argument('<datatype>')
    .requiredOption(
      '--experiment <name>',
      'required: the experiment whose archives hold it, gs://<bucket>/<experiment>/<datatype>/',
    )
    .option('--root <dir>', 'the mlab-etl checkout to write into', '.')
    .action((datatype: string, opts: { root: string; experiment: string }) => {
      let made;
      try {
        made = scaffoldParser(opts.root, datatype, opts.experiment);
      } catch (err) {
        if (err instanceof ScaffoldError) throw new UsageError(err.message);
        throw err;
      }
      io.stdout(`Created\n${made.files.map((f) => `  ${f}`).join('\n')}\n${made.next}\n`);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof UsageError || err instanceof SinkSpecError) {
      io.stderr(`mlab-etl: ${err.message}\n`);
      return 2;
    }
    if (err instanceof EtlError) {
      io.stderr(`mlab-etl: ${err.code}: ${err.message}\n`);
      return 1;
    }
    io.stderr(`mlab-etl: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  boundHeapGrowth();
  process.exitCode = await run(process.argv.slice(2));
}
