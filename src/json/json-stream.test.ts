import { describe, expect, it } from 'vitest';
import { EtlError } from '../errors.js';
import { depthOf, jsonLines, jsonValues } from './json-stream.js';

async function* chunked(text: string, size: number): AsyncGenerator<Buffer> {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect(text: string, size = 1 << 16): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const v of jsonValues(chunked(text, size))) out.push(v.value);
  return out;
}

const TRICKY =
  '\uFEFF{"a":"x\\"}{[\\\\","n":18446744073709551615}\n' +
  '  {"b":[1,{"c":"é漢"}]}{"d":2}\n\n' +
  '[3,4]\r\n"str" 42 {"e":"\\\\"}\n';
const EXPECTED = [
  { a: 'x"}{[\\', n: 18446744073709551615n },
  { b: [1, { c: 'é漢' }] },
  { d: 2 },
  [3, 4],
  'str',
  42,
  { e: '\\' },
];

describe('jsonValues', () => {
  it('reads JSONL, back-to-back objects, arrays and scalars, whatever the newlines', async () => {
    expect(await collect(TRICKY)).toEqual(EXPECTED);
  });

  it('gives the same values whatever the chunk boundaries (escapes, multi-byte characters)', async () => {
    for (let size = 1; size <= 13; size++) {
      expect(await collect(TRICKY, size)).toEqual(EXPECTED);
    }
  });

  it('fails with invalid_json and the line number of the bad value', async () => {
    const err = await collect('{"a":1}\n{"b":2}\n{"c":,}\n').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtlError);
    expect((err as EtlError).code).toBe('invalid_json');
    expect((err as EtlError).message).toMatch(/^line 3:/);
  });

  it('fails with invalid_json when the entry ends inside a value (truncated file)', async () => {
    const err = await collect('{"a":1}\n{"b":[1,2').catch((e: unknown) => e);
    expect((err as EtlError).code).toBe('invalid_json');
    expect((err as EtlError).message).toMatch(/ends inside a JSON value/);
  });

  it('fails with record_too_large instead of buffering an endless value', async () => {
    const values: unknown[] = [];
    const gen = jsonValues(chunked(`{"ok":1}{"a":"${'x'.repeat(5000)}"}`, 100), { maxValueChars: 1000 });
    const err = await (async () => {
      for await (const v of gen) values.push(v.value);
    })().catch((e: unknown) => e);
    expect(values).toEqual([{ ok: 1 }]);
    expect((err as EtlError).code).toBe('record_too_large');
  });

  it('yields nothing for an empty or blank entry', async () => {
    expect(await collect('')).toEqual([]);
    expect(await collect(' \n\n ')).toEqual([]);
  });
});

describe('JSON limits', () => {
  it('fails a value nested deeper than the limit with json_too_deep, not a stack overflow', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const err = await collect(`{"ok":1}\n${deep}\n`).catch((e: unknown) => e);
    expect((err as EtlError).code).toBe('json_too_deep');
    const out = [];
    for await (const l of jsonLines(chunked(`{"ok":1}\n${deep}\n{"ok":2}\n`, 4096), { maxJsonDepth: 256 })) {
      out.push('error' in l ? l.error.code : l.value);
    }
    expect(out).toEqual([{ ok: 1 }, 'json_too_deep', { ok: 2 }]);
  });

  it('measures depth outside strings only', () => {
    expect(depthOf('{"a":"[[[[[[","b":[[1]]}')).toBe(3);
  });
});
