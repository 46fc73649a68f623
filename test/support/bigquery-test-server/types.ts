/**
 * The test server's data model: what it stores and what its helpers take and return. Shapes and
 * spellings are BigQuery's (legacy type names, an explicit mode on every field).
 */

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

export interface RowError {
  reason: string;
  location: string;
  message: string;
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
