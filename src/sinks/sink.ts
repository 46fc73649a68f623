/**
 * Where rows go. Every sink (DuckDB, JSONL, BigQuery) keeps the same contract:
 * - rows of a datatype go to table `raw_<experiment>.<datatype>`, whose columns come from the schema;
 * - analysts read the view `<experiment>.<datatype>`: one row per (id, date), newest parser.Time;
 * - `_rejects` holds what did not become a row, `_archives` one ledger record per archive;
 * - commitArchive makes the archive's rows and rejects durable first, then writes its ledger record.
 */
import type { ErrorCode } from '../errors.js';
import type { ArchiveRecord, RejectRecord } from '../ledger/records.js';

export interface TableRef {
  /** `raw_<experiment>` */
  dataset: string;
  /** the datatype */
  table: string;
  /** `<experiment>`: where the deduplicated view lives */
  viewDataset: string;
}

/**
 * The table of a datatype. Experiment names may hold `-` (the archive grammar allows it) but
 * BigQuery dataset names may not: `-` becomes `_` in every sink, so names agree everywhere.
 */
export function tableFor(experiment: string, datatype: string): TableRef {
  const dataset = experiment.replace(/-/g, '_');
  return { dataset: `raw_${dataset}`, table: datatype, viewDataset: dataset };
}

export function tableName(ref: TableRef): string {
  return `${ref.dataset}.${ref.table}`;
}

/**
 * Rows of one entry as a sink receives them: already JSONL bytes in BigQuery's conventions (INT64
 * outside +/-2^53 as decimal strings), so no sink serialises a row again, and a worker thread hands
 * a batch over by transferring one buffer.
 */
export interface RowBatch {
  /** The rows' JSON text, UTF-8, each row followed by a newline (JSONL). */
  text: Buffer;
  /** Where each row's line ends in `text` (the offset after its newline). */
  ends: number[];
  /** Each row's index within its entry. */
  indices: number[];
  /**
   * Each row's deterministic key (archive, generation, entry, row index) when the sink
   * `usesRowKeys`, else empty: the same row processed again has the same key, which a sink may use
   * to drop repeats (BigQuery's insertId).
   */
  keys: string[];
  /** Where the rows come from: their parser.ArchiveURL, parser.Filename and parser.Time. */
  archiveUrl: string;
  entry: string;
  time: string;
}

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

/** Row `i`'s JSON bytes (without its newline): a view of the batch's buffer, not a copy. */
export function rowBytes(batch: Pick<RowBatch, 'text' | 'ends'>, i: number): Buffer {
  return batch.text.subarray(i === 0 ? 0 : batch.ends[i - 1], (batch.ends[i] as number) - 1);
}

/**
 * JSONL bytes of these JSON texts (none holds a raw newline) and where each line ends: written
 * straight into one buffer of its own (a worker thread transfers it), without joining the texts.
 */
export function jsonlBytes(json: string[]): { text: Buffer; ends: number[] } {
  let total = 0;
  for (const j of json) total += Buffer.byteLength(j) + 1;
  const text = Buffer.allocUnsafeSlow(total);
  const ends: number[] = new Array<number>(json.length);
  let at = 0;
  for (let i = 0; i < json.length; i++) {
    at += text.write(json[i] as string, at);
    text[at++] = 0x0a;
    ends[i] = at;
  }
  return { text, ends };
}
