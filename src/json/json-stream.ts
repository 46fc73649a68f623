/**
 * Reads JSON values one after another from a byte stream, whatever the newlines: JSONL (one a
 * line), objects back to back (DISCOv1), or pretty-printed documents. Only the value being read is
 * held in memory, never the whole entry.
 */
import { StringDecoder } from 'node:string_decoder';
import { EtlError } from '../errors.js';
import { DEFAULT_LIMITS } from '../limits.js';
import { jsonErrorMessage, parseLossless } from './lossless-json.js';

export interface JsonValuesOptions {
  /** Largest value, in UTF-16 code units of its text, before the entry fails with record_too_large. */
  maxValueChars?: number;
  /** Deepest nesting of arrays and objects before the entry (or line) fails with json_too_deep. */
  maxJsonDepth?: number;
}

/** A parsed top-level value with where it started (1-based line) for error messages. */
export interface JsonValue {
  value: unknown;
  line: number;
}

const STRUCTURAL = /["{}[\]]/g;
const STRING_SPECIAL = /["\\]/g;
const EXCERPT = 200;

/** Yields each top-level JSON value of the stream, integers exact. Throws EtlError('invalid_json') on the first bad value. */
export async function* jsonValues(
  body: AsyncIterable<Buffer | string>,
  options: JsonValuesOptions = {},
): AsyncGenerator<JsonValue> {
  const maxChars = options.maxValueChars ?? DEFAULT_LIMITS.maxValueChars;
  const maxDepth = options.maxJsonDepth ?? DEFAULT_LIMITS.maxJsonDepth;
  const decoder = new StringDecoder('utf8');
  let pending = ''; // text of the value being read (from its first character)
  let depth = 0;
  let inString = false;
  let scalar = false; // reading a top-level number/literal, which ends at whitespace
  let line = 1; // line at which `pending` starts
  let first = true;
  let escapeCarry = false; // the previous chunk ended with a backslash inside a string

  const finish = (text: string, atLine: number): JsonValue => {
    try {
      return { value: parseLossless(text), line: atLine };
    } catch (err) {
      throw new EtlError('invalid_json', `line ${atLine}: ${jsonErrorMessage(err)}; text: ${text.slice(0, EXCERPT)}`, {
        stage: 'parser',
        cause: err,
      });
    }
  };

  const consume = function* (chunk: string): Generator<JsonValue> {
    let text = chunk;
    if (first && text.length > 0) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // UTF-8 byte order mark
    }
    let start = 0; // where the current value's text starts in `text` (only meaningful while inside one)
    let i = 0;
    const inside = () => depth > 0 || inString || scalar;
    if (!inside() && pending === '') start = -1;
    while (i < text.length) {
      if (!inside()) {
        // Skip whitespace between values, counting lines.
        let c = text.charCodeAt(i);
        while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
          if (c === 0x0a) line++;
          i++;
          if (i >= text.length) break;
          c = text.charCodeAt(i);
        }
        if (i >= text.length) break;
        start = i;
        if (c === 0x7b || c === 0x5b) {
          depth = 1;
          i++;
        } else if (c === 0x22) {
          inString = true;
          i++;
        } else {
          scalar = true;
        }
      }
      if (scalar) {
        let j = i;
        while (j < text.length) {
          const c = text.charCodeAt(j);
          if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) break;
          j++;
        }
        i = j;
        if (j < text.length) {
          scalar = false;
          const valueText = pending + text.slice(start, j);
          pending = '';
          yield finish(valueText, line);
          start = -1;
        }
        continue;
      }
      // Inside an object, array or string: jump from one structural character to the next.
      let closedAt = -1;
      while (i < text.length) {
        if (inString) {
          if (escapeCarry) {
            escapeCarry = false;
            i++;
            continue;
          }
          STRING_SPECIAL.lastIndex = i;
          const m = STRING_SPECIAL.exec(text);
          if (m === null) {
            i = text.length;
            break;
          }
          if (text.charCodeAt(m.index) === 0x5c) {
            // A backslash escapes the next character, which may be in the next chunk.
            i = m.index + 2;
            if (i > text.length) {
              escapeCarry = true;
              i = text.length;
            }
            continue;
          }
          inString = false;
          i = m.index + 1;
          if (depth === 0) {
            closedAt = i;
            break;
          }
          continue;
        }
        STRUCTURAL.lastIndex = i;
        const m = STRUCTURAL.exec(text);
        if (m === null) {
          i = text.length;
          break;
        }
        i = m.index + 1;
        const c = text.charCodeAt(m.index);
        if (c === 0x22) inString = true;
        else if (c === 0x7b || c === 0x5b) {
          if (++depth > maxDepth) {
            throw new EtlError('json_too_deep', `line ${line}: JSON nested deeper than ${maxDepth} levels`, {
              stage: 'parser',
            });
          }
        } else if (--depth === 0) {
          closedAt = i;
          break;
        }
      }
      if (closedAt >= 0) {
        const valueText = pending + text.slice(start, closedAt);
        pending = '';
        const atLine = line;
        line += countNewlines(valueText);
        yield finish(valueText, atLine);
        start = -1;
      }
    }
    if (inside() && start >= 0) {
      pending += text.slice(start);
      if (pending.length > maxChars) {
        throw new EtlError('record_too_large', `line ${line}: a JSON value exceeds ${maxChars} characters`, {
          stage: 'parser',
        });
      }
    }
  };

  for await (const chunk of body) {
    yield* consume(typeof chunk === 'string' ? chunk : decoder.write(chunk));
  }
  yield* consume(decoder.end());
  if (scalar) {
    scalar = false;
    const text = pending;
    pending = '';
    yield finish(text, line);
  } else if (depth > 0 || inString) {
    throw new EtlError(
      'invalid_json',
      `line ${line}: the entry ends inside a JSON value; text: ${pending.slice(0, EXCERPT)}`,
      { stage: 'parser' },
    );
  }
}

function countNewlines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i !== -1; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

export type JsonLine = { line: number; value: unknown } | { line: number; error: EtlError; text: string };

/**
 * Reads JSONL one line at a time, where a bad line is an error for that line only: yields each
 * non-blank line parsed, or its error, and goes on. Only the current line is held in memory.
 */
export async function* jsonLines(
  body: AsyncIterable<Buffer | string>,
  options: JsonValuesOptions = {},
): AsyncGenerator<JsonLine> {
  const maxChars = options.maxValueChars ?? DEFAULT_LIMITS.maxValueChars;
  const maxDepth = options.maxJsonDepth ?? DEFAULT_LIMITS.maxJsonDepth;
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let line = 0;
  let first = true;
  const one = (text: string): JsonLine | null => {
    line++;
    let t = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (first) {
      first = false;
      if (t.charCodeAt(0) === 0xfeff) t = t.slice(1);
    }
    if (t.trim() === '') return null;
    if (t.length > maxDepth && depthOf(t) > maxDepth) {
      return {
        line,
        text: t.slice(0, EXCERPT),
        error: new EtlError('json_too_deep', `line ${line}: JSON nested deeper than ${maxDepth} levels`, {
          stage: 'parser',
        }),
      };
    }
    try {
      return { line, value: parseLossless(t) };
    } catch (err) {
      return {
        line,
        text: t.slice(0, EXCERPT),
        error: new EtlError('invalid_json', `line ${line}: ${jsonErrorMessage(err)}`, { stage: 'parser', cause: err }),
      };
    }
  };
  const split = function* (chunk: string): Generator<JsonLine> {
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl !== -1; nl = chunk.indexOf('\n', start)) {
      const text = pending + chunk.slice(start, nl);
      pending = '';
      start = nl + 1;
      const r = one(text);
      if (r) yield r;
    }
    pending += chunk.slice(start);
    if (pending.length > maxChars) {
      throw new EtlError('record_too_large', `line ${line + 1}: longer than ${maxChars} characters`, {
        stage: 'parser',
      });
    }
  };
  for await (const chunk of body) yield* split(typeof chunk === 'string' ? chunk : decoder.write(chunk));
  yield* split(decoder.end());
  if (pending !== '') {
    const r = one(pending);
    if (r) yield r;
  }
}

/** The deepest nesting of arrays and objects in JSON text (strings skipped). */
export function depthOf(text: string): number {
  let depth = 0;
  let deepest = 0;
  const re = /"(?:[^"\\]|\\.)*"|[{}[\]]/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const c = m[0].charCodeAt(0);
    if (c === 0x7b || c === 0x5b) deepest = Math.max(deepest, ++depth);
    else if (c !== 0x22) depth--;
  }
  return deepest;
}
