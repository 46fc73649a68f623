/**
 * One error type for the whole pipeline. The `code` is a bounded vocabulary: logs, metrics, the
 * ledger and the rejects are labelled by it, never by message text. ERRORS says, for each code,
 * what it means for the archive and for the trigger; everything that decides by code reads it.
 */

export type Stage = 'input' | 'identity' | 'archive' | 'registry' | 'parser' | 'rows' | 'sink';

/**
 * Whether an archive that failed with the code is processed again: `transient` (a service down
 * or slow: retrying the request itself may pass), `after_fix` (a schema or mlab-etl to fix first:
 * the message is redelivered until it is, or dead-lettered), or `no` (redelivery cannot fix it).
 */
export type Retry = 'no' | 'transient' | 'after_fix';

/** What becomes of a Pub/Sub message: acked (done, or it cannot succeed) or nacked (redelivered). */
export type Disposition = 'ack' | 'nack';

interface ErrorSpec {
  description: string;
  /** Where the code is raised: a pipeline stage, the trigger (message parsing), or anywhere. */
  stage: Stage | 'trigger' | 'any';
  /**
   * Raised while an entry is read, it fails the archive, not only that entry. Codes raised before
   * any entry is read (identity, registry) fail the archive anyway and are not marked.
   */
  endsArchive: boolean;
  retry: Retry;
  /** Status of the manual endpoint for an archive or request failed with the code and acked (422 if not given). */
  status?: number;
}

const SPECS = {
  // archive identity and inputs
  bad_archive_path: {
    description: 'the archive path does not follow the M-Lab grammar and no override was given',
    stage: 'identity',
    endsArchive: false,
    retry: 'no',
    status: 400,
  },
  input_not_found: {
    description: 'the input path does not exist or cannot be read',
    stage: 'input',
    endsArchive: true,
    retry: 'no',
  },
  object_not_found: {
    description: 'the archive object (at that generation) does not exist in Cloud Storage',
    stage: 'input',
    endsArchive: true,
    retry: 'no',
    status: 404,
  },
  source_unavailable: {
    description: 'Cloud Storage could not be read (a transient failure that outlasted the resumes)',
    stage: 'input',
    endsArchive: true,
    retry: 'transient',
  },
  bucket_not_allowed: {
    description: 'the bucket is not in --allow-bucket',
    stage: 'input',
    endsArchive: false,
    retry: 'no',
    status: 403,
  },
  bad_message: {
    description: 'a Pub/Sub message or push request that is not a GCS notification nor {"filename": "gs://..."}',
    stage: 'trigger',
    endsArchive: false,
    retry: 'no',
    status: 400,
  },
  unknown_datatype: {
    description: 'no parser is registered for the datatype',
    stage: 'registry',
    endsArchive: false,
    retry: 'no',
  },
  parsers_not_built: {
    description:
      'in a checkout, parsers/ and its build dist/parsers/ differ (a parser added, edited or deleted since npm run build)',
    stage: 'registry',
    endsArchive: false,
    retry: 'no',
  },
  // archive reader
  corrupt_archive: {
    description: 'the archive is not a readable tar (or gzip) stream',
    stage: 'archive',
    endsArchive: true,
    retry: 'no',
  },
  truncated_archive: {
    description: 'the archive ends in the middle of a tar header or body',
    stage: 'archive',
    endsArchive: true,
    retry: 'no',
  },
  corrupt_entry: {
    description: 'an entry could not be decompressed',
    stage: 'archive',
    endsArchive: false,
    retry: 'no',
  },
  entry_too_large: {
    description: 'the entry is larger than the configured limit and was skipped',
    stage: 'archive',
    endsArchive: false,
    retry: 'no',
  },
  inflated_too_large: {
    description: 'an entry or archive decompresses to more bytes than the configured limit',
    stage: 'archive',
    endsArchive: false,
    retry: 'no',
  },
  decompression_bomb: {
    description: 'the data decompresses far more than real data does (a gzip bomb)',
    stage: 'archive',
    endsArchive: false,
    retry: 'no',
  },
  too_many_entries: {
    description: 'the archive holds more entries than the configured limit',
    stage: 'archive',
    endsArchive: true,
    retry: 'no',
  },
  archive_timeout: {
    description: 'processing the archive took longer than its wall-clock budget',
    stage: 'archive',
    endsArchive: true,
    retry: 'transient',
  },
  unsupported_entry: {
    description: 'the entry is not a regular file and was skipped',
    stage: 'archive',
    endsArchive: false,
    retry: 'no',
  },
  not_parsable: {
    description: 'the parser for this datatype does not accept this entry name',
    stage: 'registry',
    endsArchive: false,
    retry: 'no',
  },
  // parsing
  invalid_json: {
    description: 'the entry holds text that is not valid JSON',
    stage: 'parser',
    endsArchive: false,
    retry: 'no',
  },
  record_too_large: {
    description: 'a single JSON value or line is larger than the configured limit',
    stage: 'parser',
    endsArchive: false,
    retry: 'no',
  },
  json_too_deep: {
    description: 'a JSON value nests arrays and objects deeper than the configured limit',
    stage: 'parser',
    endsArchive: false,
    retry: 'no',
  },
  too_many_rows: {
    description: 'one entry produced more rows than the configured limit',
    stage: 'parser',
    endsArchive: false,
    retry: 'no',
  },
  invalid_record: {
    description: 'a JSON value is well formed but not the shape the parser expects',
    stage: 'parser',
    endsArchive: false,
    retry: 'no',
  },
  record_skipped: {
    description: 'the parser skipped a record it cannot turn into a row',
    stage: 'parser',
    endsArchive: false,
    retry: 'no',
  },
  parser_error: {
    description: 'the parser failed unexpectedly on this entry (a parser bug or an input it does not handle)',
    stage: 'parser',
    endsArchive: false,
    retry: 'no',
  },
  // rows and sinks
  schema_violation: {
    description: 'the row does not validate against the datatype schema',
    stage: 'rows',
    endsArchive: false,
    retry: 'no',
  },
  sink_error: { description: 'the sink could not store rows', stage: 'sink', endsArchive: true, retry: 'transient' },
  disk_full: {
    description:
      'the filesystem is full (ENOSPC, EDQUOT): nothing past the last ledger record counts as stored; free space and run again',
    stage: 'sink',
    endsArchive: true,
    retry: 'transient',
  },
  sink_rejected: {
    description: 'the sink refused a row that passed validation (BigQuery insertErrors)',
    stage: 'sink',
    endsArchive: false,
    retry: 'no',
  },
  row_too_large: {
    description: 'a single row is larger than the sink accepts in one request',
    stage: 'sink',
    endsArchive: false,
    retry: 'no',
  },
  schema_incompatible: {
    description: "the live table's schema conflicts with the schema file (a type changed, a field became REQUIRED)",
    stage: 'sink',
    endsArchive: true,
    retry: 'after_fix',
  },
  internal_error: {
    description: 'an unexpected failure inside mlab-etl',
    stage: 'any',
    endsArchive: false,
    retry: 'after_fix',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof SPECS;

export interface ErrorInfo {
  readonly description: string;
  readonly stage: ErrorSpec['stage'];
  readonly endsArchive: boolean;
  readonly retry: Retry;
  /** The archive is processed again: its message is nacked. */
  readonly retryable: boolean;
  readonly disposition: Disposition;
  /** Status of the manual `/v2/worker` endpoint: 503 (try again) for what is nacked. */
  readonly manualStatus: number;
}

function info(spec: ErrorSpec): ErrorInfo {
  const retryable = spec.retry !== 'no';
  return {
    description: spec.description,
    stage: spec.stage,
    endsArchive: spec.endsArchive,
    retry: spec.retry,
    retryable,
    disposition: retryable ? 'nack' : 'ack',
    manualStatus: retryable ? 503 : (spec.status ?? 422),
  };
}

/** Every code with what it means; the rest of this module is derived from it. */
export const ERRORS: Readonly<Record<ErrorCode, ErrorInfo>> = Object.fromEntries(
  Object.entries(SPECS).map(([code, spec]) => [code, info(spec)]),
) as Record<ErrorCode, ErrorInfo>;

const codes = Object.keys(ERRORS) as ErrorCode[];

/** Each code's description. */
export const ERROR_CODES: Readonly<Record<ErrorCode, string>> = Object.fromEntries(
  codes.map((c) => [c, ERRORS[c].description]),
) as Record<ErrorCode, string>;

/** Failures that end the archive when they surface while an entry is read, not just the entry. */
export const ARCHIVE_CODES: ReadonlySet<ErrorCode> = new Set(codes.filter((c) => ERRORS[c].endsArchive));

/** Archive-level failures worth another attempt later (the service or a fixed schema may be back). */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set(codes.filter((c) => ERRORS[c].retryable));

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(SPECS, code);
}

export interface EtlErrorOptions {
  stage: Stage;
  /** Overrides the code's default (a `transient` code is retryable): whether retrying this very failure may pass. */
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
    this.retryable = options.retryable ?? ERRORS[code].retry === 'transient';
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
    return new EtlError('disk_full', `${where}: the filesystem is full (${message})`, { stage, cause: err });
  }
  return new EtlError('sink_error', `${where}: ${message}`, { stage, cause: err });
}
