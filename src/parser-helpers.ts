/** Helpers for parsers: reading JSON documents and shaping values the way the tables expect. */
import { EtlError } from './errors.js';
import { jsonValues } from './json-stream.js';
import type { JsonLimits } from './limits.js';

/** The one JSON document of an entry (an ndt7 result, an annotation). None, or more than one, fails the entry. */
export async function readOneJson(body: AsyncIterable<Buffer>, limits?: Partial<JsonLimits>): Promise<unknown> {
  let found: { value: unknown } | null = null;
  for await (const v of jsonValues(body, limits)) {
    if (found !== null) {
      throw new EtlError('invalid_json', `line ${v.line}: more than one JSON document in the entry`, {
        stage: 'parser',
      });
    }
    found = v;
  }
  if (found === null) throw new EtlError('invalid_json', 'the entry holds no JSON document', { stage: 'parser' });
  return found.value;
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
