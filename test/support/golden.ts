/**
 * Golden cases, one runner for every parser: `testdata/<datatype>/<case>/` holds one input file,
 * `expected.jsonl` (the rows, one a line, as a sink receives them: with `date`, in BigQuery's JSON
 * conventions, without the `parser` provenance, which differs on every run), optionally
 * `expected-errors.jsonl` (records skipped, rows the schema rejected with the JSON path and
 * keyword, or the error that failed the entry) and `case.json` (`{"date": "YYYY-MM-DD"}`: the
 * archive date the rules depend on). The input goes through the production entry path
 * (entryBatches: provenance, schema validation, serialisation), as an entry of an archive would.
 * `UPDATE_GOLDEN=1 npm test` rewrites the expectations for review.
 */
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { EtlError } from '../../src/errors.js';
import { DEFAULT_LIMITS } from '../../src/limits.js';
import type { ParsedRow, Parser } from '../../src/parser/api.js';
import { entryBatches, type EntryJob } from '../../src/rows/entry-rows.js';
import { rowBytes } from '../../src/rows/row-batch.js';
import { SchemaSet } from '../../src/schema/schema-set.js';

export const TESTDATA_DIR = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'testdata');
const SPECIAL = new Set(['expected.jsonl', 'expected-errors.jsonl', 'case.json', 'README.md', 'generate.mjs']);

export interface GoldenCase {
  datatype: string;
  name: string;
  dir: string;
  input: string;
  date: string;
  experiment: string;
}

export interface GoldenOutcome {
  /** The valid rows as a sink receives them (BigQuery JSON text), `parser` removed. */
  rows: string[];
  /** The same rows as the parser made them, `date` added (integers beyond 2^53 as bigint). */
  objects: Record<string, unknown>[];
  /**
   * As JSON text lines: skips {code, message}, schema rejects {code, row_index, message}, and the
   * entry's failure {code, message, failed}.
   */
  errors: string[];
}

/** Rows per batch, as the pipeline validates them (process-archive's default). */
const BATCH_ROWS = 500;

let schemaSet: SchemaSet | null = null;

/** The cases of a datatype, sorted by name. */
export function goldenCases(datatype: string, root: string = TESTDATA_DIR): GoldenCase[] {
  const dir = path.join(root, datatype);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => statSync(path.join(dir, name)).isDirectory())
    .sort()
    .map((name) => {
      const caseDir = path.join(dir, name);
      const inputs = readdirSync(caseDir).filter((f) => !SPECIAL.has(f) && !f.startsWith('.'));
      if (inputs.length !== 1) {
        throw new Error(
          `${caseDir}: a golden case holds exactly one input file, found ${inputs.length}: ${inputs.join(', ')}`,
        );
      }
      const caseFile = path.join(caseDir, 'case.json');
      const meta = existsSync(caseFile)
        ? (JSON.parse(readFileSync(caseFile, 'utf8')) as { date?: string; experiment?: string })
        : {};
      return {
        datatype,
        name,
        dir: caseDir,
        input: path.join(caseDir, inputs[0] as string),
        date: meta.date ?? '2020-01-01',
        experiment: meta.experiment ?? 'test',
      };
    });
}

/** A sink's row text without its `parser` column, which must be the provenance the entry was given. */
function withoutProvenance(text: string, provenance: EntryJob['provenance']): string {
  // The sink's text holds integers beyond 2^53 as strings: JSON.parse keeps it exact.
  const { parser, ...row } = JSON.parse(text) as Record<string, unknown>;
  if (JSON.stringify(parser) !== JSON.stringify(provenance)) {
    throw new Error(`a row's parser provenance is ${JSON.stringify(parser)}, not the entry's`);
  }
  return JSON.stringify(row);
}

/**
 * Runs a case's input through the production entry path as an entry of that name, with fixed
 * provenance, and gives what a sink and the rejects table would receive.
 */
export async function runGoldenCase(parser: Parser, c: GoldenCase, schemas?: SchemaSet): Promise<GoldenOutcome> {
  schemas ??= schemaSet ??= SchemaSet.load();
  const name = path.basename(c.input);
  const file = createReadStream(c.input);
  const body = (name.endsWith('.gz') ? file.pipe(createGunzip()) : file) as AsyncIterable<Buffer>;
  const url = `file://${c.input}`;
  const size = statSync(c.input).size;
  const job: EntryJob = {
    name,
    size,
    pax: {},
    archive: { url, experiment: c.experiment, datatype: c.datatype, date: c.date },
    provenance: {
      Version: 'golden',
      Time: '2020-01-01T00:00:00.000Z',
      ArchiveURL: url,
      Filename: name,
      FileSize: size,
    },
    limits: DEFAULT_LIMITS,
    deadline: Infinity,
    batchRows: BATCH_ROWS,
  };
  // The rows as the parser yields them, for the assertions of its own tests.
  const yielded: ParsedRow[] = [];
  const tapped: Parser = {
    name: parser.name,
    description: parser.description,
    accepts: (entry) => parser.accepts(entry),
    async *parse(input, context) {
      for await (const row of parser.parse(input, context)) {
        yielded.push(row);
        yield row;
      }
    },
  };
  const rows: string[] = [];
  const objects: Record<string, unknown>[] = [];
  const errors: string[] = [];
  try {
    for await (const batch of entryBatches(tapped, schemas.validator(c.datatype), job, body)) {
      for (const r of batch.rejects) {
        const at = r.row_index === undefined ? {} : { row_index: r.row_index };
        errors.push(JSON.stringify({ code: r.code, ...at, message: r.message }));
      }
      batch.indices.forEach((index, i) => {
        rows.push(withoutProvenance(rowBytes(batch, i).toString('utf8'), job.provenance));
        const { id, ...rest } = yielded[index] as ParsedRow;
        objects.push({ id, date: c.date, ...rest });
      });
    }
  } catch (err) {
    // entryBatches fails an entry with an EtlError; anything else is the runner's own error.
    if (!(err instanceof EtlError)) throw err;
    errors.push(JSON.stringify({ code: err.code, message: err.message, failed: true }));
  }
  return { rows, objects, errors };
}

export function readLines(file: string): string[] {
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
    : [];
}
