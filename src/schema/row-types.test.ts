// src/parser/types/ holds the generated row type of every table; this fails when one is stale, so
// a typed parser never compiles against columns its schema no longer has. `npm run types`
// (UPDATE_TYPES=1) rewrites them.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SchemaSet } from './schema-set.js';
import {
  ROW_TYPES_DIR,
  rowTypeName,
  rowTypesIndex,
  rowTypesModule,
  typeBaseName,
} from '../../test/support/row-types.js';

const schemas = SchemaSet.load();
const update = process.env.UPDATE_TYPES === '1';

describe('src/parser/types', () => {
  for (const datatype of schemas.datatypes()) {
    const file = path.join(ROW_TYPES_DIR, `${datatype}.ts`);
    // A datatype without a file yet (just scaffolded) has nothing stale to import: only update writes it.
    it.skipIf(!update && !existsSync(file))(`${datatype}.ts is current`, async () => {
      const expected = await rowTypesModule(schemas, datatype);
      if (update) {
        mkdirSync(ROW_TYPES_DIR, { recursive: true });
        writeFileSync(file, expected);
      }
      expect(readFileSync(file, 'utf8'), `${file} is stale: run npm run types`).toBe(expected);
    });
  }

  const generated = (): string[] =>
    existsSync(ROW_TYPES_DIR)
      ? readdirSync(ROW_TYPES_DIR)
          .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
          .map((f) => f.slice(0, -3))
      : [];

  it('holds no file for a datatype that no longer exists', () => {
    expect(generated().filter((d) => !schemas.has(d) || d.startsWith('_'))).toEqual([]);
  });

  // Runs after the files above (vitest runs a file's tests in order), so an update sees them all.
  it('index.ts exports the types of every file', async () => {
    const file = path.join(ROW_TYPES_DIR, 'index.ts');
    const modules = generated().map((datatype) => ({
      datatype,
      text: readFileSync(path.join(ROW_TYPES_DIR, `${datatype}.ts`), 'utf8'),
    }));
    const expected = await rowTypesIndex(modules);
    if (update) writeFileSync(file, expected);
    expect(readFileSync(file, 'utf8'), `${file} is stale: run npm run types`).toBe(expected);
    expect(expected).toContain("export type { Ndt7Measurement, Ndt7Row } from './ndt7.js';");
  });

  it('types 64-bit integers as number | bigint and keeps required columns required', async () => {
    const text = await rowTypesModule(schemas, 'switch');
    expect(text).toMatch(
      /^\/\*\*\n \* Rows of the switch table, generated from schemas\/switch\.json by `npm run types`/,
    );
    expect(text).toContain('export interface SwitchRow {');
    expect(text).toMatch(/\n {4}SwitchOctetsUplinkRxCounter\?: number \| bigint;\n/);
    expect(text).toMatch(/\n {4}CollectionTime: string;\n/);
    expect(text).toMatch(/\n {2}id: string;\n/);
    // Provenance comes from _common.json through its $ref, inlined.
    expect(text).toMatch(/\n {4}ArchiveURL: string;\n/);
  });

  it('names types after the datatype', () => {
    expect(rowTypeName('switch')).toBe('SwitchRow');
    expect(rowTypeName('my-data')).toBe('MyDataRow');
    expect(typeBaseName('hopannotation2')).toBe('Hopannotation2');
  });
});
