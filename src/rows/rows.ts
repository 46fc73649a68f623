/**
 * Rows: the pipeline, not the parser, adds the standard columns (`date`, `parser` provenance),
 * then validates every row against its datatype's schema. A row that fails goes to the rejects
 * with the JSON path and keyword of the failure, never silently away.
 */
import { createHash } from 'node:crypto';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { excerpt, type EntryReject } from '../ledger/records.js';
import { stringifyBigQuery } from '../json/lossless-json.js';
import type { ParsedRow } from '../parser/api.js';
import { jsonlBytes, type RowBatch } from './row-batch.js';
import { describeErrors } from '../schema/schema-set.js';

export interface Provenance {
  Version: string;
  Time: string;
  ArchiveURL: string;
  Filename: string;
  Priority?: number;
  GitCommit?: string;
  ArchiveSize?: number;
  FileSize?: number;
}

export type Row = { id: string; date: string; parser: Provenance } & Record<string, unknown>;

export function assembleRow(parsed: ParsedRow, date: string, parser: Provenance): Row {
  const { id, ...columns } = parsed;
  return { id, date, parser, ...columns };
}

export interface Checked {
  rows: Row[];
  /** Index within the entry of each valid row. */
  indices: number[];
  rejects: EntryReject[];
}

/** Splits rows into valid ones and rejects (schema_violation). `firstIndex` numbers rows within their entry. */
export function checkRows(
  validate: ValidateFunction,
  rows: Row[],
  where: { entry: string; firstIndex: number },
): Checked {
  const ok: Row[] = [];
  const indices: number[] = [];
  const rejects: EntryReject[] = [];
  rows.forEach((row, i) => {
    if (validate(row)) {
      ok.push(row);
      indices.push(where.firstIndex + i);
      return;
    }
    rejects.push({
      entry: where.entry,
      row_index: where.firstIndex + i,
      code: 'schema_violation',
      message: describeErrors(validate.errors),
      excerpt: excerpt(stringifyBigQuery(row)),
    });
  });
  return { rows: ok, indices, rejects };
}

/**
 * A row's deterministic key: the same archive generation, entry and row index give the same key
 * on every processing, so a sink can drop repeats (BigQuery insertId, at most 128 characters).
 */
export function rowKey(archiveUrl: string, generation: string | null, entry: string, index: number): string {
  return createHash('sha256')
    .update(`${archiveUrl}#${generation ?? ''}\u0000${entry}\u0000${index}`)
    .digest('base64url');
}

/**
 * A RowBatch of rows from one entry, serialised; their origin comes from their provenance. For
 * callers holding row objects (tests, tools); the pipeline builds batches itself.
 */
export function rowBatch(rows: Row[], keys: string[] = [], indices: number[] = rows.map((_, i) => i)): RowBatch {
  const first = rows[0]?.parser;
  for (const r of rows) {
    if (
      r.parser.ArchiveURL !== first?.ArchiveURL ||
      r.parser.Filename !== first.Filename ||
      r.parser.Time !== first.Time
    ) {
      throw new Error('rowBatch: the rows come from more than one entry or processing');
    }
  }
  if (keys.length !== 0 && keys.length !== rows.length)
    throw new Error(`rowBatch: ${rows.length} rows but ${keys.length} keys`);
  return {
    ...jsonlBytes(rows.map((r) => stringifyBigQuery(r))),
    indices,
    keys,
    archiveUrl: first?.ArchiveURL ?? '',
    entry: first?.Filename ?? '',
    time: first?.Time ?? '',
  };
}
