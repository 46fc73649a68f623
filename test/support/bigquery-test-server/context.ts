/** What a request handler gets: the matched route, the body, and the server's state and settings. */
import { notFound } from './errors.js';
import type { BigQueryFaults } from './faults.js';
import type { BigQueryTestState } from './state.js';
import type { DatasetState, Limits, RouteName, TableState } from './types.js';

export interface Match {
  route: RouteName;
  projectId: string;
  datasetId: string;
  tableId: string;
}

export interface Body {
  bytes: Buffer;
  /** Bytes received, also those past `frontEndMaxBytes` that were not kept. */
  size: number;
}

export interface Reply {
  status: number;
  body?: unknown;
}

export interface Context {
  state: BigQueryTestState;
  faults: BigQueryFaults;
  limits: Limits;
  clock: () => number;
  dedupWindowMs: number;
  schemaUpdateDelayMs: number;
}

export function requireDataset(ctx: Context, m: Match): DatasetState {
  const ds = ctx.state.dataset(m.datasetId, m.projectId);
  if (!ds) throw notFound(`Not found: Dataset ${m.projectId}:${m.datasetId}`);
  return ds;
}

export function requireTable(ctx: Context, m: Match): { ds: DatasetState; table: TableState } {
  const ds = requireDataset(ctx, m);
  const table = ds.tables.get(m.tableId);
  if (!table) throw notFound(`Not found: Table ${m.projectId}:${m.datasetId}.${m.tableId}`);
  return { ds, table };
}
