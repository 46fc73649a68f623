/** `mlab-etl parse`: archives on disk into a sink, with a summary of what each one gave. */
import { InvalidArgumentError, type Command } from 'commander';
import { EntryPool } from '../../pipeline/threads/entry-pool.js';
import { DEFAULT_LIMITS, type Limits } from '../../limits.js';
import { identifyLocalArchive, isRealDate, ISO_DATE } from '../../source/archive-path.js';
import { findArchives, localArchive } from '../../source/local-source.js';
import { VERSION } from '../../package-info.js';
import { processArchive, type ArchiveResult } from '../../pipeline/process-archive.js';
import { removeScratch } from '../../scratch.js';
import { Registry } from '../../parser/registry.js';
import { SchemaSet } from '../../schema/schema-set.js';
import { DEFAULT_SINK, openSink } from '../../sinks/open-sink.js';
import { UsageError, type CommandContext } from '../context.js';
import {
  given,
  gitCommitOption,
  integer,
  limitOption,
  option,
  sinkSettings,
  withSinkOptions,
  workersOption,
  type SinkOptionValues,
} from '../options.js';
import { formatSummary, Progress } from '../summary.js';

interface ParseOptions extends SinkOptionValues {
  sink: string;
  gitCommit: string | null;
  datatype?: string;
  experiment?: string;
  date?: string;
  maxEntryBytes: number;
  limit: Partial<Limits>;
  progress: boolean;
  workers: number;
}

export function addParseCommand(program: Command, context: CommandContext): void {
  const command = program
    .command('parse')
    .description('parse archives (.tgz/.tar.gz/.tar files, or directories searched for them) into a sink')
    .argument('<path...>', 'archive files or directories; any other file is read as an archive of that one entry')
    .addOption(
      option('--sink <spec>', 'duckdb:FILE, jsonl:DIR, or stdout (rows as JSONL, problems on stderr)', {
        default: DEFAULT_SINK,
      }),
    )
    .option(
      '--datatype <name>',
      'datatype, for archives whose path does not follow <experiment>/<datatype>/YYYY/MM/DD/',
    )
    .option('--experiment <name>', 'experiment, likewise')
    .addOption(option('--date <YYYY-MM-DD>', 'partition date, likewise', { parse: isoDate }))
    .addOption(
      option('--max-entry-bytes <n>', 'skip entries larger than this (as stored)', {
        default: DEFAULT_LIMITS.maxEntryBytes,
        parse: integer(1),
      }),
    )
    .addOption(limitOption('maxJsonDepth=100'))
    .option('--no-progress', 'do not draw progress on the terminal')
    .addOption(
      workersOption(
        'worker threads that parse entries while this one reads archives and writes rows; 0: parse here too, "auto": one per core',
      ),
    );
  withSinkOptions(command)
    .addOption(gitCommitOption())
    .action(async (paths: string[], opts: ParseOptions) => {
      context.exitCode = await parse(paths, opts, context);
    });
}

async function parse(paths: string[], opts: ParseOptions, { io, bigquery }: CommandContext): Promise<number> {
  const { maxEntryBytes, workers, limit: limits } = opts;
  const toStdout = opts.sink === 'stdout';
  // Trying a parser on one's own file: rows on stdout, everything else on stderr, and only
  // --datatype is needed (nothing is stored, so the experiment and date only name the rows).
  const report = toStdout ? io.stderr : io.stdout;
  const named = { datatype: opts.datatype, experiment: opts.experiment, date: opts.date };
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
  contradictions(files, named);
  const sink = await openSink(opts.sink, schemas, io, sinkSettings(opts, bigquery));
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
  // Interrupted, the run leaves no temporary file behind: what is committed stays, the archive
  // being parsed has no ledger record and is parsed again by the same command.
  const stop = (signal: NodeJS.Signals): void => {
    progress.clear();
    removeScratch();
    io.stderr(
      `mlab-etl: ${signal}: stopped after ${results.length} of ${sources.length} archives; ` +
        'those are stored and in the ledger, the one being parsed is not: run the same command again to finish\n',
    );
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
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
          gitCommit: given(opts.gitCommit),
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
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    progress.clear();
    await pool?.close();
    await sink.close();
  }
  report(formatSummary(results, sink.description, (Date.now() - started) / 1000));
  const failed = missing.length > 0 || results.some((r) => r.record.status !== 'ok');
  return failed ? 1 : 0;
}

/** `--date`: a real calendar date, YYYY-MM-DD (a bad one is bad usage, not a failed archive). */
function isoDate(text: string): string {
  const m = ISO_DATE.exec(text);
  if (!m || !isRealDate(Number(m[1]), Number(m[2]), Number(m[3])))
    throw new InvalidArgumentError('Expected YYYY-MM-DD.');
  return text;
}

/**
 * `--datatype`, `--experiment` and `--date` name archives whose path does not. For a path that
 * does, a different value is a mistake, not an override: the rows would go to another table or
 * partition than the archive's own. Stops with the files and both values.
 */
function contradictions(files: string[], opts: Pick<ParseOptions, 'datatype' | 'experiment' | 'date'>): void {
  const found: string[] = [];
  for (const file of files) {
    let own;
    try {
      own = identifyLocalArchive(file);
    } catch {
      continue; // the path says nothing: the options name it
    }
    for (const key of ['datatype', 'experiment', 'date'] as const) {
      const given = opts[key];
      if (given !== undefined && given !== own[key])
        found.push(`${file}: --${key} ${given}, but its path says ${own[key]}`);
    }
  }
  if (found.length > 0) {
    throw new UsageError(
      `${found.slice(0, 5).join('; ')}${found.length > 5 ? ` (and ${found.length - 5} more)` : ''}: leave the option out for archives whose path says it`,
    );
  }
}
