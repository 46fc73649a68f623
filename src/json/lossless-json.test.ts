import { describe, expect, it } from 'vitest';
import { jsonErrorMessage, parseLossless, parseLosslessDocument, stringifyBigQuery } from './lossless-json.js';

describe('parseLossless', () => {
  it('keeps DISCO nanosecond timestamps and 64-bit counters digit for digit', () => {
    const v = parseLossless(
      '{"collectstart":1639449420001598262,"counter":18446744073709551615,"neg":-9223372036854775808,"value":476621275}',
    ) as Record<string, unknown>;
    expect(v.collectstart).toBe(1639449420001598262n);
    expect(v.counter).toBe(18446744073709551615n);
    expect(v.neg).toBe(-9223372036854775808n);
    expect(v.value).toBe(476621275);
  });

  it('returns safe 16-digit integers as numbers and leaves floats and strings alone', () => {
    const v = parseLossless(
      '{"safe":1000000000000000,"f":1.12345678901234567,"e":12345678901234567e2,"s":"12345678901234567890","a":[9007199254740993]}',
    ) as Record<string, unknown>;
    expect(v.safe).toBe(1000000000000000);
    expect(v.f).toBe(Number('1.12345678901234567')); // floats round as JSON.parse rounds them
    expect(v.e).toBe(Number('12345678901234567e2'));
    expect(v.s).toBe('12345678901234567890');
    expect(v.a).toEqual([9007199254740993n]);
  });

  it('is not fooled by escaped quotes or control-character escapes in strings', () => {
    const v = parseLossless('{"s":"a\\"12345678901234567890\\u0000","n":12345678901234567890}') as Record<
      string,
      unknown
    >;
    expect(v.s).toBe('a"12345678901234567890\u0000');
    expect(v.n).toBe(12345678901234567890n);
  });

  it('throws SyntaxError on invalid JSON', () => {
    expect(() => parseLossless('{"a":12345678901234567890,')).toThrow(SyntaxError);
    expect(() => parseLossless('{"a":')).toThrow(SyntaxError);
  });
});

describe('stringifyBigQuery', () => {
  it('writes integers outside +/-2^53 as decimal strings and the rest as numbers', () => {
    expect(stringifyBigQuery({ a: 9007199254740993n, b: 5n, c: -9007199254740993n, d: 1.5 })).toBe(
      '{"a":"9007199254740993","b":5,"c":"-9007199254740993","d":1.5}',
    );
  });
});

describe('parseLosslessDocument', () => {
  it('gives what parseLossless gives, whether or not the text holds long integers', () => {
    for (const text of [
      '{"collectstart":1639449420001598262,"counter":18446744073709551615,"neg":-9223372036854775808,"value":476621275}',
      '{"safe":1000000000000000,"f":1.12345678901234567,"e":12345678901234567e2,"s":"12345678901234567890","a":[9007199254740993]}',
      '{"edge":9007199254740992,"below":9007199254740991,"deep":[[{"x":[18446744073709551617]}]]}',
      '{"s":"a\\"12345678901234567890\\u0000","n":12345678901234567890}',
      '{"plain":[1,2.5,"x",null,true,{"y":-3}],"big":1e400}',
      '[]',
    ]) {
      expect(parseLosslessDocument(text)).toEqual(parseLossless(text));
    }
    expect((parseLosslessDocument('{"a":[{"b":9007199254740993}]}') as { a: { b: unknown }[] }).a[0]?.b).toBe(
      9007199254740993n,
    );
  });
});

describe('jsonErrorMessage', () => {
  it('gives a JSON error as Node 20 words it, whichever Node parsed', () => {
    // Node 22 and later add where the error is as line and column; the position says it already.
    const node22 = new SyntaxError(
      "Expected ',' or '}' after property value in JSON at position 973 (line 49 column 1)",
    );
    expect(jsonErrorMessage(node22)).toBe("Expected ',' or '}' after property value in JSON at position 973");
    let thrown: unknown;
    try {
      parseLossless('{"a": 1 "b": 2}');
    } catch (err) {
      thrown = err;
    }
    expect(jsonErrorMessage(thrown)).toBe("Expected ',' or '}' after property value in JSON at position 8");
  });
});
