/**
 * BigQuery's JSON rules for row values, as tabledata.insertAll applies them: every error of a
 * row is reported (BigQuery reports several per row), each with its reason and location.
 */
import { findField } from './schema-rules.js';
import { isObject, show } from './json-text.js';
import type { RowError, TableField } from './types.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const BIGNUMERIC_MAX = 57896044618658097711785492504343953926634992332820282019728792003956564819967n;
const BIGNUMERIC_MIN = -57896044618658097711785492504343953926634992332820282019728792003956564819968n;
/** Seconds from the epoch to 0001-01-01 and to the end of 9999-12-31, TIMESTAMP's range. */
const TIMESTAMP_MIN_S = -62135596800;
const TIMESTAMP_MAX_S = 253402300800;
const TIMESTAMP_FORMAT_HINT = 'Required format is YYYY-MM-DD HH:MM[:SS[.SSSSSS]]';

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  return month === 2 && isLeap(year) ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function validDate(y: number, m: number, d: number): boolean {
  return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= daysInMonth(y, m);
}

function validTime(h: number, mi: number, s: number): boolean {
  return h <= 23 && mi <= 59 && s <= 59;
}

/** A decimal's digits around the point, normalised; null when the text is not a decimal. */
function decimalParts(text: string): { negative: boolean; int: string; frac: string } | null {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return null;
  const [, sign = '', intText = '', fracText = '', expText] = m;
  if (intText === '' && fracText === '') return null;
  const digits = intText + fracText;
  const exponent = Number(expText ?? '0');
  if (/^0*$/.test(digits)) return { negative: false, int: '', frac: '' };
  // Past this, no NUMERIC or BIGNUMERIC can hold the value; keep the strings short.
  if (Math.abs(exponent) > 200)
    return {
      negative: sign === '-',
      int: exponent > 0 ? '1'.padEnd(201, '0') : '',
      frac: exponent > 0 ? '' : '1'.padStart(201, '0'),
    };
  const point = intText.length + exponent;
  let int: string;
  let frac: string;
  if (point <= 0) {
    int = '';
    frac = '0'.repeat(-point) + digits;
  } else if (point >= digits.length) {
    int = digits + '0'.repeat(point - digits.length);
    frac = '';
  } else {
    int = digits.slice(0, point);
    frac = digits.slice(point);
  }
  return { negative: sign === '-', int: int.replace(/^0+/, ''), frac: frac.replace(/0+$/, '') };
}

function decimalText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

/** Null when the scalar fits the column, else the error message. */
function checkScalar(field: TableField, value: unknown): string | null {
  switch (field.type) {
    case 'INTEGER': {
      let n: bigint;
      if (typeof value === 'bigint') n = value;
      else if (typeof value === 'number' && Number.isInteger(value)) n = BigInt(value);
      else if (typeof value === 'string' && /^-?\d+$/.test(value)) n = BigInt(value);
      else return `Cannot convert value to integer (bad value): ${show(value)}`;
      return n < INT64_MIN || n > INT64_MAX ? `Cannot convert value to integer (out of range): ${show(value)}` : null;
    }
    case 'FLOAT': {
      if (typeof value === 'number' || typeof value === 'bigint') return null;
      if (typeof value === 'string') {
        if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return null;
        if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(value)) {
          return Number.isFinite(Number(value))
            ? null
            : `Cannot convert value to floating point (out of range): ${value}`;
        }
      }
      return `Cannot convert value to floating point (bad value): ${show(value)}`;
    }
    case 'NUMERIC':
    case 'BIGNUMERIC':
      return checkDecimal(field.type, value);
    case 'BOOLEAN':
      return typeof value === 'boolean' ? null : `Cannot convert value to boolean: ${show(value)}`;
    case 'STRING':
    case 'GEOGRAPHY': {
      if (typeof value !== 'string') return `Cannot convert value to string: ${show(value)}`;
      if (field.maxLength !== undefined && [...value].length > Number(field.maxLength)) {
        return `Field ${field.name}: STRING(${field.maxLength}) has maximum length ${field.maxLength} but got a value with length ${[...value].length}`;
      }
      return null;
    }
    case 'BYTES': {
      if (typeof value !== 'string' || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
        return `Cannot convert value to bytes: ${show(value)} is not base64`;
      }
      if (field.maxLength !== undefined && Buffer.from(value, 'base64').length > Number(field.maxLength)) {
        return `Field ${field.name}: BYTES(${field.maxLength}) value is too long`;
      }
      return null;
    }
    case 'DATE': {
      const m = typeof value === 'string' ? /^(\d{4})-(\d{2})-(\d{2})$/.exec(value) : null;
      return m && validDate(Number(m[1]), Number(m[2]), Number(m[3])) ? null : `Invalid date: '${show(value)}'`;
    }
    case 'DATETIME': {
      const m =
        typeof value === 'string'
          ? /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?$/.exec(value)
          : null;
      return m &&
        validDate(Number(m[1]), Number(m[2]), Number(m[3])) &&
        validTime(Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0))
        ? null
        : `Invalid datetime string "${show(value)}"`;
    }
    case 'TIME': {
      const m = typeof value === 'string' ? /^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?$/.exec(value) : null;
      return m && validTime(Number(m[1]), Number(m[2]), Number(m[3] ?? 0))
        ? null
        : `Invalid time string "${show(value)}"`;
    }
    case 'TIMESTAMP':
      return checkTimestamp(value);
    case 'JSON':
      return null;
    case 'RECORD':
      return null;
  }
}

function checkDecimal(kind: 'NUMERIC' | 'BIGNUMERIC', value: unknown): string | null {
  const text = decimalText(value);
  const parts = text === null ? null : decimalParts(text);
  if (!parts) return `Invalid ${kind} value: ${show(value)}`;
  if (kind === 'NUMERIC') {
    if (parts.frac.length > 9)
      return `Invalid NUMERIC value: ${show(value)} (more than 9 digits after the decimal point)`;
    if (parts.int.length > 29) return `Invalid NUMERIC value: ${show(value)} (out of range)`;
    return null;
  }
  if (parts.frac.length > 38)
    return `Invalid BIGNUMERIC value: ${show(value)} (more than 38 digits after the decimal point)`;
  if (parts.int.length > 39) return `Invalid BIGNUMERIC value: ${show(value)} (out of range)`;
  const scaled = BigInt(`${parts.negative ? '-' : ''}${parts.int || '0'}${parts.frac.padEnd(38, '0')}`);
  return scaled < BIGNUMERIC_MIN || scaled > BIGNUMERIC_MAX
    ? `Invalid BIGNUMERIC value: ${show(value)} (out of range)`
    : null;
}

function checkTimestamp(value: unknown): string | null {
  if (typeof value === 'number' || typeof value === 'bigint') {
    const s = Number(value);
    return s >= TIMESTAMP_MIN_S && s < TIMESTAMP_MAX_S ? null : `Timestamp out of range: ${show(value)}`;
  }
  const bad = `Could not parse '${show(value)}' as a timestamp. ${TIMESTAMP_FORMAT_HINT}`;
  if (typeof value !== 'string') return bad;
  const m =
    /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*(?:([Zz]|UTC)|([+-])(\d{2})(?::?(\d{2}))?)?$/.exec(
      value,
    );
  if (!m) return bad;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // More than microseconds is refused, not truncated: BigQuery TIMESTAMPs hold microseconds.
  if ((m[7]?.length ?? 0) > 6) return bad;
  if (!validDate(y, mo, d) || !validTime(h, mi, s)) return bad;
  const offH = Number(m[10] ?? 0);
  const offM = Number(m[11] ?? 0);
  if (offH > 14 || offM > 59) return bad;
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, s, 0);
  const offset = (m[9] === '-' ? -1 : 1) * (offH * 3600 + offM * 60);
  const seconds = t.getTime() / 1000 - offset;
  return seconds >= TIMESTAMP_MIN_S && seconds < TIMESTAMP_MAX_S ? null : `Timestamp out of range: ${value}`;
}

/**
 * Checks a row against the columns. Returns the errors (all of them, BigQuery reports several per
 * row) and the row to store: the input itself, minus unknown fields when they are ignored.
 */
export function checkRow(
  fields: TableField[],
  json: unknown,
  options: { ignoreUnknownValues?: boolean } = {},
): { errors: RowError[]; row: Record<string, unknown> } {
  const errors: RowError[] = [];
  if (!isObject(json)) {
    return {
      errors: [{ reason: 'invalid', location: '', message: `Row is not a JSON object: ${show(json)}` }],
      row: {},
    };
  }
  const row = checkRecord(fields, json, '', options.ignoreUnknownValues ?? false, errors);
  return { errors, row };
}

function checkRecord(
  fields: TableField[],
  obj: Record<string, unknown>,
  prefix: string,
  ignoreUnknown: boolean,
  errors: RowError[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    const path = `${prefix}${key}`;
    const field = findField(fields, key);
    if (!field) {
      if (!ignoreUnknown) errors.push({ reason: 'invalid', location: path, message: `no such field: ${path}.` });
      continue;
    }
    out[key] = checkField(field, value, path, ignoreUnknown, errors);
  }
  for (const f of fields) {
    if (f.mode !== 'REQUIRED') continue;
    const key = Object.keys(obj).find((k) => k.toLowerCase() === f.name.toLowerCase());
    if (key === undefined && f.defaultValueExpression === undefined) {
      errors.push({
        reason: 'invalid',
        location: `${prefix}${f.name}`,
        message: `Missing required field: ${prefix}${f.name}.`,
      });
    }
  }
  return out;
}

function checkField(
  field: TableField,
  value: unknown,
  path: string,
  ignoreUnknown: boolean,
  errors: RowError[],
): unknown {
  const fail = (message: string, location = path): void => {
    errors.push({ reason: 'invalid', location, message });
  };
  if (field.mode === 'REPEATED') {
    // A null array is an empty one in BigQuery; a null element is refused.
    if (value === null) return value;
    if (!Array.isArray(value)) {
      fail(`Field ${path} is REPEATED but the value is not an array: ${show(value)}`);
      return value;
    }
    return value.map((item: unknown, i) => {
      const at = `${path}[${i}]`;
      if (item === null) {
        fail(`Array cannot have a null element; error in writing field ${path}`, at);
        return item;
      }
      return checkOne(field, item, at, ignoreUnknown, errors);
    });
  }
  if (value === null) {
    if (field.mode === 'REQUIRED') fail(`Only optional fields can be set to NULL. Field: ${path}; Value: NULL`);
    return value;
  }
  if (Array.isArray(value)) {
    fail(`Array specified for non-repeated field: ${path}.`);
    return value;
  }
  return checkOne(field, value, path, ignoreUnknown, errors);
}

function checkOne(
  field: TableField,
  value: unknown,
  path: string,
  ignoreUnknown: boolean,
  errors: RowError[],
): unknown {
  if (field.type === 'RECORD') {
    if (!isObject(value)) {
      errors.push({
        reason: 'invalid',
        location: path,
        message: `Cannot convert value to record: ${path} is not a JSON object.`,
      });
      return value;
    }
    return checkRecord(field.fields ?? [], value, `${path}.`, ignoreUnknown, errors);
  }
  const message = checkScalar(field, value);
  if (message !== null) errors.push({ reason: 'invalid', location: path, message });
  return value;
}
