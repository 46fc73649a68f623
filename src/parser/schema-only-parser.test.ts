import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../cli/main.js';
import { jsonLines } from '../json/json-stream.js';
import { PACKAGE_ROOT } from '../package-info.js';
import { runQuery } from '../sinks/duckdb/query.js';
import { Registry } from './registry.js';
import { SchemaSet } from '../schema/schema-set.js';
import { resolvePointer, schemaOnlyParser } from './schema-only-parser.js';
import { buildArchive, chunksOf } from '../../test/support/archives.js';

describe('jsonLines', () => {
  it('reads CRLF and LF lines across chunk boundaries, and a bad line does not stop the rest', async () => {
    const text = '{"a":1}\r\n{"b":\n\n{"c":18446744073709551615}';
    for (const size of [1, 3, 7, 100]) {
      const out = [];
      for await (const l of jsonLines(chunksOf(Buffer.from(text), size)))
        out.push('error' in l ? `${l.line}:${l.error.code}` : l.value);
      expect(out).toEqual([{ a: 1 }, '2:invalid_json', { c: 18446744073709551615n }]);
    }
  });
});

describe('schema-only datatypes', () => {
  it('resolves JSON pointers', () => {
    expect(resolvePointer({ a: { 'b/c': [1, { d: 'x' }] } }, '/a/b~1c/1/d')).toBe('x');
    expect(resolvePointer({ a: 1 }, '/missing')).toBeUndefined();
  });

  it('registers a parser for a schema that declares x-mlab.format', async () => {
    const registry = await Registry.load(SchemaSet.load());
    expect(registry.schemaOnly.has('hopannotation2')).toBe(true);
    expect(registry.get('hopannotation2').accepts('2021/08/18/x.json')).toBe(true);
  });

  it('refuses a declaration it cannot honour, naming the schema', () => {
    expect(() => schemaOnlyParser('x', { format: 'csv', id: '/id' })).toThrow(/schemas\/x\.json: x-mlab\.format "csv"/);
    expect(() => schemaOnlyParser('x', { format: 'jsonl', id: 'UUID' })).toThrow(/JSON pointer/);
  });

  it('parses a real hop annotation archive end to end into its table and view', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-schema-only-'));
    const hop = readFileSync(
      path.join(PACKAGE_ROOT, 'testdata/hopannotation2/real-hop/20210818T174432Z_1e0b318cf3c2_91.189.88.152.json'),
    );
    const file = path.join(dir, 'ndt/hopannotation2/2021/08/18/20210818T180000Z-hopannotation2-mlab1-lga03-ndt.tgz');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(
      file,
      await buildArchive([{ name: '2021/08/18/20210818T174432Z_1e0b318cf3c2_91.189.88.152.json', content: hop }]),
    );
    const db = path.join(dir, 'x.duckdb');
    expect(
      await run(['parse', file, '--sink', `duckdb:${db}`], { stdout: () => {}, stderr: () => {}, isTTY: false }),
    ).toBe(0);
    const r = await runQuery(db, 'SELECT id, raw.Annotations.Network.ASNumber AS asn FROM ndt.hopannotation2');
    expect(r.rows).toEqual([{ id: '20210818_1e0b318cf3c2_91.189.88.152', asn: 41231 }]);
  });
});
