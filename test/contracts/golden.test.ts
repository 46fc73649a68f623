import { writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { goldenCases, readLines, runGoldenCase } from '../support/golden.js';
import { parseLossless } from '../../src/json/lossless-json.js';
import { Registry } from '../../src/parser/registry.js';
import { describeErrors, SchemaSet } from '../../src/schema/schema-set.js';

const schemas = SchemaSet.load();
const registry = await Registry.load(schemas);
const update = process.env.UPDATE_GOLDEN === '1';

const PROVENANCE = {
  Version: 'golden',
  Time: '2020-01-01T00:00:00Z',
  ArchiveURL: 'file:///golden.tgz',
  Filename: 'golden',
};

for (const parser of registry.all()) {
  describe(`golden cases of ${parser.name}`, () => {
    for (const c of goldenCases(parser.name)) {
      it(c.name, async () => {
        const outcome = await runGoldenCase(parser, c);
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
        // Every expected row is a valid row of the table once the pipeline adds provenance.
        const validate = schemas.validator(parser.name);
        for (const object of outcome.objects) {
          expect(validate({ ...object, parser: PROVENANCE }), describeErrors(validate.errors)).toBe(true);
        }
      });
    }
  });
}
