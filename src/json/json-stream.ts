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
  const scanner = new ValueScanner(
    options.maxValueChars ?? DEFAULT_LIMITS.maxValueChars,
    options.maxJsonDepth ?? DEFAULT_LIMITS.maxJsonDepth,
  );
  const decoder = new StringDecoder('utf8');
  for await (const chunk of body) {
    yield* scanner.consume(typeof chunk === 'string' ? chunk : decoder.write(chunk));
  }
  yield* scanner.consume(decoder.end());
  const last = scanner.end();
  if (last) yield last;
}

/**
 * Finds where each top-level value ends, chunk by chunk, without parsing it: it jumps from one
 * structural character to the next (strings skipped), so a value's text is handed to the native
 * parser whole. What must stay true: the state between chunks is only these fields, and `pending`
 * holds only the text of the value being read.
 */
class ValueScanner {
  private pending = ''; // text of the value being read (from its first character)
  private depth = 0;
  private inString = false;
  private scalar = false; // reading a top-level number/literal, which ends at whitespace
  private line = 1; // line at which `pending` starts
  private first = true;
  private escapeCarry = false; // the previous chunk ended with a backslash inside a string

  constructor(
    private readonly maxChars: number,
    private readonly maxDepth: number,
  ) {}

  private inside(): boolean {
    return this.depth > 0 || this.inString || this.scalar;
  }

  *consume(chunk: string): Generator<JsonValue> {
    let text = chunk;
    if (this.first && text.length > 0) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // UTF-8 byte order mark
    }
    let start = !this.inside() && this.pending === '' ? -1 : 0; // where the current value's text starts in `text`
    let i = 0;
    while (i < text.length) {
      if (!this.inside()) {
        i = this.skipWhitespace(text, i);
        if (i >= text.length) break;
        start = i;
        i = this.open(text, i);
      }
      const closedAt = this.scalar ? this.scanScalar(text, i) : this.scanStructure(text, i);
      if (closedAt < 0) break; // the value goes on in the next chunk
      i = closedAt;
      yield this.close(text.slice(start, closedAt));
      start = -1;
    }
    if (this.inside() && start >= 0) {
      this.pending += text.slice(start);
      if (this.pending.length > this.maxChars) {
        throw new EtlError('record_too_large', `line ${this.line}: a JSON value exceeds ${this.maxChars} characters`, {
          stage: 'parser',
        });
      }
    }
  }

  /** The value still open when the stream ended: a top-level scalar is complete, anything else is cut. */
  end(): JsonValue | null {
    if (this.scalar) {
      this.scalar = false;
      return this.close('');
    }
    if (this.depth > 0 || this.inString) {
      throw new EtlError(
        'invalid_json',
        `line ${this.line}: the entry ends inside a JSON value; text: ${this.pending.slice(0, EXCERPT)}`,
        { stage: 'parser' },
      );
    }
    return null;
  }

  /** Skips whitespace between values, counting lines; returns the next character's index. */
  private skipWhitespace(text: string, from: number): number {
    let i = from;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      if (c === 0x0a) this.line++;
      i++;
    }
    return i;
  }

  /** A value starts at `i`: returns where scanning goes on. */
  private open(text: string, i: number): number {
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      this.depth = 1;
      return i + 1;
    }
    if (c === 0x22) {
      this.inString = true;
      return i + 1;
    }
    this.scalar = true;
    return i;
  }

  /** A top-level number or literal: ends at whitespace. Returns where it ends, or -1 when the chunk ends first. */
  private scanScalar(text: string, from: number): number {
    let j = from;
    while (j < text.length) {
      const c = text.charCodeAt(j);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        this.scalar = false;
        return j;
      }
      j++;
    }
    return -1;
  }

  /**
   * Inside an object, array or string: jumps from one structural character to the next. Returns
   * the index after the value's last character, or -1 when the chunk ends first.
   */
  private scanStructure(text: string, from: number): number {
    let i = from;
    while (i < text.length) {
      if (this.inString) {
        i = this.scanString(text, i);
        if (i < 0) return -1;
        if (!this.inString && this.depth === 0) return i;
        continue;
      }
      STRUCTURAL.lastIndex = i;
      const m = STRUCTURAL.exec(text);
      if (m === null) return -1;
      i = m.index + 1;
      const c = text.charCodeAt(m.index);
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) {
        if (++this.depth > this.maxDepth) {
          throw new EtlError('json_too_deep', `line ${this.line}: JSON nested deeper than ${this.maxDepth} levels`, {
            stage: 'parser',
          });
        }
      } else if (--this.depth === 0) return i;
    }
    return -1;
  }

  /** Inside a string: returns the index after its closing quote (or after an escape), -1 when the chunk ends first. */
  private scanString(text: string, i: number): number {
    if (this.escapeCarry) {
      this.escapeCarry = false;
      return i + 1;
    }
    STRING_SPECIAL.lastIndex = i;
    const m = STRING_SPECIAL.exec(text);
    if (m === null) return -1;
    if (text.charCodeAt(m.index) === 0x5c) {
      // A backslash escapes the next character, which may be in the next chunk.
      const next = m.index + 2;
      if (next > text.length) {
        this.escapeCarry = true;
        return -1;
      }
      return next;
    }
    this.inString = false;
    return m.index + 1;
  }

  /** The value whose text ends with `tail` is complete: parses it. */
  private close(tail: string): JsonValue {
    const text = this.pending + tail;
    this.pending = '';
    const atLine = this.line;
    this.line += countNewlines(text);
    try {
      return { value: parseLossless(text), line: atLine };
    } catch (err) {
      throw new EtlError('invalid_json', `line ${atLine}: ${jsonErrorMessage(err)}; text: ${text.slice(0, EXCERPT)}`, {
        stage: 'parser',
        cause: err,
      });
    }
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
