import { describe, expect, it } from 'vitest';
import { GroupedRows } from './grouped-rows.js';

interface R {
  key: string;
  parts: number[];
}

function grouped(maxInMemory: number, maxRows: number): GroupedRows<R> {
  return new GroupedRows<R>({
    maxInMemory,
    maxRows,
    compare: (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
    combine: (earlier, later) => earlier.parts.push(...later.parts),
  });
}

/** Adds each key's part as a parser does: to the held row, or as a new row (or part after a spill). */
function feed(rows: GroupedRows<R>, keys: string[]): void {
  keys.forEach((key, i) => {
    const held = rows.get(key);
    if (held) held.parts.push(i);
    else rows.add(key, { key, parts: [i] });
  });
}

describe('GroupedRows', () => {
  // Keys come back after spills, so the rows are split into parts on disk; 6,000 distinct keys
  // also make the set of spilled keys grow twice.
  const keys = Array.from({ length: 18_000 }, (_, i) => `k${String((i * 7919) % 6_000).padStart(4, '0')}`);

  it('gives every row once, sorted, parts combined in input order, however few rows it holds', () => {
    const expected = new Map<string, number[]>();
    keys.forEach((k, i) => expected.set(k, [...(expected.get(k) ?? []), i]));
    const want = [...expected.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    for (const held of [64, 500, 100_000]) {
      const rows = grouped(held, 6_000);
      feed(rows, keys);
      const got = [...rows.sorted()].map((r) => [r.key, r.parts] as const);
      expect(got).toEqual(want);
    }
  });

  it('counts rows, not parts, against maxRows: 6,000 distinct keys fit in 6,000, not in 5,999', () => {
    const fits = grouped(64, 6_000);
    expect(() => feed(fits, keys)).not.toThrow();
    fits.dispose();
    const over = grouped(64, 5_999);
    expect(() => feed(over, keys)).toThrow(/more than 5999 grouped rows/);
    over.dispose();
  });
});
