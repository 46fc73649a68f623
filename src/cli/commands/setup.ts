/** `mlab-etl setup`: the datasets, tables and views of every datatype, created or brought up to date. */
import type { Command } from 'commander';
import { SchemaSet } from '../../schema/schema-set.js';
import { tableFor, tableName } from '../../schema/tables.js';
import { openSink } from '../../sinks/open-sink.js';
import type { CommandContext } from '../context.js';
import { sinkSettings, withSinkOptions, type SinkOptionValues } from '../options.js';

interface SetupOptions extends SinkOptionValues {
  sink: string;
  experiment?: string[];
}

export function addSetupCommand(program: Command, { io, bigquery }: CommandContext): void {
  const command = program
    .command('setup')
    .description('create or update the datasets, tables and views of every datatype in the sink (idempotent)')
    .requiredOption('--sink <spec>', 'bigquery:PROJECT[.DATASET_PREFIX] (or duckdb:FILE)')
    .option(
      '--experiment <name...>',
      "experiments to set up a datatype for, instead of its schema's x-mlab.experiments",
    );
  withSinkOptions(command).action(async (opts: SetupOptions) => {
    const schemas = SchemaSet.load();
    const sink = await openSink(opts.sink, schemas, io, sinkSettings(opts, bigquery));
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
}
