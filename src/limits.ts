/**
 * Limits that keep a crafted or broken archive from taking the worker down: each has a safe
 * default, is configurable, and fails with its own error code (docs/errors.md).
 */

export interface JsonLimits {
  /** Largest JSON value or line, in characters of text (record_too_large). */
  maxValueChars: number;
  /** Deepest nesting of arrays and objects (json_too_deep). */
  maxJsonDepth: number;
}

/** What a parser is given: JSON limits, and the bound on the rows it may hold for one entry. */
export interface ParserLimits extends JsonLimits {
  maxRowsPerEntry: number;
  /**
   * Rows a parser may hold in memory for one entry before it can emit them (the switch parser
   * groups a whole file by timestamp): too_many_rows beyond. A real DISCO file has 30 to 360.
   */
  maxGroupedRows: number;
  /**
   * Of those, rows held in memory: beyond, they go to a temporary file and are merged back when
   * the entry ends (grouped-rows.ts), so memory does not grow with the entry.
   */
  groupedRowsInMemory: number;
}

export interface Limits extends ParserLimits {
  /** Entries larger than this as stored are skipped (entry_too_large): M-Lab's worker skips above 200 MiB. */
  maxEntryBytes: number;
  /** Decompressed bytes of one entry (inflated_too_large). */
  maxEntryInflatedBytes: number;
  /** Decompressed bytes of a whole archive (inflated_too_large). */
  maxArchiveInflatedBytes: number;
  /** Decompressed over compressed bytes, once past `ratioFloorBytes` (decompression_bomb). gzip cannot exceed about 1032. */
  maxInflateRatio: number;
  /** Below this many decompressed bytes the ratio is not checked: small, very regular files compress well. */
  ratioFloorBytes: number;
  /** Entries in one archive, directories included (too_many_entries). */
  maxEntriesPerArchive: number;
  /** Wall-clock budget of one archive, in ms (archive_timeout, retried later). */
  archiveTimeoutMs: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_LIMITS: Limits = {
  maxEntryBytes: 200 * MiB,
  maxEntryInflatedBytes: 4 * 1024 * MiB,
  maxArchiveInflatedBytes: 64 * 1024 * MiB,
  maxInflateRatio: 200,
  ratioFloorBytes: 64 * MiB,
  // One JSON value is parsed whole: 16 MiB of `[{},{},...]` is already ~300 MB of heap.
  maxValueChars: 16 * MiB,
  maxJsonDepth: 256,
  maxRowsPerEntry: 10_000_000,
  maxGroupedRows: 100_000,
  // A switch row of 15 metrics takes ~7 KB of heap: ~14 MB. Real DISCO files have 30 to 360 rows.
  groupedRowsInMemory: 2_000,
  maxEntriesPerArchive: 1_000_000,
  archiveTimeoutMs: 60 * 60 * 1000,
};

export function limitsWith(overrides: Partial<Limits> = {}): Limits {
  return { ...DEFAULT_LIMITS, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
}

export class LimitError extends Error {
  override name = 'LimitError';
}

/** `name=value` pairs (`--limit maxJsonDepth=100`, or comma-separated in an environment variable). */
export function parseLimits(pairs: string[]): Partial<Limits> {
  const out: Partial<Limits> = {};
  for (const pair of pairs
    .flatMap((p) => p.split(','))
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [name, value] = pair.split('=', 2);
    if (name === undefined || !(name in DEFAULT_LIMITS)) {
      throw new LimitError(`--limit ${pair}: unknown limit; known: ${Object.keys(DEFAULT_LIMITS).join(', ')}`);
    }
    const n = Number(value);
    if (value === undefined || !/^\d+(\.\d+)?$/.test(value) || !(n > 0) || !Number.isFinite(n)) {
      throw new LimitError(`--limit ${pair}: expected ${name}=<positive number>`);
    }
    out[name as keyof Limits] = n;
  }
  return out;
}
