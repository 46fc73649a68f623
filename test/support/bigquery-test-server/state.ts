/**
 * What the server holds: datasets, tables and views, their rows, and every request it answered.
 * Tests read it to see what a client did and seed it to start from a given state; creating a
 * dataset or table here applies the same checks as the REST call.
 */
import { BigQueryApiError, invalid, notFound } from './errors.js';
import { isObject } from './json-text.js';
import { checkClustering, checkTimePartitioning, normalizeSchema } from './schema-rules.js';
import type { DatasetState, RequestRecord, RouteName, StoredRow, TableField, TableInput, TableState } from './types.js';

let etagCounter = 0;
export function newEtag(): string {
  etagCounter++;
  return Buffer.from(`etag-${etagCounter}-${Date.now()}`).toString('base64');
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
export function applyDescriptive(table: TableState, input: TableInput, replace: boolean): void {
  for (const key of ['description', 'friendlyName', 'labels', 'expirationTime'] as const) {
    if (input[key] !== undefined) (table as unknown as Record<string, unknown>)[key] = input[key];
    else if (replace) delete table[key];
  }
}

export function tableName(t: TableState): string {
  return `${t.projectId}:${t.datasetId}.${t.tableId}`;
}
