/**
 * Rows as they travel from the pipeline to a sink: JSONL bytes serialised once, with where each
 * row ends, so no sink serialises a row again and a worker thread hands a batch over by
 * transferring one buffer.
 */
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
