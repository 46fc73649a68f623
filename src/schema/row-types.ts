/**
 * TypeScript row types generated from the schemas (src/parser/types/<datatype>.ts), so that a
 * parser's rows are checked at compile time against the table they fill. A development tool:
 * `npm run types` writes the files and src/schema/row-types.test.ts fails when one is stale.
 * json-schema-to-typescript is a devDependency; nothing that runs in production imports this.
 *
 * The schema is handed over adjusted to what rows hold at run time:
 * - every `integer` and `number` is `number | bigint`: the lossless JSON reader gives a bigint
 *   for an integer beyond 2^53, and the validator accepts one wherever a number goes;
 * - `$ref`s to other schemas (`urn:mlab-etl:schema:_common#/$defs/...`) are replaced by their
 *   target, as SchemaSet reads them (a `$ref`'s siblings win), so each file stands alone;
 * - objects admit no other property unless they say so, as the validator and BigQuery do.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { compile } from 'json-schema-to-typescript';
import * as prettier from 'prettier';
import { PACKAGE_ROOT } from '../package-info.js';
import type { SchemaSet } from './schema-set.js';

/** Where the generated files go, one per datatype. */
export const ROW_TYPES_DIR = path.join(PACKAGE_ROOT, 'src', 'parser', 'types');

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** `hopannotation2` -> `Hopannotation2`, `my-data` -> `MyData`. */
export function typeBaseName(datatype: string): string {
  return datatype
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => (w[0] as string).toUpperCase() + w.slice(1))
    .join('');
}

/** The name of a datatype's table row type: `switch` -> `SwitchRow`. */
export function rowTypeName(datatype: string): string {
  return `${typeBaseName(datatype)}Row`;
}

/** The copy of a schema node handed to the generator (see the module comment). */
function forTypes(node: unknown, schemas: SchemaSet, from: string): unknown {
  if (Array.isArray(node)) return node.map((n) => forTypes(n, schemas, from));
  if (!isObject(node)) return node;
  if (typeof node.$ref === 'string' && !node.$ref.startsWith('#')) {
    const { $ref, ...siblings } = node;
    return forTypes({ ...schemas.resolve($ref, from), ...siblings }, schemas, from);
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'x-mlab') continue;
    out[k] =
      k === 'properties' || k === '$defs'
        ? Object.fromEntries(Object.entries(v as Json).map(([name, p]) => [name, forTypes(p, schemas, from)]))
        : forTypes(v, schemas, from);
  }
  const types = Array.isArray(node.type) ? (node.type as unknown[]) : [node.type];
  if (types.includes('integer') || types.includes('number')) {
    out.tsType = types.includes('null') ? 'number | bigint | null' : 'number | bigint';
  }
  return out;
}

/** The text of src/parser/types/<datatype>.ts, formatted as the project's prettier formats it. */
export async function rowTypesModule(schemas: SchemaSet, datatype: string): Promise<string> {
  const base = typeBaseName(datatype);
  const schema = forTypes(schemas.get(datatype), schemas, datatype) as Json;
  // The URN $id would make the generator's $ref resolver look the schema up elsewhere.
  delete schema.$id;
  delete schema.$schema;
  schema.title = rowTypeName(datatype);
  // Named definitions get the datatype's prefix: the contributor surface exports every file's types.
  if (isObject(schema.$defs)) {
    for (const [name, def] of Object.entries(schema.$defs)) {
      if (isObject(def) && def.title === undefined) def.title = `${base}${typeBaseName(name)}`;
    }
  }
  const code = await compile(schema, rowTypeName(datatype), {
    additionalProperties: false,
    bannerComment: [
      '/**',
      ` * Rows of the ${datatype} table, generated from schemas/${datatype}.json by \`npm run types\``,
      ' * (src/schema/row-types.ts). Do not edit: change the schema and run it again.',
      ' */',
    ].join('\n'),
    declareExternallyReferenced: true,
    format: false,
    strictIndexSignatures: true,
    unknownAny: true,
    unreachableDefinitions: false,
  });
  const file = path.join(ROW_TYPES_DIR, `${datatype}.ts`);
  const config = (await prettier.resolveConfig(file)) ?? {};
  return prettier.format(code, { ...config, filepath: file });
}

/** The generated module as it is on disk, or null when there is none. */
export function currentRowTypesModule(datatype: string): string | null {
  try {
    return readFileSync(path.join(ROW_TYPES_DIR, `${datatype}.ts`), 'utf8');
  } catch {
    return null;
  }
}
