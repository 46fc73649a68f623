/**
 * A local stand-in for the BigQuery REST API v2, for tests of code built on
 * `@google-cloud/bigquery`. No BigQuery emulator exists for this project's machines, and a mock
 * that accepts anything would let a sink pass tests with rows BigQuery throws away. So this server
 * rejects what BigQuery rejects: rows are checked against the table schema with BigQuery's JSON
 * rules, schema updates are limited to what BigQuery allows, and the request limits are real.
 *
 * Point the real client at it:
 * `new BigQuery({ projectId: 'test', apiEndpoint: server.url, authClient })`; the client adds
 * `/bigquery/v2` itself. The client needs an auth client holding a dummy token, and this server
 * answers 401 to a request without a bearer token, as BigQuery does.
 *
 * What must stay true:
 * - Request bodies are parsed losslessly (`parseLossless`): an integer literal beyond 2^53 reaches
 *   the INT64 range check unrounded.
 * - Stored rows are the row JSON as sent, values untouched: a string stays the string that was
 *   sent ("9223372036854775807" stays that string), an integer literal within +/-2^53 is a
 *   `number`, one beyond is a `bigint`. BigQuery would convert the values to the column types;
 *   tests want to see what the sink sent. Unknown fields are dropped when `ignoreUnknownValues`
 *   is set, as BigQuery drops them.
 * - Table schemas are returned as BigQuery returns them: legacy type names (INTEGER, FLOAT,
 *   BOOLEAN, RECORD) and an explicit mode on every field.
 *
 * Deviations, chosen on purpose:
 * - Where BigQuery's leniency is not documented, the server is strict (a STRING column refuses a
 *   number, BOOL refuses "true", INT64 refuses "+5"): a false failure in a test is cheaper than a
 *   row lost in production.
 * - Error messages follow BigQuery's wording where it is known ("no such field: a.b.", "Provided
 *   Schema does not match Table ...", "Request payload size exceeds the limit: 10485760 bytes.");
 *   the others are close paraphrases. Reasons, locations and statuses are what tests should
 *   assert on.
 * - A request over 10 MiB gets 400 `badRequest` (BigQuery's answer); a request so large that
 *   Google's front end refuses it gets 413. The front end's threshold is not documented: it is
 *   `limits.frontEndMaxBytes`, 32 MiB unless set.
 * - A row's size is the byte length of its JSON text; BigQuery measures its own encoding.
 * - Rows that got an injected per-row error (`faults.rowErrors`) are not stored; the other rows
 *   of the request are, unless the injected reason is `invalid`, which stops the request like a
 *   real validation error.
 * - The added latency is spent after the rows are stored and before the reply, the case where a
 *   client gives up on a request that did succeed (which insertId dedup exists for).
 * - Field names follow the classic rule (letters, digits, underscores); BigQuery's newer flexible
 *   column names are refused.
 * - A view's SQL is not run. A view created without `useLegacySql: false` whose query quotes
 *   names with backticks is refused (legacy SQL, the API's default, has no backticks), and a view
 *   naming `project.dataset.table` or `dataset.table` in backticks needs that table to exist.
 * - No query jobs, load jobs, tabledata.list, paging or partition decorators: unsupported routes
 *   answer 501 so a test notices instead of passing on a silent no-op.
 * - `numRows` stays "0" while rows sit in the streaming buffer, as in BigQuery; the count is in
 *   `streamingBuffer.estimatedRows`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import { parseLossless } from '../../src/json/lossless-json.js';

// ---------------------------------------------------------------------------------------------
// Public types

export type RouteName =
  | 'datasets.list'
  | 'datasets.get'
  | 'datasets.insert'
  | 'datasets.delete'
  | 'tables.list'
  | 'tables.get'
  | 'tables.insert'
  | 'tables.patch'
  | 'tables.update'
  | 'tables.delete'
  | 'tabledata.insertAll';

export type FieldType =
  | 'STRING'
  | 'BYTES'
  | 'INTEGER'
  | 'FLOAT'
  | 'NUMERIC'
  | 'BIGNUMERIC'
  | 'BOOLEAN'
  | 'TIMESTAMP'
  | 'DATE'
  | 'TIME'
  | 'DATETIME'
  | 'GEOGRAPHY'
  | 'JSON'
  | 'RECORD';

export type FieldMode = 'NULLABLE' | 'REQUIRED' | 'REPEATED';

/** A column as stored and returned: type and mode always present, in BigQuery's spelling. */
export interface TableField {
  name: string;
  type: FieldType;
  mode: FieldMode;
  description?: string;
  fields?: TableField[];
  /** STRING(n) and BYTES(n): the length limit, enforced on insert. */
  maxLength?: string;
  /** Other attributes (policyTags, precision, defaultValueExpression, ...), kept as sent. */
  [attribute: string]: unknown;
}

export interface TimePartitioning {
  type: 'DAY' | 'HOUR' | 'MONTH' | 'YEAR';
  field?: string;
  expirationMs?: string;
  requirePartitionFilter?: boolean;
}

export interface StoredRow {
  insertId: string | undefined;
  /** The row as sent: see the file comment for how values are kept. */
  json: Record<string, unknown>;
  /** Server clock (ms) when the row was stored. */
  storedAt: number;
}

export interface DatasetState {
  projectId: string;
  datasetId: string;
  location: string;
  description?: string;
  labels?: Record<string, string>;
  creationTime: number;
  lastModifiedTime: number;
  etag: string;
  tables: Map<string, TableState>;
}

export interface TableState {
  projectId: string;
  datasetId: string;
  tableId: string;
  type: 'TABLE' | 'VIEW';
  schema: TableField[];
  timePartitioning?: TimePartitioning;
  rangePartitioning?: unknown;
  clustering?: { fields: string[] };
  description?: string;
  friendlyName?: string;
  labels?: Record<string, string>;
  expirationTime?: string;
  view?: { query: string; useLegacySql: boolean };
  rows: StoredRow[];
  creationTime: number;
  lastModifiedTime: number;
  etag: string;
  /** Every schema the table had and since when: inserts use the one in effect `schemaUpdateDelayMs` ago. */
  schemaHistory: Array<{ since: number; fields: TableField[] }>;
  /** insertId -> when it was stored, for dedup. */
  insertIds: Map<string, number>;
}

export interface RequestRecord {
  method: string;
  path: string;
  route: RouteName | 'unknown';
  status: number;
  at: number;
}

export interface FaultSpec {
  status: number;
  /** Defaults by status: 403 quotaExceeded, 429 rateLimitExceeded, 500/503 backendError, 413 requestTooLarge, other 4xx invalid. */
  reason?: string;
  message?: string;
  /** Which requests the fault applies to; `tabledata.insertAll` unless set. */
  route?: RouteName | 'any';
}

export interface RowFaultContext {
  /** `dataset.table` */
  table: string;
  index: number;
  insertId: string | undefined;
  json: Record<string, unknown>;
}

export interface Limits {
  /** BigQuery answers 400 above this: 10 MiB. */
  maxRequestBytes: number;
  /** Google's front end answers 413 above this; not documented, 32 MiB here. */
  frontEndMaxBytes: number;
  /** A larger row gets a per-row `invalid` error: 10 MiB. */
  maxRowBytes: number;
  /** 50,000 rows per insertAll request. */
  maxRowsPerRequest: number;
}

export interface BigQueryTestServerOptions {
  /** The project the state helpers use when none is given; requests may name any project. `test` unless set. */
  projectId?: string;
  /** Seed of the deterministic random used by `faults.failRate`. */
  seed?: number;
  /** How long an insertId is remembered (ms). Unlimited unless set; BigQuery keeps it about a minute, best effort. */
  dedupWindowMs?: number;
  /** Latency added to every insertAll reply (ms); the real service's median is about 75 ms. */
  latencyMs?: number;
  /** BigQuery's streaming path sees a schema update only after a while: inserts use the schema in effect this long ago (ms). 0 unless set. */
  schemaUpdateDelayMs?: number;
  /** Answer 401 to requests without `Authorization: Bearer ...`. True unless set. */
  requireAuth?: boolean;
  limits?: Partial<Limits>;
  /** The clock for dedup windows and timestamps; `Date.now` unless set. */
  clock?: () => number;
}

export interface BigQueryTestServer {
  /** `http://127.0.0.1:PORT`, the value for the client's `apiEndpoint`. */
  url: string;
  port: number;
  state: BigQueryTestState;
  faults: BigQueryFaults;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Errors in BigQuery's shape

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS',
  412: 'FAILED_PRECONDITION',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE',
};

const DEFAULT_FAULT_REASONS: Record<number, string> = {
  403: 'quotaExceeded',
  413: 'requestTooLarge',
  429: 'rateLimitExceeded',
  500: 'backendError',
  503: 'backendError',
};

const DEFAULT_MESSAGES: Record<string, string> = {
  quotaExceeded:
    'Quota exceeded: Your table exceeded quota for streaming insert bytes per table. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas',
  rateLimitExceeded:
    'Exceeded rate limits: too many api requests per user per method for this user_method. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas',
  backendError: 'Error encountered during execution. Retrying may solve the problem.',
  requestTooLarge: 'Request Too Large',
  internalError: 'An internal error occurred and the request could not be completed.',
  invalid: 'Invalid request.',
  timeout: 'Request timed out.',
};

/** An error reply; thrown by handlers, turned into BigQuery's error body by the dispatcher. */
export class BigQueryApiError extends Error {
  override name = 'BigQueryApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly extra: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): unknown {
    const status = STATUS_NAMES[this.status];
    return {
      error: {
        code: this.status,
        message: this.message,
        errors: [{ message: this.message, domain: 'global', reason: this.reason, ...this.extra }],
        ...(status ? { status } : {}),
      },
    };
  }
}

const invalid = (message: string): BigQueryApiError => new BigQueryApiError(400, 'invalid', message);
const notFound = (message: string): BigQueryApiError => new BigQueryApiError(404, 'notFound', message);

// ---------------------------------------------------------------------------------------------
// Schemas

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

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

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

function findField(fields: TableField[], name: string): TableField | undefined {
  const lower = name.toLowerCase();
  return fields.find((f) => f.name.toLowerCase() === lower);
}

/** BigQuery's rule for schema updates: add NULLABLE or REPEATED fields anywhere, relax REQUIRED to NULLABLE, nothing else. */
function checkSchemaUpdate(oldFields: TableField[], newFields: TableField[], table: string, prefix = ''): void {
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

function checkTimePartitioning(raw: unknown, schema: TableField[]): TimePartitioning {
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

function checkClustering(raw: unknown, schema: TableField[]): { fields: string[] } {
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

// ---------------------------------------------------------------------------------------------
// Row values, BigQuery's JSON rules

export interface RowError {
  reason: string;
  location: string;
  message: string;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const BIGNUMERIC_MAX = 57896044618658097711785492504343953926634992332820282019728792003956564819967n;
const BIGNUMERIC_MIN = -57896044618658097711785492504343953926634992332820282019728792003956564819968n;
/** Seconds from the epoch to 0001-01-01 and to the end of 9999-12-31, TIMESTAMP's range. */
const TIMESTAMP_MIN_S = -62135596800;
const TIMESTAMP_MAX_S = 253402300800;
const TIMESTAMP_FORMAT_HINT = 'Required format is YYYY-MM-DD HH:MM[:SS[.SSSSSS]]';

/** JSON text of a parsed value, bigints as their digits. */
function jsonText(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'undefined';
}

function show(value: unknown): string {
  return typeof value === 'string' ? value : jsonText(value);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  return month === 2 && isLeap(year) ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function validDate(y: number, m: number, d: number): boolean {
  return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= daysInMonth(y, m);
}

function validTime(h: number, mi: number, s: number): boolean {
  return h <= 23 && mi <= 59 && s <= 59;
}

/** A decimal's digits around the point, normalised; null when the text is not a decimal. */
function decimalParts(text: string): { negative: boolean; int: string; frac: string } | null {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return null;
  const [, sign = '', intText = '', fracText = '', expText] = m;
  if (intText === '' && fracText === '') return null;
  const digits = intText + fracText;
  const exponent = Number(expText ?? '0');
  if (/^0*$/.test(digits)) return { negative: false, int: '', frac: '' };
  // Past this, no NUMERIC or BIGNUMERIC can hold the value; keep the strings short.
  if (Math.abs(exponent) > 200)
    return {
      negative: sign === '-',
      int: exponent > 0 ? '1'.padEnd(201, '0') : '',
      frac: exponent > 0 ? '' : '1'.padStart(201, '0'),
    };
  const point = intText.length + exponent;
  let int: string;
  let frac: string;
  if (point <= 0) {
    int = '';
    frac = '0'.repeat(-point) + digits;
  } else if (point >= digits.length) {
    int = digits + '0'.repeat(point - digits.length);
    frac = '';
  } else {
    int = digits.slice(0, point);
    frac = digits.slice(point);
  }
  return { negative: sign === '-', int: int.replace(/^0+/, ''), frac: frac.replace(/0+$/, '') };
}

function decimalText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

/** Null when the scalar fits the column, else the error message. */
function checkScalar(field: TableField, value: unknown): string | null {
  switch (field.type) {
    case 'INTEGER': {
      let n: bigint;
      if (typeof value === 'bigint') n = value;
      else if (typeof value === 'number' && Number.isInteger(value)) n = BigInt(value);
      else if (typeof value === 'string' && /^-?\d+$/.test(value)) n = BigInt(value);
      else return `Cannot convert value to integer (bad value): ${show(value)}`;
      return n < INT64_MIN || n > INT64_MAX ? `Cannot convert value to integer (out of range): ${show(value)}` : null;
    }
    case 'FLOAT': {
      if (typeof value === 'number' || typeof value === 'bigint') return null;
      if (typeof value === 'string') {
        if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return null;
        if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(value)) {
          return Number.isFinite(Number(value))
            ? null
            : `Cannot convert value to floating point (out of range): ${value}`;
        }
      }
      return `Cannot convert value to floating point (bad value): ${show(value)}`;
    }
    case 'NUMERIC':
    case 'BIGNUMERIC': {
      const text = decimalText(value);
      const parts = text === null ? null : decimalParts(text);
      const kind = field.type === 'NUMERIC' ? 'NUMERIC' : 'BIGNUMERIC';
      if (!parts) return `Invalid ${kind} value: ${show(value)}`;
      if (kind === 'NUMERIC') {
        if (parts.frac.length > 9)
          return `Invalid NUMERIC value: ${show(value)} (more than 9 digits after the decimal point)`;
        if (parts.int.length > 29) return `Invalid NUMERIC value: ${show(value)} (out of range)`;
        return null;
      }
      if (parts.frac.length > 38)
        return `Invalid BIGNUMERIC value: ${show(value)} (more than 38 digits after the decimal point)`;
      if (parts.int.length > 39) return `Invalid BIGNUMERIC value: ${show(value)} (out of range)`;
      const scaled = BigInt(`${parts.negative ? '-' : ''}${parts.int || '0'}${parts.frac.padEnd(38, '0')}`);
      return scaled < BIGNUMERIC_MIN || scaled > BIGNUMERIC_MAX
        ? `Invalid BIGNUMERIC value: ${show(value)} (out of range)`
        : null;
    }
    case 'BOOLEAN':
      return typeof value === 'boolean' ? null : `Cannot convert value to boolean: ${show(value)}`;
    case 'STRING':
    case 'GEOGRAPHY': {
      if (typeof value !== 'string') return `Cannot convert value to string: ${show(value)}`;
      if (field.maxLength !== undefined && [...value].length > Number(field.maxLength)) {
        return `Field ${field.name}: STRING(${field.maxLength}) has maximum length ${field.maxLength} but got a value with length ${[...value].length}`;
      }
      return null;
    }
    case 'BYTES': {
      if (typeof value !== 'string' || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
        return `Cannot convert value to bytes: ${show(value)} is not base64`;
      }
      if (field.maxLength !== undefined && Buffer.from(value, 'base64').length > Number(field.maxLength)) {
        return `Field ${field.name}: BYTES(${field.maxLength}) value is too long`;
      }
      return null;
    }
    case 'DATE': {
      const m = typeof value === 'string' ? /^(\d{4})-(\d{2})-(\d{2})$/.exec(value) : null;
      return m && validDate(Number(m[1]), Number(m[2]), Number(m[3])) ? null : `Invalid date: '${show(value)}'`;
    }
    case 'DATETIME': {
      const m =
        typeof value === 'string'
          ? /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?$/.exec(value)
          : null;
      return m &&
        validDate(Number(m[1]), Number(m[2]), Number(m[3])) &&
        validTime(Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0))
        ? null
        : `Invalid datetime string "${show(value)}"`;
    }
    case 'TIME': {
      const m = typeof value === 'string' ? /^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?$/.exec(value) : null;
      return m && validTime(Number(m[1]), Number(m[2]), Number(m[3] ?? 0))
        ? null
        : `Invalid time string "${show(value)}"`;
    }
    case 'TIMESTAMP':
      return checkTimestamp(value);
    case 'JSON':
      return null;
    case 'RECORD':
      return null;
  }
}

function checkTimestamp(value: unknown): string | null {
  if (typeof value === 'number' || typeof value === 'bigint') {
    const s = Number(value);
    return s >= TIMESTAMP_MIN_S && s < TIMESTAMP_MAX_S ? null : `Timestamp out of range: ${show(value)}`;
  }
  const bad = `Could not parse '${show(value)}' as a timestamp. ${TIMESTAMP_FORMAT_HINT}`;
  if (typeof value !== 'string') return bad;
  const m =
    /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*(?:([Zz]|UTC)|([+-])(\d{2})(?::?(\d{2}))?)?$/.exec(
      value,
    );
  if (!m) return bad;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // More than microseconds is refused, not truncated: BigQuery TIMESTAMPs hold microseconds.
  if ((m[7]?.length ?? 0) > 6) return bad;
  if (!validDate(y, mo, d) || !validTime(h, mi, s)) return bad;
  const offH = Number(m[10] ?? 0);
  const offM = Number(m[11] ?? 0);
  if (offH > 14 || offM > 59) return bad;
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, s, 0);
  const offset = (m[9] === '-' ? -1 : 1) * (offH * 3600 + offM * 60);
  const seconds = t.getTime() / 1000 - offset;
  return seconds >= TIMESTAMP_MIN_S && seconds < TIMESTAMP_MAX_S ? null : `Timestamp out of range: ${value}`;
}

/**
 * Checks a row against the columns. Returns the errors (all of them, BigQuery reports several per
 * row) and the row to store: the input itself, minus unknown fields when they are ignored.
 */
export function checkRow(
  fields: TableField[],
  json: unknown,
  options: { ignoreUnknownValues?: boolean } = {},
): { errors: RowError[]; row: Record<string, unknown> } {
  const errors: RowError[] = [];
  if (!isObject(json)) {
    return {
      errors: [{ reason: 'invalid', location: '', message: `Row is not a JSON object: ${show(json)}` }],
      row: {},
    };
  }
  const row = checkRecord(fields, json, '', options.ignoreUnknownValues ?? false, errors);
  return { errors, row };
}

function checkRecord(
  fields: TableField[],
  obj: Record<string, unknown>,
  prefix: string,
  ignoreUnknown: boolean,
  errors: RowError[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    const path = `${prefix}${key}`;
    const field = findField(fields, key);
    if (!field) {
      if (!ignoreUnknown) errors.push({ reason: 'invalid', location: path, message: `no such field: ${path}.` });
      continue;
    }
    out[key] = checkField(field, value, path, ignoreUnknown, errors);
  }
  for (const f of fields) {
    if (f.mode !== 'REQUIRED') continue;
    const key = Object.keys(obj).find((k) => k.toLowerCase() === f.name.toLowerCase());
    if (key === undefined && f.defaultValueExpression === undefined) {
      errors.push({
        reason: 'invalid',
        location: `${prefix}${f.name}`,
        message: `Missing required field: ${prefix}${f.name}.`,
      });
    }
  }
  return out;
}

function checkField(
  field: TableField,
  value: unknown,
  path: string,
  ignoreUnknown: boolean,
  errors: RowError[],
): unknown {
  const fail = (message: string, location = path): void => {
    errors.push({ reason: 'invalid', location, message });
  };
  if (field.mode === 'REPEATED') {
    // A null array is an empty one in BigQuery; a null element is refused.
    if (value === null) return value;
    if (!Array.isArray(value)) {
      fail(`Field ${path} is REPEATED but the value is not an array: ${show(value)}`);
      return value;
    }
    return value.map((item: unknown, i) => {
      const at = `${path}[${i}]`;
      if (item === null) {
        fail(`Array cannot have a null element; error in writing field ${path}`, at);
        return item;
      }
      return checkOne(field, item, at, ignoreUnknown, errors);
    });
  }
  if (value === null) {
    if (field.mode === 'REQUIRED') fail(`Only optional fields can be set to NULL. Field: ${path}; Value: NULL`);
    return value;
  }
  if (Array.isArray(value)) {
    fail(`Array specified for non-repeated field: ${path}.`);
    return value;
  }
  return checkOne(field, value, path, ignoreUnknown, errors);
}

function checkOne(
  field: TableField,
  value: unknown,
  path: string,
  ignoreUnknown: boolean,
  errors: RowError[],
): unknown {
  if (field.type === 'RECORD') {
    if (!isObject(value)) {
      errors.push({
        reason: 'invalid',
        location: path,
        message: `Cannot convert value to record: ${path} is not a JSON object.`,
      });
      return value;
    }
    return checkRecord(field.fields ?? [], value, `${path}.`, ignoreUnknown, errors);
  }
  const message = checkScalar(field, value);
  if (message !== null) errors.push({ reason: 'invalid', location: path, message });
  return value;
}

// ---------------------------------------------------------------------------------------------
// State

let etagCounter = 0;
function newEtag(): string {
  etagCounter++;
  return Buffer.from(`etag-${etagCounter}-${Date.now()}`).toString('base64');
}

export interface TableInput {
  schema?: unknown[];
  timePartitioning?: unknown;
  rangePartitioning?: unknown;
  clustering?: unknown;
  description?: string;
  friendlyName?: string;
  labels?: Record<string, string>;
  expirationTime?: string;
  view?: { query: string; useLegacySql?: boolean };
}

/** What the server holds, for tests to inspect and to seed. */
export class BigQueryTestState {
  readonly datasets = new Map<string, DatasetState>();
  readonly requests: RequestRecord[] = [];

  constructor(
    readonly defaultProjectId: string,
    private readonly clock: () => number,
  ) {}

  dataset(datasetId: string, projectId = this.defaultProjectId): DatasetState | undefined {
    return this.datasets.get(`${projectId}:${datasetId}`);
  }

  table(datasetId: string, tableId: string, projectId = this.defaultProjectId): TableState | undefined {
    return this.dataset(datasetId, projectId)?.tables.get(tableId);
  }

  /** The stored rows of a table. Throws when the table does not exist, so a test cannot pass on a typo. */
  rows(datasetId: string, tableId: string, projectId = this.defaultProjectId): StoredRow[] {
    const t = this.table(datasetId, tableId, projectId);
    if (!t) throw new Error(`bigquery-test-server: no table ${projectId}:${datasetId}.${tableId}`);
    return t.rows;
  }

  /** How many requests matched the route and status (either left out: any). */
  requestCount(route?: RouteName | 'unknown', status?: number): number {
    return this.requests.filter(
      (r) => (route === undefined || r.route === route) && (status === undefined || r.status === status),
    ).length;
  }

  /** Request counts keyed `"<route> <status>"`, e.g. `"tabledata.insertAll 503": 1`. */
  requestCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of this.requests) {
      const key = `${r.route} ${r.status}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }

  /** Creates a dataset as datasets.insert does (throws BigQueryApiError on what BigQuery refuses). */
  createDataset(
    datasetId: string,
    options: { projectId?: string; location?: string; description?: string } = {},
  ): DatasetState {
    const projectId = options.projectId ?? this.defaultProjectId;
    if (!/^[A-Za-z0-9_]{1,1024}$/.test(datasetId)) {
      throw invalid(
        `Invalid dataset ID "${datasetId}". Dataset IDs must be alphanumeric (plus underscores) and must be at most 1024 characters long.`,
      );
    }
    const key = `${projectId}:${datasetId}`;
    if (this.datasets.has(key)) throw new BigQueryApiError(409, 'duplicate', `Already Exists: Dataset ${key}`);
    const now = this.clock();
    const ds: DatasetState = {
      projectId,
      datasetId,
      location: options.location ?? 'US',
      creationTime: now,
      lastModifiedTime: now,
      etag: newEtag(),
      tables: new Map(),
      ...(options.description !== undefined ? { description: options.description } : {}),
    };
    this.datasets.set(key, ds);
    return ds;
  }

  /** Creates a table or view as tables.insert does (throws BigQueryApiError on what BigQuery refuses). */
  createTable(datasetId: string, tableId: string, input: TableInput, projectId = this.defaultProjectId): TableState {
    const ds = this.dataset(datasetId, projectId);
    if (!ds) throw notFound(`Not found: Dataset ${projectId}:${datasetId}`);
    if (!/^[\p{L}\p{M}\p{N}\p{Pc}\p{Pd}\p{Zs}]{1,1024}$/u.test(tableId)) {
      throw invalid(`Invalid table ID "${tableId}".`);
    }
    if (ds.tables.has(tableId))
      throw new BigQueryApiError(409, 'duplicate', `Already Exists: Table ${projectId}:${datasetId}.${tableId}`);
    const schema = input.schema === undefined ? [] : normalizeSchema(input.schema);
    const now = this.clock();
    const table: TableState = {
      projectId,
      datasetId,
      tableId,
      type: 'TABLE',
      schema,
      rows: [],
      creationTime: now,
      lastModifiedTime: now,
      etag: newEtag(),
      schemaHistory: [{ since: now, fields: schema }],
      insertIds: new Map(),
    };
    if (input.view !== undefined) {
      if (input.timePartitioning !== undefined || input.clustering !== undefined) {
        throw invalid('A view cannot be partitioned or clustered.');
      }
      table.type = 'VIEW';
      table.view = this.checkView(input.view, projectId);
    } else {
      applyLayout(table, input, schema);
    }
    applyDescriptive(table, input, false);
    ds.tables.set(tableId, table);
    return table;
  }

  checkView(raw: unknown, projectId: string): { query: string; useLegacySql: boolean } {
    if (!isObject(raw) || typeof raw.query !== 'string' || raw.query.trim() === '')
      throw invalid('A view needs a query.');
    // The API's default for views is legacy SQL, a classic source of views that cannot be created.
    const useLegacySql = raw.useLegacySql !== false;
    if (useLegacySql && raw.query.includes('`')) {
      throw invalid(
        `Invalid table name: ${/`[^`]*`/.exec(raw.query)?.[0] ?? '`'} [Try using standard SQL (https://cloud.google.com/bigquery/docs/reference/standard-sql/enabling-standard-sql)].`,
      );
    }
    if (!useLegacySql) {
      for (const [, ref] of raw.query.matchAll(/`([^`]+)`/g)) {
        const parts = (ref ?? '').split('.');
        if (parts.length === 3 && !parts.some((p) => p.includes('*'))) {
          const [p = '', d = '', t = ''] = parts;
          if (this.dataset(d, p) && !this.table(d, t, p)) throw notFound(`Not found: Table ${p}:${d}.${t}`);
          if (!this.dataset(d, p)) throw notFound(`Not found: Dataset ${p}:${d}`);
        } else if (parts.length === 2 && !parts.some((p) => p.includes('*'))) {
          const [d = '', t = ''] = parts;
          if (this.dataset(d, projectId) && !this.table(d, t, projectId))
            throw notFound(`Not found: Table ${projectId}:${d}.${t}`);
        }
      }
    }
    return { query: raw.query, useLegacySql };
  }

  /** Forgets everything: datasets, tables, rows, requests. */
  reset(): void {
    this.datasets.clear();
    this.requests.length = 0;
  }
}

function applyLayout(table: TableState, input: TableInput, schema: TableField[]): void {
  if (input.timePartitioning !== undefined && input.rangePartitioning !== undefined) {
    throw invalid('Cannot specify both time partitioning and range partitioning.');
  }
  if (input.timePartitioning !== undefined && input.timePartitioning !== null) {
    table.timePartitioning = checkTimePartitioning(input.timePartitioning, schema);
  }
  if (input.rangePartitioning !== undefined && input.rangePartitioning !== null) {
    table.rangePartitioning = input.rangePartitioning;
  }
  if (input.clustering !== undefined && input.clustering !== null)
    table.clustering = checkClustering(input.clustering, schema);
}

/** Fields a PATCH sets when given and a PUT replaces (clears when absent). */
function applyDescriptive(table: TableState, input: TableInput, replace: boolean): void {
  for (const key of ['description', 'friendlyName', 'labels', 'expirationTime'] as const) {
    if (input[key] !== undefined) (table as unknown as Record<string, unknown>)[key] = input[key];
    else if (replace) delete table[key];
  }
}

function tableName(t: TableState): string {
  return `${t.projectId}:${t.datasetId}.${t.tableId}`;
}

function tableResource(t: TableState, location: string): Record<string, unknown> {
  const bytes = t.rows.reduce((n, r) => n + jsonBytes(r.json), 0);
  return {
    kind: 'bigquery#table',
    etag: t.etag,
    id: tableName(t),
    selfLink: `/bigquery/v2/projects/${t.projectId}/datasets/${t.datasetId}/tables/${t.tableId}`,
    tableReference: { projectId: t.projectId, datasetId: t.datasetId, tableId: t.tableId },
    type: t.type,
    location,
    creationTime: String(t.creationTime),
    lastModifiedTime: String(t.lastModifiedTime),
    ...(t.type === 'VIEW' ? { view: t.view } : { numRows: '0', numBytes: '0' }),
    ...(t.schema.length > 0 ? { schema: { fields: t.schema } } : {}),
    ...(t.timePartitioning ? { timePartitioning: t.timePartitioning } : {}),
    ...(t.rangePartitioning ? { rangePartitioning: t.rangePartitioning } : {}),
    ...(t.clustering ? { clustering: t.clustering } : {}),
    ...(t.description !== undefined ? { description: t.description } : {}),
    ...(t.friendlyName !== undefined ? { friendlyName: t.friendlyName } : {}),
    ...(t.labels !== undefined ? { labels: t.labels } : {}),
    ...(t.expirationTime !== undefined ? { expirationTime: t.expirationTime } : {}),
    ...(t.rows.length > 0
      ? {
          streamingBuffer: {
            estimatedRows: String(t.rows.length),
            estimatedBytes: String(bytes),
            oldestEntryTime: String(t.rows[0]?.storedAt ?? t.creationTime),
          },
        }
      : {}),
  };
}

function datasetResource(ds: DatasetState): Record<string, unknown> {
  return {
    kind: 'bigquery#dataset',
    etag: ds.etag,
    id: `${ds.projectId}:${ds.datasetId}`,
    selfLink: `/bigquery/v2/projects/${ds.projectId}/datasets/${ds.datasetId}`,
    datasetReference: { projectId: ds.projectId, datasetId: ds.datasetId },
    location: ds.location,
    creationTime: String(ds.creationTime),
    lastModifiedTime: String(ds.lastModifiedTime),
    ...(ds.description !== undefined ? { description: ds.description } : {}),
    ...(ds.labels !== undefined ? { labels: ds.labels } : {}),
  };
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(jsonText(value));
}

// ---------------------------------------------------------------------------------------------
// Faults

/** mulberry32: small, seedable, good enough to pick which requests fail. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface CountRule {
  remaining: number;
  spec: FaultSpec;
}
interface RateRule {
  probability: number;
  spec: FaultSpec;
  random: () => number;
}
interface RowRule {
  select: number | ((row: RowFaultContext) => boolean);
  reason: string;
  message: string;
}

/** Failures programmed by tests. Rules are checked in the order they were added. */
export class BigQueryFaults {
  private countRules: CountRule[] = [];
  private rateRules: RateRule[] = [];
  private rowRules: RowRule[] = [];
  private latencies = new Map<RouteName | 'any', number>();

  constructor(
    private readonly defaultSeed: number,
    defaultLatencyMs: number,
  ) {
    if (defaultLatencyMs > 0) this.latencies.set('tabledata.insertAll', defaultLatencyMs);
  }

  /** The next `count` matching requests fail with this status and BigQuery's error body. */
  failNext(count: number, spec: FaultSpec): this {
    checkSpec(spec);
    if (!Number.isInteger(count) || count < 0) throw new RangeError('failNext: count must be a non-negative integer');
    this.countRules.push({ remaining: count, spec });
    return this;
  }

  /** Each matching request fails with this probability, drawn from a seeded random: the same seed fails the same requests. */
  failRate(probability: number, spec: FaultSpec, seed = this.defaultSeed): this {
    checkSpec(spec);
    if (!(probability >= 0 && probability <= 1)) throw new RangeError('failRate: probability must be within [0, 1]');
    this.rateRules.push({ probability, spec, random: seededRandom(seed) });
    return this;
  }

  /**
   * Rows that pass validation come back as per-row insertErrors with this reason: the next
   * `count` such rows, or those the predicate picks. They are not stored.
   */
  rowErrors(select: number | ((row: RowFaultContext) => boolean), reason = 'backendError', message?: string): this {
    if (typeof select === 'number' && (!Number.isInteger(select) || select < 0)) {
      throw new RangeError('rowErrors: count must be a non-negative integer');
    }
    this.rowRules.push({ select, reason, message: message ?? DEFAULT_MESSAGES[reason] ?? `Injected ${reason}.` });
    return this;
  }

  /** Extra time before every reply of the route (ms); insertAll unless a route is given. */
  latency(ms: number, route: RouteName | 'any' = 'tabledata.insertAll'): this {
    if (!(ms >= 0)) throw new RangeError('latency: ms must be >= 0');
    this.latencies.set(route, ms);
    return this;
  }

  /** Removes every rule and latency. */
  clear(): this {
    this.countRules = [];
    this.rateRules = [];
    this.rowRules = [];
    this.latencies.clear();
    return this;
  }

  /** @internal The fault for this request, if any; consumes a count. */
  takeRequestFault(route: RouteName): BigQueryApiError | undefined {
    const matches = (spec: FaultSpec): boolean =>
      (spec.route ?? 'tabledata.insertAll') === 'any' || (spec.route ?? 'tabledata.insertAll') === route;
    for (const rule of this.countRules) {
      if (rule.remaining > 0 && matches(rule.spec)) {
        rule.remaining--;
        return faultError(rule.spec);
      }
    }
    for (const rule of this.rateRules) {
      if (matches(rule.spec) && rule.random() < rule.probability) return faultError(rule.spec);
    }
    return undefined;
  }

  /** @internal The injected error of a valid row, if any; consumes a count. */
  takeRowFault(row: RowFaultContext): RowError | undefined {
    for (const rule of this.rowRules) {
      let hit: boolean;
      if (typeof rule.select === 'number') {
        hit = rule.select > 0;
        if (hit) rule.select--;
      } else {
        hit = rule.select(row);
      }
      if (hit) return { reason: rule.reason, location: '', message: rule.message };
    }
    return undefined;
  }

  /** @internal */
  latencyFor(route: RouteName): number {
    return this.latencies.get(route) ?? this.latencies.get('any') ?? 0;
  }
}

function checkSpec(spec: FaultSpec): void {
  if (!Number.isInteger(spec.status) || spec.status < 400 || spec.status > 599) {
    throw new RangeError(`fault status must be an HTTP error status, got ${spec.status}`);
  }
}

function faultError(spec: FaultSpec): BigQueryApiError {
  const reason = spec.reason ?? DEFAULT_FAULT_REASONS[spec.status] ?? (spec.status >= 500 ? 'backendError' : 'invalid');
  return new BigQueryApiError(spec.status, reason, spec.message ?? DEFAULT_MESSAGES[reason] ?? `Injected ${reason}.`);
}

// ---------------------------------------------------------------------------------------------
// HTTP

const DEFAULT_LIMITS: Limits = {
  maxRequestBytes: 10 * 1024 * 1024,
  frontEndMaxBytes: 32 * 1024 * 1024,
  maxRowBytes: 10 * 1024 * 1024,
  maxRowsPerRequest: 50_000,
};

interface Match {
  route: RouteName;
  projectId: string;
  datasetId: string;
  tableId: string;
}

function matchRoute(method: string, pathname: string): Match | undefined {
  const prefix = '/bigquery/v2/projects/';
  if (!pathname.startsWith(prefix)) return undefined;
  let segments: string[];
  try {
    segments = pathname.slice(prefix.length).split('/').map(decodeURIComponent);
  } catch {
    return undefined;
  }
  if (segments.at(-1) === '') segments.pop();
  const [projectId = '', kind, datasetId = '', tables, tableId = '', action] = segments;
  if (kind !== 'datasets' || projectId === '') return undefined;
  const m = (route: RouteName): Match => ({ route, projectId, datasetId, tableId });
  switch (segments.length) {
    case 2:
      return method === 'GET' ? m('datasets.list') : method === 'POST' ? m('datasets.insert') : undefined;
    case 3:
      return method === 'GET' ? m('datasets.get') : method === 'DELETE' ? m('datasets.delete') : undefined;
    case 4:
      if (tables !== 'tables') return undefined;
      return method === 'GET' ? m('tables.list') : method === 'POST' ? m('tables.insert') : undefined;
    case 5:
      if (tables !== 'tables') return undefined;
      if (method === 'GET') return m('tables.get');
      if (method === 'PATCH') return m('tables.patch');
      if (method === 'PUT') return m('tables.update');
      if (method === 'DELETE') return m('tables.delete');
      return undefined;
    case 6:
      return tables === 'tables' && action === 'insertAll' && method === 'POST' ? m('tabledata.insertAll') : undefined;
    default:
      return undefined;
  }
}

interface Body {
  bytes: Buffer;
  /** Bytes received, also those past `frontEndMaxBytes` that were not kept. */
  size: number;
}

async function readBody(req: IncomingMessage, keepAtMost: number): Promise<Body> {
  const chunks: Buffer[] = [];
  let size = 0;
  // The rest of an oversized body is read and dropped so the client sees the reply, not a reset.
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= keepAtMost) chunks.push(chunk);
  }
  return { bytes: Buffer.concat(chunks), size };
}

interface Reply {
  status: number;
  body?: unknown;
}

interface Context {
  state: BigQueryTestState;
  faults: BigQueryFaults;
  limits: Limits;
  clock: () => number;
  dedupWindowMs: number;
  schemaUpdateDelayMs: number;
}

function parseJsonBody(body: Body): Record<string, unknown> {
  if (body.bytes.length === 0) return {};
  let value: unknown;
  try {
    value = parseLossless(body.bytes.toString('utf8'));
  } catch (err) {
    throw new BigQueryApiError(400, 'parseError', `Parse Error: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw invalid('The request body must be a JSON object.');
  return value;
}

function requireDataset(ctx: Context, m: Match): DatasetState {
  const ds = ctx.state.dataset(m.datasetId, m.projectId);
  if (!ds) throw notFound(`Not found: Dataset ${m.projectId}:${m.datasetId}`);
  return ds;
}

function requireTable(ctx: Context, m: Match): { ds: DatasetState; table: TableState } {
  const ds = requireDataset(ctx, m);
  const table = ds.tables.get(m.tableId);
  if (!table) throw notFound(`Not found: Table ${m.projectId}:${m.datasetId}.${m.tableId}`);
  return { ds, table };
}

function handle(ctx: Context, m: Match, req: IncomingMessage, url: URL, body: Body): Reply {
  switch (m.route) {
    case 'datasets.list':
      return {
        status: 200,
        body: {
          kind: 'bigquery#datasetList',
          datasets: [...ctx.state.datasets.values()]
            .filter((d) => d.projectId === m.projectId)
            .map((d) => ({
              kind: 'bigquery#dataset',
              id: `${d.projectId}:${d.datasetId}`,
              datasetReference: { projectId: d.projectId, datasetId: d.datasetId },
              location: d.location,
            })),
        },
      };
    case 'datasets.get':
      return { status: 200, body: datasetResource(requireDataset(ctx, m)) };
    case 'datasets.insert': {
      const json = parseJsonBody(body);
      const ref = isObject(json.datasetReference) ? json.datasetReference : {};
      if (typeof ref.datasetId !== 'string') throw invalid('Required parameter is missing: datasetReference.datasetId');
      if (ref.projectId !== undefined && ref.projectId !== m.projectId) {
        throw invalid(
          `The project ${show(ref.projectId)} in the dataset reference does not match the project ${m.projectId} of the request.`,
        );
      }
      const ds = ctx.state.createDataset(ref.datasetId, {
        projectId: m.projectId,
        ...(typeof json.location === 'string' ? { location: json.location } : {}),
        ...(typeof json.description === 'string' ? { description: json.description } : {}),
      });
      if (isObject(json.labels)) ds.labels = json.labels as Record<string, string>;
      return { status: 200, body: datasetResource(ds) };
    }
    case 'datasets.delete': {
      const ds = requireDataset(ctx, m);
      if (ds.tables.size > 0 && url.searchParams.get('deleteContents') !== 'true') {
        throw new BigQueryApiError(400, 'resourceInUse', `Dataset ${m.projectId}:${m.datasetId} is still in use`);
      }
      ctx.state.datasets.delete(`${m.projectId}:${m.datasetId}`);
      return { status: 204 };
    }
    case 'tables.list': {
      const ds = requireDataset(ctx, m);
      const tables = [...ds.tables.values()].map((t) => ({
        kind: 'bigquery#table',
        id: tableName(t),
        tableReference: { projectId: t.projectId, datasetId: t.datasetId, tableId: t.tableId },
        type: t.type,
        creationTime: String(t.creationTime),
        ...(t.timePartitioning ? { timePartitioning: t.timePartitioning } : {}),
        ...(t.clustering ? { clustering: t.clustering } : {}),
      }));
      return { status: 200, body: { kind: 'bigquery#tableList', tables, totalItems: tables.length } };
    }
    case 'tables.get': {
      const { ds, table } = requireTable(ctx, m);
      return { status: 200, body: tableResource(table, ds.location) };
    }
    case 'tables.insert': {
      const json = parseJsonBody(body);
      const ref = isObject(json.tableReference) ? json.tableReference : {};
      if (typeof ref.tableId !== 'string') throw invalid('Required parameter is missing: tableReference.tableId');
      if (
        (ref.datasetId !== undefined && ref.datasetId !== m.datasetId) ||
        (ref.projectId !== undefined && ref.projectId !== m.projectId)
      ) {
        throw invalid(
          `The table reference ${show(ref.projectId)}:${show(ref.datasetId)}.${ref.tableId} does not match the dataset of the request.`,
        );
      }
      const ds = requireDataset(ctx, m);
      const table = ctx.state.createTable(m.datasetId, ref.tableId, tableInput(json), m.projectId);
      return { status: 200, body: tableResource(table, ds.location) };
    }
    case 'tables.patch':
    case 'tables.update':
      return updateTable(ctx, m, req, parseJsonBody(body), m.route === 'tables.update');
    case 'tables.delete': {
      const { ds } = requireTable(ctx, m);
      ds.tables.delete(m.tableId);
      return { status: 204 };
    }
    case 'tabledata.insertAll':
      return insertAll(ctx, m, parseJsonBody(body), body.bytes.length);
  }
}

function tableInput(json: Record<string, unknown>): TableInput {
  const input: TableInput = {};
  if (json.schema !== undefined) {
    if (!isObject(json.schema)) throw invalid('schema must be an object with fields.');
    input.schema = (json.schema.fields ?? []) as unknown[];
  }
  if (json.timePartitioning !== undefined) input.timePartitioning = json.timePartitioning;
  if (json.rangePartitioning !== undefined) input.rangePartitioning = json.rangePartitioning;
  if (json.clustering !== undefined) input.clustering = json.clustering;
  if (isObject(json.labels)) input.labels = json.labels as Record<string, string>;
  for (const key of ['description', 'friendlyName', 'expirationTime'] as const) {
    const value = json[key];
    if (typeof value === 'string' || typeof value === 'number') input[key] = String(value);
  }
  if (json.view !== undefined && json.view !== null) input.view = json.view as TableInput['view'];
  return input;
}

function updateTable(
  ctx: Context,
  m: Match,
  req: IncomingMessage,
  json: Record<string, unknown>,
  replace: boolean,
): Reply {
  const { ds, table } = requireTable(ctx, m);
  const ifMatch = req.headers['if-match'];
  if (typeof ifMatch === 'string' && ifMatch !== '*' && ifMatch !== table.etag) {
    throw new BigQueryApiError(412, 'conditionNotMet', 'Precondition check failed.');
  }
  const input = tableInput(json);
  const name = tableName(table);
  // Everything is checked before anything changes: a refused update leaves the table as it was.
  let schema: TableField[] | undefined;
  if (input.schema !== undefined) {
    schema = normalizeSchema(input.schema);
    if (table.type === 'TABLE') checkSchemaUpdate(table.schema, schema, name);
  }
  const effective = schema ?? table.schema;
  let view: TableState['view'];
  if (input.view !== undefined) {
    if (table.type !== 'VIEW') throw invalid(`Cannot change table ${name} into a view.`);
    view = ctx.state.checkView(input.view, m.projectId);
  } else if (replace && table.type === 'VIEW') {
    throw invalid(`Missing view definition for view ${name}.`);
  }
  let timePartitioning: TimePartitioning | undefined;
  if (input.timePartitioning !== undefined && input.timePartitioning !== null) {
    timePartitioning = checkTimePartitioning(input.timePartitioning, effective);
    const old = table.timePartitioning;
    if (!old) throw invalid(`Cannot convert non-partitioned table ${name} to a partitioned table.`);
    if (old.type !== timePartitioning.type || (old.field ?? '') !== (timePartitioning.field ?? '')) {
      throw invalid(
        `Cannot change partitioning spec for ${name} from ${old.type}(${old.field ?? '_PARTITIONTIME'}) to ${timePartitioning.type}(${timePartitioning.field ?? '_PARTITIONTIME'}).`,
      );
    }
  }
  const clustering =
    input.clustering !== undefined && input.clustering !== null
      ? checkClustering(input.clustering, effective)
      : undefined;

  const now = ctx.clock();
  if (schema) {
    table.schema = schema;
    table.schemaHistory.push({ since: now, fields: schema });
  }
  if (view) table.view = view;
  if (timePartitioning) table.timePartitioning = timePartitioning;
  if (clustering) table.clustering = clustering;
  else if (json.clustering === null) delete table.clustering;
  applyDescriptive(table, input, replace);
  table.lastModifiedTime = now;
  table.etag = newEtag();
  return { status: 200, body: tableResource(table, ds.location) };
}

function insertAll(ctx: Context, m: Match, json: Record<string, unknown>, bodyBytes: number): Reply {
  if (m.tableId.includes('$'))
    throw new BigQueryApiError(501, 'notImplemented', 'bigquery-test-server does not support partition decorators.');
  const { table } = requireTable(ctx, m);
  if (table.type === 'VIEW') throw invalid(`Cannot insert rows into a view: ${tableName(table)}`);
  if (json.templateSuffix !== undefined)
    throw new BigQueryApiError(501, 'notImplemented', 'bigquery-test-server does not support templateSuffix.');
  const rows = json.rows;
  if (!Array.isArray(rows) || rows.length === 0) throw invalid('No rows present in the request.');
  if (rows.length > ctx.limits.maxRowsPerRequest) {
    throw invalid(
      `too many rows present in the request, limit: ${ctx.limits.maxRowsPerRequest} row count: ${rows.length}.`,
    );
  }
  const skipInvalidRows = json.skipInvalidRows === true;
  const ignoreUnknownValues = json.ignoreUnknownValues === true;
  const now = ctx.clock();
  const cutoff = now - ctx.schemaUpdateDelayMs;
  const fields =
    (table.schemaHistory.findLast((h) => h.since <= cutoff) ?? table.schemaHistory[0])?.fields ?? table.schema;

  const rowErrors = new Map<number, RowError[]>();
  const accepted: Array<{ index: number; insertId: string | undefined; row: Record<string, unknown> }> = [];
  let anyInvalid = false;
  rows.forEach((entry: unknown, index) => {
    const insertId =
      isObject(entry) && typeof entry.insertId === 'string' && entry.insertId !== '' ? entry.insertId : undefined;
    const rowJson = isObject(entry) ? (entry.json ?? {}) : entry;
    // No row is larger than the request that holds it: measuring each row (serialising it again)
    // is needed only for a request larger than the row limit.
    const size = bodyBytes <= ctx.limits.maxRowBytes ? 0 : jsonBytes(rowJson);
    if (size > ctx.limits.maxRowBytes) {
      rowErrors.set(index, [
        {
          reason: 'invalid',
          location: '',
          message: `Maximum allowed row size exceeded. Allowed: ${ctx.limits.maxRowBytes} Row size: ${size}`,
        },
      ]);
      anyInvalid = true;
      return;
    }
    const { errors, row } = checkRow(fields, rowJson, { ignoreUnknownValues });
    if (errors.length > 0) {
      rowErrors.set(index, errors);
      anyInvalid = true;
      return;
    }
    const injected = ctx.faults.takeRowFault({ table: `${m.datasetId}.${m.tableId}`, index, insertId, json: row });
    if (injected) {
      rowErrors.set(index, [injected]);
      if (injected.reason === 'invalid') anyInvalid = true;
      return;
    }
    accepted.push({ index, insertId, row });
  });

  if (anyInvalid && !skipInvalidRows) {
    for (const { index } of accepted) rowErrors.set(index, [{ reason: 'stopped', location: '', message: '' }]);
  } else {
    for (const { insertId, row } of accepted) {
      if (insertId !== undefined) {
        const seen = table.insertIds.get(insertId);
        // Best-effort dedup as BigQuery does: acknowledged, not stored a second time.
        if (seen !== undefined && now - seen <= ctx.dedupWindowMs) continue;
        table.insertIds.set(insertId, now);
      }
      table.rows.push({ insertId, json: row, storedAt: now });
    }
  }

  const insertErrors = [...rowErrors.entries()].sort(([a], [b]) => a - b).map(([index, errors]) => ({ index, errors }));
  return {
    status: 200,
    body: { kind: 'bigquery#tableDataInsertAllResponse', ...(insertErrors.length > 0 ? { insertErrors } : {}) },
  };
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.destroyed || res.headersSent) return;
  if (reply.body === undefined) {
    res.writeHead(reply.status).end();
    return;
  }
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': 'application/json; charset=UTF-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export async function startBigQueryTestServer(options: BigQueryTestServerOptions = {}): Promise<BigQueryTestServer> {
  const clock = options.clock ?? Date.now;
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  const state = new BigQueryTestState(options.projectId ?? 'test', clock);
  const faults = new BigQueryFaults(options.seed ?? 1, options.latencyMs ?? 0);
  const ctx: Context = {
    state,
    faults,
    limits,
    clock,
    dedupWindowMs: options.dedupWindowMs ?? Number.POSITIVE_INFINITY,
    schemaUpdateDelayMs: options.schemaUpdateDelayMs ?? 0,
  };
  const requireAuth = options.requireAuth ?? true;

  const server: Server = createServer((req, res) => {
    void (async () => {
      const method = req.method ?? 'GET';
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const match = matchRoute(method, url.pathname);
      let reply: Reply;
      try {
        const body = await readBody(req, limits.frontEndMaxBytes);
        reply = await respond(ctx, match, req, url, body, requireAuth);
      } catch (err) {
        reply =
          err instanceof BigQueryApiError
            ? { status: err.status, body: err.body() }
            : {
                status: 500,
                body: new BigQueryApiError(500, 'internalError', `bigquery-test-server: ${String(err)}`).body(),
              };
      }
      state.requests.push({
        method,
        path: url.pathname,
        route: match?.route ?? 'unknown',
        status: reply.status,
        at: clock(),
      });
      send(res, reply);
    })();
  });

  // Longer than Node's HTTP client keeps an idle connection (5 s), so that the client, not this
  // server, closes it: otherwise a request can meet a connection being closed ("socket hang up").
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    state,
    faults,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function respond(
  ctx: Context,
  match: Match | undefined,
  req: IncomingMessage,
  url: URL,
  body: Body,
  requireAuth: boolean,
): Promise<Reply> {
  if (body.size > ctx.limits.frontEndMaxBytes) {
    throw new BigQueryApiError(413, 'requestTooLarge', 'Request Too Large');
  }
  if (requireAuth && !/^Bearer \S+/i.test(req.headers.authorization ?? '')) {
    throw new BigQueryApiError(
      401,
      'required',
      'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
      { location: 'Authorization', locationType: 'header' },
    );
  }
  if (!match) {
    throw new BigQueryApiError(
      501,
      'notImplemented',
      `bigquery-test-server does not implement ${req.method ?? 'GET'} ${url.pathname}`,
    );
  }
  const latency = ctx.faults.latencyFor(match.route);
  try {
    const fault = ctx.faults.takeRequestFault(match.route);
    if (fault) throw fault;
    return handle(ctx, match, req, url, decodeBody(ctx, req, body));
  } finally {
    if (latency > 0) await sleep(latency);
  }
}

function decodeBody(ctx: Context, req: IncomingMessage, body: Body): Body {
  let decoded = body;
  if (/\bgzip\b/i.test(String(req.headers['content-encoding'] ?? '')) && body.bytes.length > 0) {
    try {
      const bytes = gunzipSync(body.bytes, { maxOutputLength: ctx.limits.frontEndMaxBytes + 1 });
      decoded = { bytes, size: bytes.length };
    } catch {
      throw new BigQueryApiError(400, 'parseError', 'The request body is not valid gzip.');
    }
  }
  if (decoded.size > ctx.limits.maxRequestBytes) {
    throw new BigQueryApiError(
      400,
      'badRequest',
      `Request payload size exceeds the limit: ${ctx.limits.maxRequestBytes} bytes.`,
    );
  }
  return decoded;
}
