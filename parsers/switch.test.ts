// The checks of mlab-data.md §4, asserted on the parser's own output (not on the golden files).
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { goldenCases, runGoldenCase } from '../test/support/golden.js';
import { DEFAULT_LIMITS } from '../src/limits.js';
import { stringifyBigQuery } from '../src/json/lossless-json.js';
import switchParser from './switch.js';

type Row = { id: string; a: Record<string, unknown>; raw: { Metrics: { metric: string }[] } };

async function rowsOf(caseName: string): Promise<Row[]> {
  const c = goldenCases('switch').find((x) => x.name === caseName);
  if (!c) throw new Error(`no golden case ${caseName}`);
  return (await runGoldenCase(switchParser, c)).objects as Row[];
}

describe('switch parser', () => {
  it('accepts DISCO file names only', () => {
    for (const n of ['a-switch.json', 'a-switch.jsonl', '2021/x-switch.json.gz', 'x-switch.jsonl.gz'])
      expect(switchParser.accepts(n)).toBe(true);
    for (const n of ['switch.txt', 'ndt7-download.json.gz', 'switch.jsonl.zst'])
      expect(switchParser.accepts(n)).toBe(false);
  });

  it('DISCOv2 dated 2021-12-14: 30 rows of 16 metrics, local octets zeroed, discards 1/2', async () => {
    const rows = await rowsOf('v2-dfw07-local-octets-zeroed');
    expect(rows).toHaveLength(30);
    expect(rows.every((r) => r.raw.Metrics.length === 16)).toBe(true);
    expect(rows[0]?.id).toBe('mlab2-dfw07-1639449420');
    expect(rows.at(-1)?.id).toBe('mlab2-dfw07-1639449710');
    expect(rows[0]?.a).toMatchObject({
      Machine: 'mlab2',
      Site: 'dfw07',
      CollectionTime: '2021-12-14T02:37:00.000Z',
      SwitchOctetsLocalTx: 0,
      SwitchOctetsLocalTxCounter: 0,
      SwitchDiscardsLocalRx: 1,
      SwitchDiscardsLocalRxCounter: 2,
      SwitchOctetsUplinkRx: 33212980,
      SwitchOctetsUplinkRxCounter: 386983817800387,
    });
  });

  it('DISCOv1 dated 2016-05-12: 360 rows of 24 metrics, last sample dropped, +10 s, local octets kept', async () => {
    const rows = await rowsOf('v1-svg01-drops-last-sample');
    expect(rows).toHaveLength(360);
    expect(rows.every((r) => r.raw.Metrics.length === 24)).toBe(true);
    expect(rows[0]?.id).toBe('mlab3-svg01-1463072410');
    expect(rows.at(-1)?.id).toBe('mlab3-svg01-1463076000');
    // The file's first octets.local.tx value is 15262.0 (a float in v1): kept, truncated to an integer.
    expect(rows[0]?.a.SwitchOctetsLocalTx).toBe(15262);
    expect(rows.some((r) => r.a.SwitchOctetsLocalRx !== 0)).toBe(true);
  });

  it('keeps counters above 2^53 exact and sorts rows by timestamp', async () => {
    const rows = await rowsOf('counters-above-2-53');
    expect(rows.map((r) => r.id)).toEqual(['mlab1-lga0t-1642550400', 'mlab1-lga0t-1642550410']);
    expect(rows[1]?.a.SwitchOctetsLocalRxCounter).toBe(9223372036854775807n);
    expect(rows[1]?.a.SwitchOctetsLocalRx).toBe(9007199254740995n);
    expect(rows[0]?.a.SwitchOctetsLocalRxCounter).toBe(9007199254740993n);
  });

  it('skips samples without machine or site, with a trace', async () => {
    const c = goldenCases('switch').find((x) => x.name === 'sample-without-machine-or-site');
    const outcome = await runGoldenCase(switchParser, c!);
    expect(outcome.objects.map((r) => r.id)).toEqual(['mlab2-abc01-1599609600']);
    expect(outcome.errors.map((e) => (JSON.parse(e) as { code: string }).code)).toEqual([
      'record_skipped',
      'record_skipped',
    ]);
  });
});

describe('switch files with more timestamps than are held in memory', () => {
  const V2 = 'v2-dfw07-local-octets-zeroed';

  /** The rows of a file's text, with the given limits; also which temporary files were left. */
  async function parseText(text: string, groupedRowsInMemory: number, maxGroupedRows = 100_000) {
    const rows: string[] = [];
    const parsed = switchParser.parse(
      {
        name: '20211214T023700-switch.jsonl',
        size: text.length,
        pax: {},
        body: (async function* () {
          yield Buffer.from(text);
        })(),
        archive: { url: 'file:///x.tgz', experiment: 'utilization', datatype: 'switch', date: '2021-12-14' },
        limits: { ...DEFAULT_LIMITS, groupedRowsInMemory, maxGroupedRows },
      },
      { skip: () => {} },
    );
    for await (const row of parsed) rows.push(stringifyBigQuery(row));
    return rows;
  }

  const spillDirs = (): string[] => readdirSync(os.tmpdir()).filter((d) => d.startsWith('mlab-etl-rows-'));

  it('gives the same rows, byte for byte, when rows wait in temporary files, and removes them', async () => {
    const c = goldenCases('switch').find((x) => x.name === V2);
    if (!c) throw new Error('no v2 case');
    const lines = readFileSync(c.input, 'utf8').trim().split('\n');
    // Each metric's line in two halves, the second halves after every first half: a row's metrics
    // arrive long apart, so a row is split across spills and must be put back together in order.
    const halves = lines.map((l) => {
      const o = JSON.parse(l) as { sample: unknown[] };
      const mid = Math.floor(o.sample.length / 2);
      return [
        JSON.stringify({ ...o, sample: o.sample.slice(0, mid) }),
        JSON.stringify({ ...o, sample: o.sample.slice(mid) }),
      ];
    });
    const shuffled = [...halves.map((h) => h[1]), ...halves.map((h) => h[0])].join('\n');
    const before = spillDirs().length;
    for (const text of [readFileSync(c.input, 'utf8'), shuffled]) {
      const held = await parseText(text, 100_000);
      expect(held).toHaveLength(30);
      // maxGroupedRows counts rows, not the parts a spill splits them into: 30 rows fit in 30.
      for (const inMemory of [1, 3, 7]) expect(await parseText(text, inMemory, 30)).toEqual(held);
    }
    expect(spillDirs().length).toBe(before);
  });

  it('still stops at maxGroupedRows with too_many_rows, and removes its temporary files', async () => {
    const c = goldenCases('switch').find((x) => x.name === V2);
    if (!c) throw new Error('no v2 case');
    const before = spillDirs().length;
    await expect(parseText(readFileSync(c.input, 'utf8'), 4, 20)).rejects.toMatchObject({ code: 'too_many_rows' });
    expect(spillDirs().length).toBe(before);
  });
});
