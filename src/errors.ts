/**
 * One error type for the whole pipeline. The `code` is a bounded vocabulary: logs, metrics, the
 * ledger and the rejects are labelled by it, never by message text.
 */

export const ERROR_CODES = {
  // archive identity and inputs
  bad_archive_path: 'the archive path does not follow the M-Lab grammar and no override was given',
  input_not_found: 'the input path does not exist or cannot be read',
  object_not_found: 'the archive object (at that generation) does not exist in Cloud Storage',
  source_unavailable: 'Cloud Storage could not be read (a transient failure that outlasted the resumes)',
  bucket_not_allowed: 'the bucket is not in --allow-bucket',
  bad_message: 'a Pub/Sub message or push request that is not a GCS notification nor {"filename": "gs://..."}',
  unknown_datatype: 'no parser is registered for the datatype',
  parsers_not_built:
    'in a checkout, parsers/ and its build dist/parsers/ differ (a parser added, edited or deleted since npm run build)',
  // archive reader
  corrupt_archive: 'the archive is not a readable tar (or gzip) stream',
  truncated_archive: 'the archive ends in the middle of a tar header or body',
  corrupt_entry: 'an entry could not be decompressed',
  entry_too_large: 'the entry is larger than the configured limit and was skipped',
  inflated_too_large: 'an entry or archive decompresses to more bytes than the configured limit',
  decompression_bomb: 'the data decompresses far more than real data does (a gzip bomb)',
  too_many_entries: 'the archive holds more entries than the configured limit',
  archive_timeout: 'processing the archive took longer than its wall-clock budget',
  unsupported_entry: 'the entry is not a regular file and was skipped',
  not_parsable: 'the parser for this datatype does not accept this entry name',
  // parsing
  invalid_json: 'the entry holds text that is not valid JSON',
  record_too_large: 'a single JSON value or line is larger than the configured limit',
  json_too_deep: 'a JSON value nests arrays and objects deeper than the configured limit',
  too_many_rows: 'one entry produced more rows than the configured limit',
  invalid_record: 'a JSON value is well formed but not the shape the parser expects',
  record_skipped: 'the parser skipped a record it cannot turn into a row',
  parser_error: 'the parser failed unexpectedly on this entry (a parser bug or an input it does not handle)',
  // rows and sinks
  schema_violation: 'the row does not validate against the datatype schema',
  sink_error: 'the sink could not store rows',
  disk_full:
    'the filesystem is full (ENOSPC, EDQUOT): nothing past the last ledger record counts as stored; free space and run again',
  sink_rejected: 'the sink refused a row that passed validation (BigQuery insertErrors)',
  row_too_large: 'a single row is larger than the sink accepts in one request',
  schema_incompatible:
    "the live table's schema conflicts with the schema file (a type changed, a field became REQUIRED)",
  internal_error: 'an unexpected failure inside mlab-etl',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

export type Stage = 'input' | 'identity' | 'archive' | 'registry' | 'parser' | 'rows' | 'sink';

export interface EtlErrorOptions {
  stage: Stage;
  retryable?: boolean;
  cause?: unknown;
}

export class EtlError extends Error {
  readonly code: ErrorCode;
  readonly stage: Stage;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: EtlErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EtlError';
    this.code = code;
    this.stage = options.stage;
    this.retryable = options.retryable ?? false;
  }
}

/** Wraps anything thrown into an EtlError, keeping an EtlError as it is. */
export function toEtlError(err: unknown, fallback: ErrorCode, stage: Stage): EtlError {
  if (err instanceof EtlError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new EtlError(fallback, message, { stage, cause: err });
}

/** No space on the filesystem (or the quota): it passes once space is freed, so it is retryable. */
export function isNoSpace(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  // DuckDB reports its I/O errors as text only (`IO Error: Could not write file ...: No space left on device`).
  const message = err instanceof Error ? err.message : '';
  return /No space left on device|Disk quota exceeded/.test(message);
}

/**
 * A failure to write local files, as the sink's error: disk_full when the filesystem is full
 * (whatever error a later write or close shows, the first one is the cause), sink_error otherwise.
 */
export function storageError(err: unknown, where: string, stage: Stage = 'sink'): EtlError {
  if (err instanceof EtlError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (isNoSpace(err)) {
    return new EtlError('disk_full', `${where}: the filesystem is full (${message})`, {
      stage,
      cause: err,
      retryable: true,
    });
  }
  return new EtlError('sink_error', `${where}: ${message}`, { stage, cause: err, retryable: true });
}
