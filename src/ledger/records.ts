/**
 * The ledger's records: one per processed archive (`_archives`) and one per problem (`_rejects`).
 * Their columns are schemas/_archives.json and schemas/_rejects.json.
 */
import type { ErrorCode } from '../errors.js';

export type ArchiveStatus = 'ok' | 'partial' | 'failed';

export interface ArchiveRecord {
  archive_url: string;
  experiment?: string;
  datatype: string;
  date?: string;
  table?: string;
  status: ArchiveStatus;
  error_code?: ErrorCode;
  error_message?: string;
  entries_seen: number;
  directories: number;
  entries_parsed: number;
  entries_skipped: number;
  entries_failed: number;
  rows_written: number;
  rows_rejected: number;
  records_skipped: number;
  archive_bytes?: number;
  entry_bytes?: number;
  parser_version: string;
  git_commit?: string;
  started: string;
  finished: string;
}

export interface RejectRecord {
  time: string;
  archive_url: string;
  datatype: string;
  entry?: string;
  row_index?: number;
  code: ErrorCode;
  message: string;
  excerpt?: string;
}

/** A reject as an entry's parsing makes it; the pipeline adds time, archive_url and datatype. */
export type EntryReject = Omit<RejectRecord, 'time' | 'archive_url' | 'datatype'>;

export const EXCERPT_BYTES = 1024;

/** At most EXCERPT_BYTES of UTF-8, cut on a character boundary. */
export function excerpt(text: string): string {
  const head = text.slice(0, EXCERPT_BYTES);
  const bytes = Buffer.from(head);
  if (bytes.length <= EXCERPT_BYTES) return head;
  return bytes
    .subarray(0, EXCERPT_BYTES)
    .toString('utf8')
    .replace(/\uFFFD$/, '');
}
