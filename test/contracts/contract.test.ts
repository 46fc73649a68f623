// Adding a datatype is parsers/<datatype>.ts + schemas/<datatype>.json + testdata/<datatype>/:
// these tests fail when one of the three is missing or the schema is unusable.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { goldenCases, TESTDATA_DIR } from '../support/golden.js';
import { PACKAGE_ROOT } from '../../src/package-info.js';
import { Registry } from '../../src/parser/registry.js';
import { bigQuerySchema, SchemaSet, type Field } from '../../src/schema/schema-set.js';

const schemas = SchemaSet.load();
const registry = await Registry.load(schemas);

function undocumented(fields: Field[], prefix = ''): string[] {
  return fields.flatMap((f) => [
    ...(f.description.trim() === '' ? [`${prefix}${f.name}`] : []),
    ...undocumented(f.fields ?? [], `${prefix}${f.name}.`),
  ]);
}

describe('parser contract', () => {
  it('registers at least the switch parser', () => {
    expect(registry.datatypes()).toContain('switch');
  });

  for (const parser of registry.all()) {
    describe(parser.name, () => {
      it('has a one-line description', () => {
        expect(parser.description.length).toBeGreaterThan(10);
        expect(parser.description).not.toMatch(/\n/);
      });

      it(`has parsers/${parser.name}.ts or a schema-only declaration, not both`, () => {
        const module = existsSync(path.join(PACKAGE_ROOT, 'parsers', `${parser.name}.ts`));
        expect(module).toBe(!registry.schemaOnly.has(parser.name));
      });

      it(`has schemas/${parser.name}.json, which compiles`, () => {
        expect(existsSync(path.join(PACKAGE_ROOT, 'schemas', `${parser.name}.json`))).toBe(true);
        expect(() => schemas.validator(parser.name)).not.toThrow();
      });

      it('has the standard columns id, date and parser, shared from _common', () => {
        const s = schemas.get(parser.name) as { properties: Record<string, { $ref?: string }>; required: string[] };
        for (const col of ['id', 'date', 'parser']) {
          expect(s.properties[col]?.$ref).toBe(`urn:mlab-etl:schema:_common#/$defs/${col}`);
          expect(s.required).toContain(col);
        }
      });

      it('describes every field, and maps to BigQuery and DuckDB types', () => {
        const fields = schemas.fields(parser.name);
        expect(undocumented(fields)).toEqual([]);
        expect(bigQuerySchema(fields).length).toBe(fields.length);
      });

      it(`has golden cases in testdata/${parser.name}/`, () => {
        expect(existsSync(path.join(TESTDATA_DIR, parser.name))).toBe(true);
        expect(goldenCases(parser.name).length).toBeGreaterThan(0);
      });
    });
  }

  it('has a parser (module or schema-only) for every datatype schema', () => {
    expect(schemas.datatypes().filter((d) => !registry.datatypes().includes(d))).toEqual([]);
  });

  it('documents every ledger and rejects column', () => {
    expect(undocumented(schemas.fields('_archives'))).toEqual([]);
    expect(undocumented(schemas.fields('_rejects'))).toEqual([]);
  });
});
