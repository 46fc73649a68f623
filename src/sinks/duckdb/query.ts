/** SQL over the local DuckDB file, for `mlab-etl query` and `npm start`. */
import { existsSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { EtlError } from '../../errors.js';

export interface QueryResult {
  columns: string[];
  rows: Record<string, unknown>[];
}

/**
 * JSON-ready values: integers as numbers when they are safe, as decimal strings when not (as in
 * BigQuery's JSON), timestamps and dates as DuckDB prints them, structs and lists as objects and arrays.
 */
function exact(js: unknown, json: unknown): unknown {
  if (typeof js === 'bigint') return Number.isSafeInteger(Number(js)) ? Number(js) : json;
  if (Array.isArray(js) && Array.isArray(json)) return js.map((v, i) => exact(v, json[i]));
  if (js !== null && typeof js === 'object' && !(js instanceof Date) && json !== null && typeof json === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(json))
      out[k] = exact((js as Record<string, unknown>)[k], (json as Record<string, unknown>)[k]);
    return out;
  }
  return json;
}

export async function runQuery(dbFile: string, sql: string): Promise<QueryResult> {
  if (dbFile !== ':memory:' && !existsSync(dbFile)) {
    throw new EtlError('input_not_found', `no database at ${dbFile}: run \`mlab-etl parse\` first, or give --db`, {
      stage: 'input',
    });
  }
  const instance = await DuckDBInstance.create(dbFile, dbFile === ':memory:' ? {} : { access_mode: 'READ_ONLY' });
  const conn = await instance.connect();
  try {
    const reader = await conn.runAndReadAll(sql);
    const js = reader.getRowObjectsJS();
    const json = reader.getRowObjectsJson();
    return { columns: reader.columnNames(), rows: json.map((row, i) => exact(js[i], row) as Record<string, unknown>) };
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

const MAX_CELL = 60;

/** A plain text table, cells cut to MAX_CELL characters. */
export function formatTable(result: QueryResult): string {
  const cell = (v: unknown): string => {
    const s = v === null || v === undefined ? 'NULL' : typeof v === 'string' ? v : JSON.stringify(v);
    return s.length > MAX_CELL ? `${s.slice(0, MAX_CELL - 1)}…` : s;
  };
  const body = result.rows.map((r) => result.columns.map((c) => cell(r[c])));
  const widths = result.columns.map((c, i) => Math.max(c.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [
    line(result.columns),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
    `(${result.rows.length} ${result.rows.length === 1 ? 'row' : 'rows'})`,
  ].join('\n');
}
