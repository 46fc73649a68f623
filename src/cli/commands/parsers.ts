/** `mlab-etl parsers`: the registered datatypes. */
import type { Command } from 'commander';
import { Registry } from '../../parser/registry.js';
import { SchemaSet } from '../../schema/schema-set.js';
import type { CommandContext } from '../context.js';

export function addParsersCommand(program: Command, { io }: CommandContext): void {
  program
    .command('parsers')
    .description('list the registered datatypes')
    .action(async () => {
      const registry = await Registry.load(SchemaSet.load());
      const width = Math.max(0, ...registry.datatypes().map((d) => d.length));
      for (const p of registry.all()) io.stdout(`${p.name.padEnd(width)}  ${p.description}\n`);
    });
}
