/** `mlab-etl new-parser`: the files of a new datatype, for a contributor to fill in. */
import type { Command } from 'commander';
import { UsageError, type CommandContext } from '../context.js';
import { scaffoldParser, ScaffoldError } from '../scaffold.js';

export function addNewParserCommand(program: Command, { io }: CommandContext): void {
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
}
