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

/** The columns the pipeline adds to every row: a parser never yields them. */
export type PipelineColumns = 'date' | 'parser';

/** A row of a parser that names no row type: `id` plus any columns. */
export interface UntypedRow {
  id: string;
  [column: string]: unknown;
}

/**
 * A row as a parser makes it: the table's row (`Row`, a type generated from the schema such as
 * SwitchRow) without the columns the pipeline adds, with `id` required. Untyped: `id` plus the
 * datatype's own columns (`a`, `raw`, ...), whatever they hold. Never `date` or `parser`: the
 * pipeline's values would be replaced by the parser's.
 */
export type ParsedRow<Row extends object = UntypedRow> = Omit<Row, PipelineColumns> & {
  id: string;
  date?: never;
  parser?: never;
};

/**
 * What an `async *parse` yields, for its return type: `async *parse(input, context):
 * ParsedRows<SwitchRow>`. TypeScript then checks each yielded row on its own, unknown columns
 * included; without it, only the types of the columns the schema has and its required ones are.
 */
export type ParsedRows<Row extends object = UntypedRow> = AsyncGenerator<ParsedRow<Row>, void, undefined>;

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

/** A parser of rows of type `Row` (the generated row type of its table), or untyped ones. */
export interface Parser<Row extends object = UntypedRow> {
  /** The datatype, as in the archive path (`gs://.../<experiment>/<datatype>/...`). */
  readonly name: string;
  /** One line for `mlab-etl parsers`. */
  readonly description: string;
  /** A cheap test on the entry name: does this parser read it? Others are skipped as not_parsable. */
  accepts(entryName: string): boolean;
  /** The rows of one entry. Throw an EtlError (invalid_json, invalid_record, ...) to fail the entry. */
  parse(input: ParserInput, context: ParserContext): AsyncIterable<ParsedRow<Row>> | Iterable<ParsedRow<Row>>;
}

/**
 * Declares a parser; `parsers/<datatype>.ts` default-exports one. `defineParser<SwitchRow>({...})`
 * checks at compile time that the rows it yields have the table's required columns and its column
 * types (see ParsedRows for unknown columns); `defineParser({...})` leaves the rows to the schema
 * validator, which checks every row at run time either way.
 */
export function defineParser<Row extends object = UntypedRow>(parser: Parser<Row>): Parser<Row> {
  return parser;
}
