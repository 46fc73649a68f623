// docs/schemas/ holds the generated reference of every table; this fails when one is stale.
// `npm run docs` (UPDATE_DOCS=1) rewrites them.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../package-info.js';
import { SchemaSet } from './schema-set.js';
import { schemaMarkdown } from './schema-docs.js';

const DOCS = path.join(PACKAGE_ROOT, 'docs', 'schemas');
const schemas = SchemaSet.load();
const update = process.env.UPDATE_DOCS === '1';

describe('docs/schemas', () => {
  for (const datatype of schemas.datatypes()) {
    it(`${datatype}.md is current`, () => {
      const file = path.join(DOCS, `${datatype}.md`);
      const expected = schemaMarkdown(schemas, datatype);
      if (update) {
        mkdirSync(DOCS, { recursive: true });
        writeFileSync(file, expected);
      }
      expect(existsSync(file), `${file} is missing: run npm run docs`).toBe(true);
      expect(readFileSync(file, 'utf8'), `${file} is stale: run npm run docs`).toBe(expected);
    });
  }

  it('holds no page for a datatype that no longer exists', () => {
    const pages = existsSync(DOCS) ? readdirSync(DOCS).filter((f) => f.endsWith('.md')) : [];
    expect(pages.map((f) => f.slice(0, -3)).filter((d) => !schemas.has(d))).toEqual([]);
  });

  it('lists every field with its BigQuery type and mode', () => {
    const md = schemaMarkdown(schemas, 'switch');
    expect(md).toContain('| `a.SwitchOctetsUplinkRxCounter` | INT64 | NULLABLE |');
    expect(md).toContain('| `raw.Metrics.sample.collectstart` | INT64 | NULLABLE |');
    expect(md).toContain('| `id` | STRING | REQUIRED |');
  });
});
