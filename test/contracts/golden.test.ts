import { writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { goldenCases, readLines, runGoldenCase } from '../support/golden.js';
import { parseLossless } from '../../src/json/lossless-json.js';
import { Registry } from '../../src/parser/registry.js';
import { SchemaSet } from '../../src/schema/schema-set.js';

const schemas = SchemaSet.load();
const registry = await Registry.load(schemas);
const update = process.env.UPDATE_GOLDEN === '1';

for (const parser of registry.all()) {
  describe(`golden cases of ${parser.name}`, () => {
    for (const c of goldenCases(parser.name)) {
      it(c.name, async () => {
        const outcome = await runGoldenCase(parser, c, schemas);
        const expectedFile = path.join(c.dir, 'expected.jsonl');
        const errorsFile = path.join(c.dir, 'expected-errors.jsonl');
        if (update) {
          writeFileSync(expectedFile, outcome.rows.map((r) => `${r}\n`).join(''));
          if (outcome.errors.length > 0) writeFileSync(errorsFile, outcome.errors.map((r) => `${r}\n`).join(''));
          else rmSync(errorsFile, { force: true });
        }
        expect(outcome.rows.map((r) => parseLossless(r))).toEqual(readLines(expectedFile).map((l) => parseLossless(l)));
        expect(outcome.errors.map((r) => JSON.parse(r) as unknown)).toEqual(
          readLines(errorsFile).map((l) => JSON.parse(l) as unknown),
        );
      });
    }
  });
}
