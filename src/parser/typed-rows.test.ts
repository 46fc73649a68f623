// defineParser<Row> checks a parser's rows at compile time: `npm run typecheck` compiles this file,
// and each @ts-expect-error below fails the typecheck if its line stops being an error. The
// schema validator still checks every row at run time, typed parser or not.
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../limits.js';
import { entryBatches, type EntryJob } from '../rows/entry-rows.js';
import { SchemaSet } from '../schema/schema-set.js';
import { defineParser, type ParsedRows, type Parser, type SwitchRow } from './index.js';

const A = { Machine: 'mlab1', Site: 'abc01', CollectionTime: '2020-09-09T00:00:10.000Z' };

const wrongColumnType = defineParser<SwitchRow>({
  name: 'switch',
  description: 'yields a number where the schema says string',
  accepts: () => true,
  async *parse(): ParsedRows<SwitchRow> {
    yield {
      id: 'mlab1-abc01-1599609610',
      a: {
        ...A,
        // @ts-expect-error a.Site is a STRING column: a number does not compile.
        Site: 1,
      },
      raw: { Metrics: [] },
    };
  },
});

export const others: Parser<SwitchRow>[] = [
  defineParser<SwitchRow>({
    name: 'switch',
    description: 'the same without the return type: the mismatch is reported on parse as a whole',
    accepts: () => true,
    // @ts-expect-error the yielded rows' a.Site is a number, not a string.
    async *parse() {
      yield { id: 'mlab1-abc01-1599609610', a: { ...A, Site: 1 }, raw: { Metrics: [] } };
    },
  }),
  defineParser<SwitchRow>({
    name: 'switch',
    description: 'misses a required column',
    accepts: () => true,
    async *parse(): ParsedRows<SwitchRow> {
      // @ts-expect-error raw is required by the schema.
      yield { id: 'mlab1-abc01-1599609610', a: A };
    },
  }),
  defineParser<SwitchRow>({
    name: 'switch',
    description: 'yields a column the schema does not have, or one the pipeline adds',
    accepts: () => true,
    async *parse(): ParsedRows<SwitchRow> {
      // @ts-expect-error a.Sight is no column of switch.
      yield { id: 'mlab1-abc01-1599609610', a: { ...A, Sight: 'abc01' }, raw: { Metrics: [] } };
      // @ts-expect-error date is the pipeline's column, not the parser's.
      yield { id: 'mlab1-abc01-1599609620', a: A, raw: { Metrics: [] }, date: '2020-09-09' };
    },
  }),
  defineParser<SwitchRow>({
    name: 'switch',
    description: 'compiles: 64-bit counters as bigint, optional columns left out',
    accepts: () => true,
    async *parse(): ParsedRows<SwitchRow> {
      yield {
        id: 'mlab1-abc01-1599609610',
        a: { ...A, SwitchOctetsLocalRxCounter: 2n ** 63n - 1n },
        raw: { Metrics: [{ metric: 'm', hostname: 'h', experiment: 'e', sample: [{ timestamp: 1, value: 2.5 }] }] },
      };
    },
  }),
];

// Untyped, as a new parser starts: any columns compile; the validator alone judges them.
export const untyped: Parser = defineParser({
  name: 'switch',
  description: 'untyped',
  accepts: () => true,
  *parse() {
    yield { id: 'mlab1-abc01-1599609610', a: { ...A, Site: 1 }, anything: [1, 'two'] };
  },
});

describe('typed parsers', () => {
  const job: EntryJob = {
    name: '20200909T000000-switch.jsonl',
    size: 0,
    pax: {},
    archive: { url: 'file:///x.tgz', experiment: 'utilization', datatype: 'switch', date: '2020-09-09' },
    provenance: { Version: 'test', Time: '2020-09-09T01:00:00Z', ArchiveURL: 'file:///x.tgz', Filename: 'x' },
    limits: DEFAULT_LIMITS,
    deadline: Infinity,
    batchRows: 500,
  };
  const validate = SchemaSet.load().validator('switch');

  it('the row that does not compile is also rejected at run time, with its path and keyword', async () => {
    const rejects = [];
    for await (const batch of entryBatches(wrongColumnType, validate, job, (async function* () {})())) {
      expect(batch.ends).toEqual([]);
      rejects.push(...batch.rejects);
    }
    expect(rejects).toMatchObject([
      { code: 'schema_violation', row_index: 0, message: '/a/Site: must be string (keyword type)' },
    ]);
  });

  it('an untyped parser runs as before: its rows are the validator’s to judge', async () => {
    const codes = [];
    for await (const batch of entryBatches(untyped, validate, job, (async function* () {})())) {
      codes.push(...batch.rejects.map((r) => r.code));
    }
    expect(codes).toEqual(['schema_violation']);
  });
});
