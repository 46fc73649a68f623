/**
 * JSON that keeps every integer exact. `JSON.parse` rounds integers beyond +/-2^53 (DISCO's
 * nanosecond timestamps and 64-bit counters); here such literals come back as `bigint`, every
 * other number as `number`.
 *
 * How: integer literals of 16 or more digits outside strings are rewritten as tagged strings,
 * the text goes through the native `JSON.parse`, and the tagged strings are turned back into
 * integers. Text without such literals (most of it) pays one regex test.
 */

const LONG_DIGITS = /\d{16}/;
/** A string literal (skipped as is) or an integer literal of 16+ digits, not part of a fraction or exponent. */
const STRING_OR_LONG_INT = /"(?:[^"\\]|\\.)*"|(?<![\d.eE+-])(-?\d{16,})(?![\d.eE])/g;

export type LosslessNumber = number | bigint;

/** An integer literal as `number` when it is safe, `bigint` when it is not. */
export function exactInteger(literal: string): LosslessNumber {
  // 17 or more digits are always beyond 2^53 (9007199254740992 has 16): no need to try a number.
  const digits = literal.charCodeAt(0) === 0x2d ? literal.length - 1 : literal.length;
  if (digits > 16) return BigInt(literal);
  const n = Number(literal);
  return Number.isSafeInteger(n) ? n : BigInt(literal);
}

function chooseTag(text: string): string | null {
  // A control character that never occurs escaped in the text marks the rewritten literals.
  for (let c = 0; c < 0x20; c++) {
    const escaped = `\\u${c.toString(16).padStart(4, '0')}`;
    if (!text.includes(escaped) && !text.includes(escaped.toUpperCase().replace('\\U', '\\u'))) {
      return String.fromCharCode(c);
    }
  }
  return null;
}

function restore(value: unknown, tag: string): unknown {
  if (typeof value === 'string') {
    return value.length > 1 && value.charCodeAt(0) === tag.charCodeAt(0) ? exactInteger(value.slice(1)) : value;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = restore(value[i], tag);
    return value;
  }
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key in obj) obj[key] = restore(obj[key], tag);
    return obj;
  }
  return value;
}

/**
 * Integer literals of 16+ digits in value position, found without tracking strings. A match inside
 * a string gets quotes inserted into that string, which always makes the text invalid JSON: then
 * the string-aware (slower) rewrite runs instead, so the fast path can never change a string.
 */
const LONG_INT_VALUE = /([:,[]\s*)(-?\d{16,})(?=\s*[,\]}])/g;

/** Parses JSON text, integers exact. Throws SyntaxError like JSON.parse. */
export function parseLossless(text: string): unknown {
  if (!LONG_DIGITS.test(text)) return JSON.parse(text);
  const tag = chooseTag(text);
  if (tag === null) throw new SyntaxError('text escapes every control character; cannot parse losslessly');
  const tagEscape = `\\u${tag.charCodeAt(0).toString(16).padStart(4, '0')}`;
  let value: unknown;
  try {
    // A capture rather than a lookbehind for the prefix: a third faster on DISCO lines.
    value = JSON.parse(text.replace(LONG_INT_VALUE, `$1"${tagEscape}$2"`));
  } catch {
    const tagged = text.replace(STRING_OR_LONG_INT, (match: string, digits: string | undefined) =>
      digits === undefined ? match : `"${tagEscape}${digits}"`,
    );
    value = JSON.parse(tagged);
  }
  return restore(value, tag);
}

/** Whether a value from JSON.parse holds an integer it could not keep exact (beyond +/-2^53). */
function lostPrecision(value: unknown): boolean {
  if (typeof value === 'number') return Number.isInteger(value) && !Number.isSafeInteger(value);
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) {
    for (const v of value) if (lostPrecision(v)) return true;
    return false;
  }
  for (const key in value) if (lostPrecision((value as Record<string, unknown>)[key])) return true;
  return false;
}

/**
 * parseLossless for a document that seldom holds long integers (an ndt7 result, an annotation):
 * the native parse first, and the text parsed again exactly only when an integer came out beyond
 * +/-2^53. Walking the parsed value costs less than scanning its text for long digit runs.
 */
export function parseLosslessDocument(text: string): unknown {
  const value: unknown = JSON.parse(text);
  return lostPrecision(value) ? parseLossless(text) : value;
}

/**
 * BigQuery's JSON for a bigint: a number within +/-2^53, a decimal string beyond. Installed as
 * BigInt.prototype.toJSON (where nothing else defined one), so JSON.stringify serialises rows
 * natively: a replacer function called for every value made serialising the largest single cost.
 * Without it JSON.stringify throws on bigints, so no working code relied on the absence.
 */
function bigintToJson(this: bigint): number | string {
  const v = this.valueOf();
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v.toString();
}

const bigintProto = BigInt.prototype as unknown as { toJSON?: unknown };
const nativeToJson = bigintProto.toJSON === undefined;
if (nativeToJson) {
  Object.defineProperty(BigInt.prototype, 'toJSON', { value: bigintToJson, writable: true, configurable: true });
}

/**
 * The message of a JSON.parse error, the same on every Node version: from V8 12 (Node 22) on, it
 * ends with " (line L column C)", which Node 20 does not give. The position stays, and the
 * ledger's rejects and the golden files read alike whichever Node wrote them.
 */
export function jsonErrorMessage(err: unknown): string {
  return (err as Error).message.replace(/ \(line \d+ column \d+\)$/, '');
}

/** JSON text of a value holding bigints: integers outside +/-2^53 as decimal strings (BigQuery's JSON rule for INT64). */
export function stringifyBigQuery(value: unknown): string {
  if (nativeToJson) return JSON.stringify(value);
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? bigintToJson.call(v) : v));
}
