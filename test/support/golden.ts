/**
 * Golden cases, one runner for every parser: `testdata/<datatype>/<case>/` holds one input file,
 * `expected.jsonl` (the rows, one a line, with `date` but without the per-run `parser`
 * provenance), optionally `expected-errors.jsonl` (records skipped, or the error that failed the
 * entry) and `case.json` (`{"date": "YYYY-MM-DD"}`: the archive date the rules depend on).
 * `UPDATE_GOLDEN=1 npm test` rewrites the expectations for review.
 */
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { EtlError, toEtlError } from '../../src/errors.js';
import { DEFAULT_LIMITS } from '../../src/limits.js';
import { stringifyBigQuery } from '../../src/json/lossless-json.js';
import type { Parser } from '../../src/parser/api.js';

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
  /** Rows as BigQuery JSON text lines: `date` added, no `parser`. */
  rows: string[];
  /** The same rows as the parser made them (integers beyond 2^53 as bigint), for validation. */
  objects: Record<string, unknown>[];
  /** Skips and the entry's failure, as JSON text lines {code, message}. */
  errors: string[];
}

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

/** Runs the parser on a case's input as if it were an archive entry of that name. */
export async function runGoldenCase(parser: Parser, c: GoldenCase): Promise<GoldenOutcome> {
  const name = path.basename(c.input);
  const file = createReadStream(c.input);
  const body = (name.endsWith('.gz') ? file.pipe(createGunzip()) : file) as AsyncIterable<Buffer>;
  const rows: string[] = [];
  const objects: Record<string, unknown>[] = [];
  const errors: string[] = [];
  const context = {
    skip: (code: string, message: string) => {
      errors.push(JSON.stringify({ code, message }));
    },
  };
  try {
    const parsed = parser.parse(
      {
        name,
        size: statSync(c.input).size,
        pax: {},
        body,
        archive: { url: `file://${c.input}`, experiment: c.experiment, datatype: c.datatype, date: c.date },
        limits: DEFAULT_LIMITS,
      },
      context,
    );
    for await (const row of parsed) {
      const { id, ...rest } = row;
      const object = { id, date: c.date, ...rest };
      objects.push(object);
      rows.push(stringifyBigQuery(object));
    }
  } catch (err) {
    const e = err instanceof EtlError ? err : toEtlError(err, 'parser_error', 'parser');
    errors.push(JSON.stringify({ code: e.code, message: e.message, failed: true }));
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
