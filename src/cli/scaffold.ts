/**
 * `mlab-etl new-parser <datatype>`: the three files of a new datatype, registered and passing the
 * contract and golden tests as generated, for the contributor to edit into the real thing.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SchemaSet } from '../schema/schema-set.js';
import { schemaMarkdown } from '../schema/schema-docs.js';
import { EXPERIMENT_NAME } from '../source/archive-path.js';

export const DATATYPE_NAME = /^[a-z][a-z0-9-]*$/;

export class ScaffoldError extends Error {
  override name = 'ScaffoldError';
}

function parserModule(datatype: string, experiment: string): string {
  return `/**
 * ${datatype} (archives under ${experiment}/${datatype}/): TODO say what the experiment measures and
 * what one input file holds.
 * Scaffolded by \`mlab-etl new-parser\`: each JSONL record with a UUID becomes one row.
 */
import { defineParser, isRecord, jsonLines } from '../src/parser/index.js';

export default defineParser({
  name: '${datatype}',
  description: 'TODO one line: what a row of ${datatype} is',
  // A cheap test on the entry name inside the archive.
  accepts: (name) => name.endsWith('.jsonl'),

  async *parse(input, context) {
    for await (const item of jsonLines(input.body, input.limits)) {
      if ('error' in item) {
        context.skip('invalid_json', item.error.message, item.text);
        continue;
      }
      const record = item.value;
      if (!isRecord(record) || typeof record.UUID !== 'string') {
        context.skip('invalid_record', \`line \${item.line}: no UUID\`);
        continue;
      }
      // The pipeline adds date and parser provenance and validates the row against schemas/${datatype}.json.
      yield { id: record.UUID, raw: { UUID: record.UUID, Value: record.Value } };
    }
  },
});
`;
}

function schema(datatype: string, experiment: string): unknown {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: `urn:mlab-etl:schema:${datatype}`,
    title: datatype,
    description: `TODO what one row of ${datatype} is.`,
    'x-mlab': { idKind: 'connection-uuid', experiments: [experiment] },
    type: 'object',
    properties: {
      id: { $ref: 'urn:mlab-etl:schema:_common#/$defs/id' },
      date: { $ref: 'urn:mlab-etl:schema:_common#/$defs/date' },
      parser: { $ref: 'urn:mlab-etl:schema:_common#/$defs/parser' },
      raw: {
        type: 'object',
        description: 'TODO the source record.',
        properties: {
          UUID: { type: 'string', description: 'The connection UUID.' },
          Value: { type: 'integer', description: 'TODO what the value is, with its unit.' },
        },
        required: ['UUID'],
      },
    },
    required: ['id', 'date', 'parser', 'raw'],
  };
}

/**
 * JSON as prettier writes it (the repository's check): objects one key a line, short arrays of
 * scalars on one line, so a scaffolded schema passes `npm run check` before it is edited.
 */
function jsonText(value: unknown): string {
  const text = JSON.stringify(value, null, 2).replace(
    /\[\n\s+([^[\]{}\n]+(?:\n\s+[^[\]{}\n]+)*)\n\s*\]/g,
    (_, items: string) => `[${items.split(/\n\s+/).join(' ')}]`,
  );
  return `${text}\n`;
}

const SAMPLE = [
  { UUID: 'example-host_1600000000_0000000000000001', Value: 1 },
  { UUID: 'example-host_1600000000_0000000000000002', Value: 9007199254740993n },
];

export interface Scaffolded {
  files: string[];
  /** What to do next, for the command to print. */
  next: string;
}

/**
 * Writes the three parts of a datatype under `root` (a checkout of mlab-etl). Never overwrites.
 * The experiment is the directory above the datatype's in the archive paths: it names the tables
 * (`raw_<experiment>.<datatype>`) and the golden cases' archives.
 */
export function scaffoldParser(root: string, datatype: string, experiment: string): Scaffolded {
  if (!DATATYPE_NAME.test(datatype)) {
    throw new ScaffoldError(
      `datatype ${JSON.stringify(datatype)}: use lower-case letters, digits and -, starting with a letter`,
    );
  }
  if (!EXPERIMENT_NAME.test(experiment)) {
    throw new ScaffoldError(
      `experiment ${JSON.stringify(experiment)}: use lower-case letters and -, starting with a letter, ` +
        `as in the archive paths gs://<bucket>/<experiment>/<datatype>/`,
    );
  }
  if (!existsSync(path.join(root, 'parsers')) || !existsSync(path.join(root, 'schemas'))) {
    throw new ScaffoldError(`${root} is not an mlab-etl checkout (no parsers/ and schemas/)`);
  }
  const caseDir = path.join(root, 'testdata', datatype, 'first-case');
  const input = SAMPLE.map((r) => `{"UUID":"${r.UUID}","Value":${r.Value}}`).join('\n') + '\n';
  const expected =
    SAMPLE.map((r) => {
      const value = typeof r.Value === 'bigint' ? `"${r.Value}"` : String(r.Value);
      return `{"id":"${r.UUID}","date":"2020-09-09","raw":{"UUID":"${r.UUID}","Value":${value}}}`;
    }).join('\n') + '\n';
  const files: [string, string][] = [
    [path.join(root, 'parsers', `${datatype}.ts`), parserModule(datatype, experiment)],
    [path.join(root, 'schemas', `${datatype}.json`), jsonText(schema(datatype, experiment))],
    [path.join(caseDir, `sample-${datatype}.jsonl`), input],
    [path.join(caseDir, 'case.json'), jsonText({ date: '2020-09-09', experiment })],
    [path.join(caseDir, 'expected.jsonl'), expected],
  ];
  const existing = files.map(([f]) => f).filter((f) => existsSync(f));
  if (existing.length > 0) throw new ScaffoldError(`not overwriting ${existing.join(', ')}`);
  for (const [file, text] of files) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  // The generated table reference, which a test keeps in step with the schema.
  const doc = path.join(root, 'docs', 'schemas', `${datatype}.md`);
  mkdirSync(path.dirname(doc), { recursive: true });
  writeFileSync(doc, schemaMarkdown(SchemaSet.load(path.join(root, 'schemas')), datatype));
  return {
    files: [...files.map(([f]) => f), doc].map((f) => path.relative(root, f)),
    next:
      `Next: edit them (see parsers/README.md), add real inputs as testdata/${datatype}/<case>/, ` +
      `write their expectations with UPDATE_GOLDEN=1 npx vitest run test/contracts/golden.test.ts ` +
      `and review them, then npm run format and npm run check; npm run build before mlab-etl parse runs it.`,
  };
}
