/**
 * Schemas are the single source of truth: one JSON Schema (draft 2020-12) per datatype in
 * `schemas/<datatype>.json` drives the row validator, the DuckDB table, the BigQuery table and
 * the docs. Standard columns are shared from `schemas/_common.json` through `$ref`.
 *
 * Integers: `"type": "integer"` is a signed 64-bit integer (BigQuery INT64, DuckDB BIGINT);
 * with `"format": "uint64"` an unsigned one (DuckDB UBIGINT, BigQuery NUMERIC, which holds it
 * exactly). In rows, integers beyond +/-2^53 are `bigint`; the validator accepts them and checks
 * the 64-bit range. Objects reject unknown properties unless they say otherwise, as BigQuery does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  Ajv2020,
  _,
  str,
  type AnySchemaObject,
  type ErrorObject,
  type KeywordCxt,
  type ValidateFunction,
} from 'ajv/dist/2020.js';
import * as ajvFormats from 'ajv-formats';
import { SCHEMAS_DIR } from '../package-info.js';

// ajv-formats is CommonJS: under NodeNext the plugin is its `default` export.
const addFormats = ajvFormats.default as unknown as (ajv: Ajv2020, formats: string[]) => Ajv2020;

export type ColumnType = 'STRING' | 'INT64' | 'UINT64' | 'FLOAT64' | 'BOOL' | 'DATE' | 'TIMESTAMP' | 'RECORD';
export type ColumnMode = 'REQUIRED' | 'NULLABLE' | 'REPEATED';

/** A column as the sinks see it, derived from the JSON Schema. */
export interface Field {
  name: string;
  type: ColumnType;
  mode: ColumnMode;
  description: string;
  fields?: Field[];
}

type Json = Record<string, unknown>;

/** What a schema says about its table under `x-mlab`. */
export interface SchemaMeta {
  /** `connection-uuid`: ids are socket UUIDs; the analysts' view joins annotation2 on them. */
  idKind?: string;
  /** Schema-only datatypes: the input format the generic parser reads (`jsonl`). */
  format?: string;
  /** Schema-only datatypes: JSON pointer to the id in each record, e.g. `/UUID`. */
  id?: string;
  /** Schema-only datatypes: regular expression the entry names must match. */
  accepts?: string;
  /** One-line description for `mlab-etl parsers` (schema-only datatypes). */
  parserDescription?: string;
  /** The table is joined into other datatypes' views (annotation2): no partition filter required. */
  annotates?: boolean;
  /** Experiments whose archives hold this datatype, for `mlab-etl setup`. */
  experiments?: string[];
}
const SCHEMA_ID_PREFIX = 'urn:mlab-etl:schema:';

export class SchemaError extends Error {
  override name = 'SchemaError';
}

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The schema's types as a list, "null" removed, and whether "null" was there. */
function typesOf(node: Json): { types: string[]; nullable: boolean } {
  const t = node.type;
  const list = Array.isArray(t) ? (t as string[]) : typeof t === 'string' ? [t] : [];
  return { types: list.filter((x) => x !== 'null'), nullable: list.includes('null') };
}

/**
 * The copy of a schema that ajv compiles: integer and number nodes use keywords that also accept
 * bigint, and objects default to additionalProperties false.
 */
function forAjv(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(forAjv);
  if (!isObject(node)) return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    out[k] = k === 'properties' || k === '$defs' ? mapValues(v as Json, forAjv) : forAjv(v);
  }
  const { types, nullable } = typesOf(node);
  if (types.length === 1 && (types[0] === 'integer' || types[0] === 'number')) {
    delete out.type;
    delete out.format;
    const kind = types[0] === 'number' ? 'number' : node.format === 'uint64' ? 'uint64' : 'int64';
    out['x-integer'] = `${kind}${nullable ? '?' : ''}`;
  }
  if (types.includes('object') && out.properties !== undefined && out.additionalProperties === undefined) {
    out.additionalProperties = false;
  }
  return out;
}

function mapValues(obj: Json, f: (v: unknown) => unknown): Json {
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, f(v)]));
}

function newAjv(): Ajv2020 {
  const ajv = new Ajv2020({ strict: true, strictTypes: false, allErrors: false });
  addFormats(ajv, ['date', 'date-time']);
  ajv.addKeyword({ keyword: 'x-mlab' }); // table metadata, not validation
  ajv.addKeyword({
    keyword: 'x-integer',
    schemaType: 'string',
    error: {
      message: (cxt) =>
        str`must be ${
          String(cxt.schema).startsWith('number')
            ? 'a number'
            : String(cxt.schema).startsWith('uint64')
              ? 'an unsigned 64-bit integer'
              : 'a signed 64-bit integer'
        }`,
    },
    code(cxt: KeywordCxt) {
      const { data } = cxt;
      const spec = String(cxt.schema);
      const nullable = spec.endsWith('?');
      const kind = spec.replace('?', '');
      const isNull = nullable ? _`${data} === null || ` : _``;
      if (kind === 'number') {
        cxt.fail(_`!(${isNull}(typeof ${data} == "number" ? Number.isFinite(${data}) : typeof ${data} == "bigint"))`);
        return;
      }
      // A number that is not a safe integer was rounded somewhere: reject it rather than store a
      // wrong value. The bounds are bigint literals in the generated code: BigInt("...") there
      // parsed two strings for every bigint checked.
      cxt.fail(
        kind === 'uint64'
          ? _`!(${isNull}(typeof ${data} == "number" ? Number.isSafeInteger(${data}) && ${data} >= 0 : typeof ${data} == "bigint" && ${data} >= 0n && ${data} <= 18446744073709551615n))`
          : _`!(${isNull}(typeof ${data} == "number" ? Number.isSafeInteger(${data}) : typeof ${data} == "bigint" && ${data} >= -9223372036854775808n && ${data} <= 9223372036854775807n))`,
      );
    },
  });
  return ajv;
}

export class SchemaSet {
  private readonly ajv = newAjv();
  private readonly validators = new Map<string, ValidateFunction>();

  private constructor(private readonly schemas: Map<string, Json>) {
    for (const [name, schema] of schemas) {
      const id = schema.$id;
      if (id !== `${SCHEMA_ID_PREFIX}${name}`) {
        throw new SchemaError(
          `schemas/${name}.json: $id must be "${SCHEMA_ID_PREFIX}${name}", found ${JSON.stringify(id)}`,
        );
      }
      this.ajv.addSchema(forAjv(schema) as AnySchemaObject);
    }
  }

  /** Reads every `*.json` of the directory. Names starting with `_` are shared definitions and ledger tables. */
  static load(dir: string = SCHEMAS_DIR): SchemaSet {
    const schemas = new Map<string, Json>();
    for (const file of readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()) {
      const name = file.slice(0, -'.json'.length);
      try {
        schemas.set(name, JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Json);
      } catch (err) {
        throw new SchemaError(`${path.join(dir, file)}: ${(err as Error).message}`);
      }
    }
    return new SchemaSet(schemas);
  }

  /** Datatypes with a schema (shared `_` schemas excluded). */
  datatypes(): string[] {
    return [...this.schemas.keys()].filter((n) => !n.startsWith('_'));
  }

  has(name: string): boolean {
    return this.schemas.has(name);
  }

  get(name: string): Json {
    const s = this.schemas.get(name);
    if (!s) throw new SchemaError(`no schema named ${name} (schemas/${name}.json)`);
    return s;
  }

  /** The table metadata a schema declares under `x-mlab` (idKind, and for schema-only datatypes format and id). */
  meta(name: string): SchemaMeta {
    const m = this.get(name)['x-mlab'];
    return isObject(m) ? m : {};
  }

  /** The compiled validator of a schema (compiled once). Throws SchemaError when the schema does not compile. */
  validator(name: string): ValidateFunction {
    let v = this.validators.get(name);
    if (!v) {
      this.get(name);
      try {
        v = this.ajv.getSchema(`${SCHEMA_ID_PREFIX}${name}`);
      } catch (err) {
        throw new SchemaError(`schemas/${name}.json does not compile: ${(err as Error).message}`);
      }
      if (!v) throw new SchemaError(`schemas/${name}.json did not compile`);
      this.validators.set(name, v);
    }
    return v;
  }

  /** The columns of a table, in schema order, `$ref`s resolved. */
  fields(name: string): Field[] {
    const schema = this.get(name);
    return objectFields(schema, name, (ref) => this.resolve(ref, name));
  }

  /** The node a `$ref` of schema `from` points at: `#/...` within it, `urn:mlab-etl:schema:<name>#/...` in another. */
  resolve(ref: string, from: string): Json {
    const [base, pointer = ''] = ref.split('#');
    const doc = base
      ? this.get(base.startsWith(SCHEMA_ID_PREFIX) ? base.slice(SCHEMA_ID_PREFIX.length) : base)
      : this.get(from);
    let node: unknown = doc;
    for (const part of pointer.split('/').filter(Boolean)) {
      node = isObject(node) ? node[decodeURIComponent(part.replace(/~1/g, '/').replace(/~0/g, '~'))] : undefined;
    }
    if (!isObject(node)) throw new SchemaError(`schemas/${from}.json: $ref ${ref} does not resolve`);
    return node;
  }
}

function objectFields(node: Json, where: string, resolve: (ref: string) => Json): Field[] {
  const props = isObject(node.properties) ? node.properties : {};
  const required = new Set(Array.isArray(node.required) ? (node.required as string[]) : []);
  return Object.entries(props).map(([name, raw]) => {
    const field = toField(name, raw as Json, `${where}.${name}`, resolve);
    if (field.mode !== 'REPEATED' && required.has(name)) field.mode = 'REQUIRED';
    return field;
  });
}

function toField(name: string, raw: Json, where: string, resolve: (ref: string) => Json): Field {
  // A $ref's siblings (description) override what the target says.
  const node: Json = typeof raw.$ref === 'string' ? { ...resolve(raw.$ref), ...raw, $ref: undefined } : raw;
  const description = typeof node.description === 'string' ? node.description : '';
  const { types } = typesOf(node);
  if (types.length !== 1)
    throw new SchemaError(`${where}: needs exactly one type besides "null", found ${JSON.stringify(node.type)}`);
  const type = types[0] as string;
  if (type === 'array') {
    if (!isObject(node.items)) throw new SchemaError(`${where}: an array needs "items"`);
    const item = toField(name, { description, ...node.items }, `${where}[]`, resolve);
    if (item.mode === 'REPEATED') throw new SchemaError(`${where}: arrays of arrays have no BigQuery column type`);
    return { ...item, description, mode: 'REPEATED' };
  }
  const base = { name, mode: 'NULLABLE' as ColumnMode, description };
  switch (type) {
    case 'object':
      return { ...base, type: 'RECORD', fields: objectFields(node, where, resolve) };
    case 'string':
      return { ...base, type: node.format === 'date-time' ? 'TIMESTAMP' : node.format === 'date' ? 'DATE' : 'STRING' };
    case 'integer':
      return { ...base, type: node.format === 'uint64' ? 'UINT64' : 'INT64' };
    case 'number':
      return { ...base, type: 'FLOAT64' };
    case 'boolean':
      return { ...base, type: 'BOOL' };
    default:
      throw new SchemaError(`${where}: type ${type} has no column type`);
  }
}

/** The BigQuery schema (`bq mk --schema` format) of the columns. */
export function bigQuerySchema(fields: Field[]): unknown[] {
  return fields.map((f) => ({
    name: f.name,
    type: f.type === 'UINT64' ? 'NUMERIC' : f.type,
    mode: f.mode,
    ...(f.description ? { description: f.description } : {}),
    ...(f.fields ? { fields: bigQuerySchema(f.fields) } : {}),
  }));
}

const DUCKDB_TYPES: Record<Exclude<ColumnType, 'RECORD'>, string> = {
  STRING: 'VARCHAR',
  INT64: 'BIGINT',
  UINT64: 'UBIGINT',
  FLOAT64: 'DOUBLE',
  BOOL: 'BOOLEAN',
  DATE: 'DATE',
  TIMESTAMP: 'TIMESTAMP',
};

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The DuckDB type of a column: STRUCT for records, LIST for repeated. */
export function duckdbType(f: Field): string {
  const scalar =
    f.type === 'RECORD'
      ? `STRUCT(${(f.fields ?? []).map((c) => `${quoteIdent(c.name)} ${duckdbType(c)}`).join(', ')})`
      : DUCKDB_TYPES[f.type];
  return f.mode === 'REPEATED' ? `${scalar}[]` : scalar;
}

/** One line per ajv error: JSON path, message, keyword. */
export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .map((e) => {
      const extra =
        e.keyword === 'additionalProperties'
          ? ` '${String((e.params as { additionalProperty?: string }).additionalProperty)}'`
          : '';
      return `${e.instancePath || '/'}: ${e.message ?? 'invalid'}${extra} (keyword ${e.keyword})`;
    })
    .join('; ');
}
