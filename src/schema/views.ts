/**
 * The views analysts query, defined once and rendered for DuckDB and BigQuery.
 *
 * - Every table `raw_<experiment>.<datatype>` has a view `<experiment>.<datatype>` with one row per
 *   (id, date), the newest `parser.Time` winning: reprocessing and redelivery never show twice.
 * - A datatype whose `id` is a connection UUID (schema `x-mlab.idKind: "connection-uuid"`) also
 *   gets `server` and `client` from the `annotation2` rows of the same experiment dated the day
 *   before or the same day (M-Lab's join), as a LEFT JOIN so rows without an annotation still show.
 */
import type { SchemaSet } from './schema-set.js';
import type { TableRef } from './tables.js';

export type Dialect = 'duckdb' | 'bigquery';
/** Renders a dataset-qualified table name in the dialect (quoting, project prefix). */
export type Qualify = (dataset: string, table: string) => string;

export const ANNOTATION_DATATYPE = 'annotation2';

export interface ViewPlan {
  /** Tables that must exist before the view can be created (the annotation table of the experiment). */
  needs: TableRef[];
  sql: (dialect: Dialect, qualify: Qualify) => string;
}

const NEWEST_FIRST = 'ORDER BY parser.Time DESC, parser.ArchiveURL DESC, parser.Filename DESC';

function dedup(source: string): string {
  return `SELECT * FROM ${source} WHERE TRUE QUALIFY row_number() OVER (PARTITION BY id, date ${NEWEST_FIRST}) = 1`;
}

function dayBefore(expr: string, dialect: Dialect): string {
  return dialect === 'bigquery' ? `DATE_SUB(${expr}, INTERVAL 1 DAY)` : `CAST(${expr} - INTERVAL 1 DAY AS DATE)`;
}

export function joinsAnnotations(schemas: SchemaSet, datatype: string): boolean {
  const meta = schemas.meta(datatype);
  return meta.idKind === 'connection-uuid' && datatype !== ANNOTATION_DATATYPE && schemas.has(ANNOTATION_DATATYPE);
}

export function planView(ref: TableRef, schemas: SchemaSet): ViewPlan {
  if (!joinsAnnotations(schemas, ref.table)) {
    return { needs: [], sql: (_d, q) => dedup(q(ref.dataset, ref.table)) };
  }
  const annotations: TableRef = { dataset: ref.dataset, table: ANNOTATION_DATATYPE, viewDataset: ref.viewDataset };
  const own = schemas
    .fields(ref.table)
    .map((f) => f.name)
    .filter((n) => !['id', 'date', 'parser', 'server', 'client'].includes(n));
  return {
    needs: [annotations],
    sql: (dialect, q) =>
      [
        `SELECT t.id, t.date, t.parser, ann.server, ann.client${own.map((c) => `, t.${c}`).join('')}`,
        `FROM (${dedup(q(ref.dataset, ref.table))}) AS t`,
        `LEFT JOIN (${dedup(q(annotations.dataset, annotations.table))}) AS ann`,
        `ON ann.id = t.id AND ann.date BETWEEN ${dayBefore('t.date', dialect)} AND t.date`,
        'WHERE TRUE',
        'QUALIFY row_number() OVER (PARTITION BY t.id, t.date ORDER BY ann.date DESC NULLS LAST) = 1',
      ].join('\n'),
  };
}
