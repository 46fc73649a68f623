// The README's analyst queries, run as a reader would run them on the bundled archives: each one
// works, and none aggregates throughput over downloads and uploads together (a median of both
// directions is a number no analyst wants: 9.26 Mbit/s where downloads give 32.91 and uploads 5.77).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { PACKAGE_ROOT } from '../../src/package-info.js';
import { tempDir } from '../support/helpers.js';

const readme = readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf("## An analyst's first query"), readme.indexOf('## Your own data'));
/** The `npx mlab-etl query "..."` commands of the section, their SQL joined across lines. */
const queries = [...section.matchAll(/npx mlab-etl query "([^"]+)"/g)].map((m) => (m[1] ?? '').replace(/\s+/g, ' '));

async function cli(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await run(args, { stdout: (t) => (out += t), stderr: (t) => (out += t), isTTY: false });
  return { code, out };
}

describe("README's analyst queries", () => {
  let db: string;
  beforeAll(async () => {
    db = path.join(tempDir('readme'), 'x.duckdb');
    const parsed = await cli([
      'parse',
      path.join(PACKAGE_ROOT, 'testdata/archives'),
      '--sink',
      `duckdb:${db}`,
      '--no-progress',
    ]);
    expect(parsed.code, parsed.out).toBe(0);
  });

  it('holds queries', () => {
    expect(queries.length).toBeGreaterThanOrEqual(2);
  });

  for (const [i, sql] of queries.entries()) {
    it(`query ${i + 1} runs and keeps to one direction`, async () => {
      const r = await cli(['query', sql, '--db', db]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/\(\d+ rows?\)/);
      if (/a\.MeanThroughputMbps/.test(sql)) expect(sql).toMatch(/raw\.(Download|Upload) IS NOT NULL/);
    });
  }
});
