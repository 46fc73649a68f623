/** JSON helpers shared by the rules and the handlers: values may hold bigints (lossless parsing). */

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** JSON text of a parsed value, bigints as their digits. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'undefined';
}

export function show(value: unknown): string {
  return typeof value === 'string' ? value : jsonText(value);
}

export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(jsonText(value));
}
