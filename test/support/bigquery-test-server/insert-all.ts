/**
 * tabledata.insertAll: the request limits, each row checked against the schema in effect on the
 * streaming path, BigQuery's all-or-nothing answer unless `skipInvalidRows`, and best-effort
 * insertId dedup.
 */
import { requireTable, type Context, type Match, type Reply } from './context.js';
import { BigQueryApiError, invalid } from './errors.js';
import { isObject, jsonBytes } from './json-text.js';
import { checkRow } from './row-rules.js';
import { tableName } from './state.js';
import type { RowError } from './types.js';

export function insertAll(ctx: Context, m: Match, json: Record<string, unknown>, bodyBytes: number): Reply {
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
