import { mkdtempSync, writeFileSync, cpSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCHEMAS_DIR } from '../package-info.js';
import { bigQuerySchema, describeErrors, duckdbType, SchemaSet } from './schema-set.js';

/** A schema set holding the real _common.json and one test schema. */
function withSchema(properties: Record<string, unknown>, required: string[] = []): SchemaSet {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-schema-'));
  cpSync(path.join(SCHEMAS_DIR, '_common.json'), path.join(dir, '_common.json'));
  writeFileSync(
    path.join(dir, 't.json'),
    JSON.stringify({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: 'urn:mlab-etl:schema:t',
      type: 'object',
      description: 'test',
      properties,
      required,
    }),
  );
  return SchemaSet.load(dir);
}

describe('SchemaSet validation', () => {
  const set = withSchema(
    {
      i: { type: 'integer', description: 'signed' },
      u: { type: 'integer', format: 'uint64', description: 'unsigned' },
      n: { type: 'number', description: 'float' },
      o: { type: 'object', description: 'nested', properties: { s: { type: 'string', description: 's' } } },
      t: { type: 'string', format: 'date-time', description: 'time' },
    },
    ['i'],
  );
  const v = set.validator('t');

  it('accepts 64-bit integers as bigint, within range', () => {
    expect(v({ i: 9223372036854775807n, u: 18446744073709551615n, n: 12345678901234567890n })).toBe(true);
    expect(v({ i: -9223372036854775808n })).toBe(true);
  });

  it('rejects integers out of range, rounded numbers and fractions, naming path and keyword', () => {
    expect(v({ i: 9223372036854775808n })).toBe(false);
    expect(describeErrors(v.errors)).toBe('/i: must be a signed 64-bit integer (keyword x-integer)');
    expect(v({ i: 1, u: -1 })).toBe(false);
    expect(v({ i: 2 ** 60 })).toBe(false); // a number beyond 2^53 has already lost digits
    expect(v({ i: 1.5 })).toBe(false);
    expect(v({ i: '1' })).toBe(false);
  });

  it('rejects unknown properties, as BigQuery does', () => {
    expect(v({ i: 1, o: { s: 'x', extra: 1 } })).toBe(false);
    expect(describeErrors(v.errors)).toBe(
      "/o: must NOT have additional properties 'extra' (keyword additionalProperties)",
    );
  });

  it('checks date-time format', () => {
    expect(v({ i: 1, t: '2021-12-14T02:37:00.000Z' })).toBe(true);
    expect(v({ i: 1, t: 'yesterday' })).toBe(false);
  });
});

describe('column types', () => {
  const set = SchemaSet.load();

  it('gives the switch table BigQuery types with modes and descriptions', () => {
    const bq = bigQuerySchema(set.fields('switch')) as {
      name: string;
      type: string;
      mode: string;
      fields?: unknown[];
    }[];
    expect(bq.map((f) => [f.name, f.type, f.mode])).toEqual([
      ['id', 'STRING', 'REQUIRED'],
      ['date', 'DATE', 'REQUIRED'],
      ['parser', 'RECORD', 'REQUIRED'],
      ['a', 'RECORD', 'REQUIRED'],
      ['raw', 'RECORD', 'REQUIRED'],
    ]);
    const a = bq[3]?.fields as { name: string; type: string }[];
    expect(a).toHaveLength(3 + 40);
    expect(a.find((f) => f.name === 'CollectionTime')?.type).toBe('TIMESTAMP');
    expect(a.find((f) => f.name === 'SwitchOctetsUplinkRxCounter')?.type).toBe('INT64');
  });

  it('gives DuckDB STRUCT and LIST types with exact integers', () => {
    const raw = set.fields('switch').find((f) => f.name === 'raw');
    expect(duckdbType(raw!)).toBe(
      'STRUCT("Metrics" STRUCT("metric" VARCHAR, "hostname" VARCHAR, "experiment" VARCHAR, "sample" STRUCT("timestamp" BIGINT, "collectstart" BIGINT, "collectend" BIGINT, "value" DOUBLE, "counter" BIGINT)[])[])',
    );
    const u = withSchema({ u: { type: 'integer', format: 'uint64', description: 'u' } }).fields('t')[0];
    expect(duckdbType(u!)).toBe('UBIGINT');
    expect(bigQuerySchema([u!])).toEqual([{ name: 'u', type: 'NUMERIC', mode: 'NULLABLE', description: 'u' }]);
  });
});
