/** `mlab-etl schema`: a datatype's row schema, as JSON Schema, BigQuery fields or Markdown. */
import { Option, type Command } from 'commander';
import { bigQuerySchema, SchemaSet } from '../../schema/schema-set.js';
import { schemaMarkdown } from '../../schema/schema-docs.js';
import { UsageError, type CommandContext } from '../context.js';

export function addSchemaCommand(program: Command, { io }: CommandContext): void {
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
}
