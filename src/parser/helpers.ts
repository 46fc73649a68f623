/** Helpers for parsers: reading JSON documents and shaping values the way the tables expect. */
import { EtlError } from '../errors.js';
import { depthOf } from '../json/json-stream.js';
import { DEFAULT_LIMITS } from '../limits.js';
import { jsonErrorMessage, parseLosslessDocument } from '../json/lossless-json.js';
import type { JsonLimits } from '../limits.js';

/**
 * The one JSON document of an entry (an ndt7 result, an annotation), parsed in one call: the
 * document is needed whole anyway, and one parse is much cheaper than scanning it value by value.
 * None, more than one, or text that is not JSON fails the entry.
 */
export async function readOneJson(body: AsyncIterable<Buffer>, limits?: Partial<JsonLimits>): Promise<unknown> {
  const maxChars = limits?.maxValueChars ?? DEFAULT_LIMITS.maxValueChars;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    // Bytes bound characters from above: over the limit in bytes may still fit in characters, so check both.
    if (size > maxChars * 4) {
      throw new EtlError('record_too_large', `the JSON document exceeds ${maxChars} characters`, { stage: 'parser' });
    }
    chunks.push(chunk);
  }
  let text = Buffer.concat(chunks, size).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.length > maxChars) {
    throw new EtlError('record_too_large', `the JSON document exceeds ${maxChars} characters`, { stage: 'parser' });
  }
  if (text.trim() === '') throw new EtlError('invalid_json', 'the entry holds no JSON document', { stage: 'parser' });
  const maxDepth = limits?.maxJsonDepth ?? DEFAULT_LIMITS.maxJsonDepth;
  try {
    return parseLosslessDocument(text);
  } catch (err) {
    if (err instanceof RangeError || (text.length > maxDepth && depthOf(text) > maxDepth)) {
      throw new EtlError('json_too_deep', `JSON nested deeper than ${maxDepth} levels`, {
        stage: 'parser',
        cause: err,
      });
    }
    throw new EtlError('invalid_json', `${jsonErrorMessage(err)}; text: ${text.slice(0, 200)}`, {
      stage: 'parser',
      cause: err,
    });
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const FRACTION = /^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(Z|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time with at most 6 fraction digits (BigQuery and DuckDB keep microseconds); extra digits are cut, not rounded. */
export function microsecondTime(value: string): string {
  const m = FRACTION.exec(value);
  if (!m || (m[2] as string).length <= 6) return value;
  return `${m[1]}.${(m[2] as string).slice(0, 6)}${m[3]}`;
}

/** A number from an integer that may be a bigint (counters): for arithmetic, where a double is what the column holds. */
export function toNumber(v: unknown): number {
  if (typeof v === 'bigint') return Number(v);
  return typeof v === 'number' ? v : 0;
}
