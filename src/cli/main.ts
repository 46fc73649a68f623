#!/usr/bin/env node
/**
 * The `mlab-etl` command. `run(argv, io)` is the whole CLI, so tests call it in-process; each
 * command is in commands/.
 * Exit codes: 0 success, 1 some archive or entry failed or rows were rejected, 2 bad usage.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { EtlError } from '../errors.js';
import { boundHeapGrowth } from './heap.js';
import { VERSION } from '../package-info.js';
import { SinkSpecError, type BigQueryConnection } from '../sinks/open-sink.js';
import { UsageError, type CommandContext } from './context.js';
import { processIo, type Io } from './io.js';
import { addNewParserCommand } from './commands/new-parser.js';
import { addParseCommand } from './commands/parse.js';
import { addParsersCommand } from './commands/parsers.js';
import { addQueryCommand } from './commands/query.js';
import { addReprocessCommand } from './commands/reprocess.js';
import { addSchemaCommand } from './commands/schema.js';
import { addServeCommand } from './commands/serve.js';
import { addSetupCommand } from './commands/setup.js';

function program(context: CommandContext): Command {
  const program = new Command('mlab-etl')
    .description('Turns M-Lab measurement archives into validated rows: DuckDB locally, BigQuery in production.')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: context.io.stdout, writeErr: context.io.stderr });
  addParseCommand(program, context);
  addServeCommand(program, context);
  addSetupCommand(program, context);
  addReprocessCommand(program, context);
  addQueryCommand(program, context);
  addParsersCommand(program, context);
  addSchemaCommand(program, context);
  addNewParserCommand(program, context);
  return program;
}

/** Services a test passes in code: the only way to point BigQuery sinks elsewhere than at Google. */
export interface Connections {
  bigquery?: BigQueryConnection;
}

export async function run(argv: string[], io: Io = processIo, connections: Connections = {}): Promise<number> {
  const context: CommandContext = { io, exitCode: 0, ...connections };
  try {
    await program(context).parseAsync(argv, { from: 'user' });
    return context.exitCode;
  } catch (err) {
    return exitCodeOf(err, io);
  }
}

/** Usage mistakes are 2, failures 1; each reported on one line unless it is a bug. */
function exitCodeOf(err: unknown, io: Io): number {
  // Commander has already written its message (or the help, or the version).
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
