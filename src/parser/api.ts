/**
 * What a parser is. A parser turns one archive entry into rows; it never writes to a sink, reads
 * the clock or knows about BigQuery. The pipeline adds `date` and `parser` provenance, validates
 * every row against `schemas/<datatype>.json` and stores it.
 */
import type { ErrorCode } from '../errors.js';
import type { ParserLimits } from '../limits.js';

/** The archive an entry comes from, as its path says. */
export interface ArchiveInfo {
  url: string;
  experiment: string;
  datatype: string;
  /** YYYY-MM-DD: the archive's date directory, every row's partition date. */
  date: string;
}

export interface ParserInput {
  /** Entry name inside the tar, e.g. `2021/12/14/20211214T024000-switch.jsonl`. */
  name: string;
  /** Size as stored in the tar. */
  size: number;
  /** PAX headers of the entry (`MLAB.*`). */
  pax: Readonly<Record<string, string>>;
  /** The entry's bytes, already gunzipped for `.gz` names. Read it once, in chunks. */
  body: AsyncIterable<Buffer>;
  archive: ArchiveInfo;
  /** Limits for reading JSON: pass them to jsonValues / jsonLines / readOneJson. */
  limits: ParserLimits;
}

/** A row as a parser makes it: `id` plus the datatype's own columns (`a`, `raw`, ...). */
export interface ParsedRow {
  id: string;
  [column: string]: unknown;
}

export interface ParserContext {
  /**
   * Records an input record the parser skips by design (e.g. a DISCO sample without machine or
   * site), so nothing disappears without a trace. The entry still counts as parsed.
   */
  skip(
    code: Extract<ErrorCode, 'record_skipped' | 'invalid_record' | 'invalid_json'>,
    message: string,
    excerpt?: string,
  ): void;
}

export interface Parser {
  /** The datatype, as in the archive path (`gs://.../<experiment>/<datatype>/...`). */
  readonly name: string;
  /** One line for `mlab-etl parsers`. */
  readonly description: string;
  /** A cheap test on the entry name: does this parser read it? Others are skipped as not_parsable. */
  accepts(entryName: string): boolean;
  /** The rows of one entry. Throw an EtlError (invalid_json, invalid_record, ...) to fail the entry. */
  parse(input: ParserInput, context: ParserContext): AsyncIterable<ParsedRow> | Iterable<ParsedRow>;
}

/** Declares a parser; `parsers/<datatype>.ts` default-exports one. */
export function defineParser(parser: Parser): Parser {
  return parser;
}
