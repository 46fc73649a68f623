/**
 * Where rows go. Every sink (DuckDB, JSONL, BigQuery) keeps the same contract:
 * - rows of a datatype go to table `raw_<experiment>.<datatype>`, whose columns come from the schema;
 * - analysts read the view `<experiment>.<datatype>`: one row per (id, date), newest parser.Time;
 * - `_rejects` holds what did not become a row, `_archives` one ledger record per archive;
 * - commitArchive makes the archive's rows and rejects durable first, then writes its ledger record.
 */
import type { ErrorCode } from '../errors.js';
import type { ArchiveRecord, RejectRecord } from '../ledger/records.js';
import type { RowBatch } from '../rows/row-batch.js';
import type { TableRef } from '../schema/tables.js';

export interface Sink {
  /** e.g. `duckdb:/path/mlab-etl.duckdb` */
  readonly description: string;
  /** Creates the table and view of a datatype if they do not exist. Idempotent. */
  prepareTable(ref: TableRef): Promise<void>;
  /** Rows that passed validation, serialised once by the pipeline. May buffer; durable after commitArchive. */
  writeRows(ref: TableRef, batch: RowBatch): Promise<void>;
  /** Whether writeRows uses `keys`; when not, the pipeline does not compute them (a hash per row). */
  readonly usesRowKeys?: boolean;
  writeRejects(rejects: RejectRecord[]): Promise<void>;
  /**
   * Stores everything written so far, then the archive's ledger record. A sink that refuses rows
   * itself (BigQuery) moves them from rows_written to rows_rejected in `record` before storing it,
   * and says which rejects it added.
   */
  commitArchive(record: ArchiveRecord): Promise<CommitResult>;
  /** Creates or updates the tables and views of these datatypes (`mlab-etl setup`); absent when there is nothing to set up. */
  setup?(refs: TableRef[]): Promise<SetupAction[]>;
  close(): Promise<void>;
  /** For readiness probes: can the sink be reached now? Absent means always. */
  ready?(): Promise<boolean>;
}

/** What a commit stored. */
export interface CommitResult {
  /** The ledger record as stored. */
  record: ArchiveRecord;
  /** Rejects the sink itself wrote for the archive (e.g. sink_rejected, row_too_large), by code. */
  rejected: Partial<Record<ErrorCode, number>>;
}

/** One thing `setup` did. */
export interface SetupAction {
  /** project.dataset[.table] */
  object: string;
  kind: 'dataset' | 'table' | 'view';
  action: 'created' | 'updated' | 'unchanged';
  /** For an updated table, the fields added or relaxed; for an updated view, `query`. */
  changes?: string[];
}
