/**
 * What BigQuery accepts as a table's schema and layout: field names, types and modes as
 * tables.insert checks them, the schema update rule of tables.patch and tables.update, and the
 * partitioning and clustering a table may have.
 */
import { invalid, BigQueryApiError } from './errors.js';
import { isObject, show } from './json-text.js';
import type { FieldType, TableField, TimePartitioning } from './types.js';

const TYPE_ALIASES: Record<string, FieldType> = {
  STRING: 'STRING',
  BYTES: 'BYTES',
  INTEGER: 'INTEGER',
  INT64: 'INTEGER',
  FLOAT: 'FLOAT',
  FLOAT64: 'FLOAT',
  NUMERIC: 'NUMERIC',
  DECIMAL: 'NUMERIC',
  BIGNUMERIC: 'BIGNUMERIC',
  BIGDECIMAL: 'BIGNUMERIC',
  BOOLEAN: 'BOOLEAN',
  BOOL: 'BOOLEAN',
  TIMESTAMP: 'TIMESTAMP',
  DATE: 'DATE',
  TIME: 'TIME',
  DATETIME: 'DATETIME',
  GEOGRAPHY: 'GEOGRAPHY',
  JSON: 'JSON',
  RECORD: 'RECORD',
  STRUCT: 'RECORD',
};

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED_PREFIXES = [
  '_table_',
  '_file_',
  '_partition',
  '_row_timestamp',
  '__root__',
  '_colidentifier',
  '_change_sequence_number',
  '_change_type',
  '_change_timestamp',
];
const MAX_NESTING = 15;
const MAX_COLUMNS = 10_000;

/** Checks a schema as tables.insert does and returns it in BigQuery's spelling. */
export function normalizeSchema(raw: unknown): TableField[] {
  const count = { columns: 0 };
  const fields = normalizeFields(raw, '', 1, count);
  if (count.columns > MAX_COLUMNS)
    throw invalid(`Too many total leaf fields: ${count.columns}, max allowed field count: ${MAX_COLUMNS}`);
  return fields;
}

function normalizeFields(raw: unknown, prefix: string, depth: number, count: { columns: number }): TableField[] {
  if (!Array.isArray(raw))
    throw invalid(`Schema ${prefix ? `of field ${prefix.slice(0, -1)} ` : ''}must be a list of fields.`);
  if (depth > MAX_NESTING)
    throw invalid(`Field ${prefix.slice(0, -1)}: schema nesting is deeper than ${MAX_NESTING} levels.`);
  const seen = new Set<string>();
  return raw.map((f: unknown): TableField => {
    if (!isObject(f)) throw invalid(`A field of ${prefix || 'the schema'} is not an object.`);
    const { name, type, mode, fields, description, ...rest } = f;
    if (typeof name !== 'string' || name === '') throw invalid('Empty field name.');
    const path = `${prefix}${name}`;
    if (name.length > 300 || !FIELD_NAME.test(name)) {
      throw invalid(
        `Invalid field name "${name}". Fields must contain only letters, numbers, and underscores, start with a letter or underscore, and be at most 300 characters long.`,
      );
    }
    const lower = name.toLowerCase();
    if (RESERVED_PREFIXES.some((p) => lower.startsWith(p)))
      throw invalid(`Invalid field name "${name}": the prefix is reserved.`);
    if (seen.has(lower)) throw invalid(`Field ${path} already exists in schema`);
    seen.add(lower);
    const canonical = typeof type === 'string' ? TYPE_ALIASES[type.toUpperCase()] : undefined;
    if (!canonical) {
      if (typeof type === 'string' && type.toUpperCase() === 'RANGE') {
        throw new BigQueryApiError(
          501,
          'notImplemented',
          `bigquery-test-server does not support RANGE columns (field ${path}).`,
        );
      }
      throw invalid(`Invalid value for type: ${show(type)} is not a valid value (field ${path})`);
    }
    const m = mode === undefined || mode === null ? 'NULLABLE' : show(mode).toUpperCase();
    if (m !== 'NULLABLE' && m !== 'REQUIRED' && m !== 'REPEATED')
      throw invalid(`Invalid value for mode: ${show(mode)} is not a valid value (field ${path})`);
    const out: TableField = { ...rest, name, type: canonical, mode: m };
    if (typeof description === 'string') out.description = description;
    if (canonical === 'RECORD') {
      if (!Array.isArray(fields) || fields.length === 0)
        throw invalid(`Field ${path} is type RECORD but has no schema`);
      out.fields = normalizeFields(fields, `${path}.`, depth + 1, count);
    } else {
      if (Array.isArray(fields) && fields.length > 0)
        throw invalid(`Field ${path} is type ${canonical} but has subfields.`);
      count.columns++;
    }
    if (out.maxLength !== undefined && !/^\d+$/.test(String(out.maxLength)))
      throw invalid(`Field ${path}: maxLength must be a positive integer.`);
    return out;
  });
}

export function findField(fields: TableField[], name: string): TableField | undefined {
  const lower = name.toLowerCase();
  return fields.find((f) => f.name.toLowerCase() === lower);
}

/** BigQuery's rule for schema updates: add NULLABLE or REPEATED fields anywhere, relax REQUIRED to NULLABLE, nothing else. */
export function checkSchemaUpdate(oldFields: TableField[], newFields: TableField[], table: string, prefix = ''): void {
  const mismatch = (detail: string): BigQueryApiError =>
    invalid(`Provided Schema does not match Table ${table}. ${detail}`);
  for (const o of oldFields) {
    const path = `${prefix}${o.name}`;
    const n = findField(newFields, o.name);
    if (!n) throw mismatch(`Field ${path} is missing in new schema`);
    if (n.type !== o.type) throw mismatch(`Field ${path} has changed type from ${o.type} to ${n.type}`);
    if (n.mode !== o.mode && !(o.mode === 'REQUIRED' && n.mode === 'NULLABLE')) {
      throw mismatch(`Field ${path} has changed mode from ${o.mode} to ${n.mode}`);
    }
    if (o.type === 'RECORD') checkSchemaUpdate(o.fields ?? [], n.fields ?? [], table, `${path}.`);
  }
  for (const n of newFields) {
    if (!findField(oldFields, n.name) && n.mode === 'REQUIRED') {
      throw mismatch(`Cannot add required field ${prefix}${n.name} to an existing schema.`);
    }
  }
}

const PARTITION_TYPES = new Set(['DAY', 'HOUR', 'MONTH', 'YEAR']);
const CLUSTERING_TYPES = new Set<FieldType>([
  'STRING',
  'INTEGER',
  'NUMERIC',
  'BIGNUMERIC',
  'BOOLEAN',
  'DATE',
  'DATETIME',
  'TIMESTAMP',
  'GEOGRAPHY',
]);

export function checkTimePartitioning(raw: unknown, schema: TableField[]): TimePartitioning {
  if (!isObject(raw)) throw invalid('timePartitioning must be an object.');
  const type = (raw.type === undefined || raw.type === null ? 'DAY' : show(raw.type)).toUpperCase();
  if (!PARTITION_TYPES.has(type)) throw invalid(`Invalid value for timePartitioning.type: ${show(raw.type)}`);
  const out: TimePartitioning = { ...(raw as object), type: type as TimePartitioning['type'] };
  if (raw.field !== undefined && raw.field !== null) {
    const field = findField(schema, show(raw.field));
    if (!field)
      throw invalid(
        `The field specified for time partitioning can only be found in the top level schema: ${show(raw.field)} not found.`,
      );
    if (field.type !== 'DATE' && field.type !== 'TIMESTAMP' && field.type !== 'DATETIME') {
      throw invalid(
        `The field specified for time partitioning can only be of type TIMESTAMP, DATE or DATETIME. The type found is: ${field.type}.`,
      );
    }
    if (field.mode === 'REPEATED')
      throw invalid(`The field specified for time partitioning cannot be REPEATED: ${field.name}.`);
    if (field.type === 'DATE' && type === 'HOUR')
      throw invalid(`Partitioning by HOUR is not supported on DATE field ${field.name}.`);
  }
  return out;
}

export function checkClustering(raw: unknown, schema: TableField[]): { fields: string[] } {
  if (!isObject(raw) || !Array.isArray(raw.fields)) throw invalid('clustering.fields must be a list.');
  const fields = raw.fields.map(show);
  if (fields.length > 4) throw invalid('Too many clustering fields: at most 4 are allowed.');
  for (const name of fields) {
    const f = findField(schema, name);
    if (!f) throw invalid(`The field specified for clustering cannot be found in the schema. Invalid field: ${name}.`);
    if (f.mode === 'REPEATED' || !CLUSTERING_TYPES.has(f.type)) {
      throw invalid(
        `Field ${name} is of type ${f.mode === 'REPEATED' ? `ARRAY<${f.type}>` : f.type} which is not supported for clustering.`,
      );
    }
  }
  return { fields };
}
