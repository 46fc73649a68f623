/** The Markdown reference of a table, generated from its JSON Schema (docs/schemas/<datatype>.md). */
import { bigQuerySchema, type Field, type SchemaSet } from './schema-set.js';
import { joinsAnnotations } from './views.js';

function escapeCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function rows(fields: Field[], prefix: string): string[] {
  return fields.flatMap((f) => {
    const type = (bigQuerySchema([f])[0] as { type: string }).type;
    const line = `| \`${prefix}${f.name}\` | ${type} | ${f.mode} | ${escapeCell(f.description)} |`;
    return [line, ...rows(f.fields ?? [], `${prefix}${f.name}.`)];
  });
}

export function schemaMarkdown(schemas: SchemaSet, datatype: string, experimentHint = '<experiment>'): string {
  const schema = schemas.get(datatype);
  const description = typeof schema.description === 'string' ? schema.description : '';
  return [
    `<!-- Generated from schemas/${datatype}.json by \`mlab-etl schema ${datatype} --format markdown\` (npm run docs). Do not edit. -->`,
    '',
    `# ${datatype}`,
    '',
    description,
    '',
    `Table \`raw_${experimentHint}.${datatype}\`, DAY-partitioned on \`date\`; analysts query the view \`${experimentHint}.${datatype}\` (one row per \`id\` and \`date\`, the newest \`parser.Time\` winning)` +
      (joinsAnnotations(schemas, datatype)
        ? ', which adds `server` and `client` from the annotation2 rows of the same connection UUID dated the same day or the day before.'
        : '.'),
    '',
    '| field | type | mode | description |',
    '|---|---|---|---|',
    ...rows(schemas.fields(datatype), ''),
    '',
  ].join('\n');
}
