// parsers/README.md's steps, followed in a temporary copy of the repository, so the guide cannot
// rot: scaffold, npm test passes as generated, add a case, write its expectations, pass again.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as prettier from 'prettier';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { PACKAGE_ROOT } from '../../src/package-info.js';

const copy = mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-guide-'));
for (const part of [
  'src',
  'test',
  'parsers',
  'schemas',
  'testdata',
  'docs',
  'package.json',
  'tsconfig.json',
  'vitest.config.ts',
  '.prettierrc.json',
  '.prettierignore',
]) {
  cpSync(path.join(PACKAGE_ROOT, part), path.join(copy, part), { recursive: true });
}
symlinkSync(path.join(PACKAGE_ROOT, 'node_modules'), path.join(copy, 'node_modules'));

/** The golden, contract and docs tests of the copy, as `npm test` would run them there. */
function vitestInCopy(env: Record<string, string> = {}): { status: number | null; output: string } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of Object.keys(childEnv)) if (k.startsWith('VITEST')) delete childEnv[k];
  const r = spawnSync(
    process.execPath,
    [
      path.join(copy, 'node_modules/vitest/vitest.mjs'),
      'run',
      '--reporter=verbose',
      'test/contracts/golden.test.ts',
      'test/contracts/contract.test.ts',
      'src/schema/schema-docs.test.ts',
    ],
    { cwd: copy, env: childEnv, encoding: 'utf8', timeout: 120_000 },
  );
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('the contributor guide, step by step', () => {
  it('scaffolds a datatype that passes the tests as generated, then takes a new golden case', async () => {
    let out = '';
    const io = { stdout: (t: string) => (out += t), stderr: (t: string) => (out += t), isTTY: false };
    expect(await run(['new-parser', 'mydata', '--experiment', 'myexperiment', '--root', copy], io)).toBe(0);
    expect(out).toContain('parsers/mydata.ts');
    for (const f of [
      'parsers/mydata.ts',
      'schemas/mydata.json',
      'testdata/mydata/first-case/expected.jsonl',
      'docs/schemas/mydata.md',
    ]) {
      expect(existsSync(path.join(copy, f)), f).toBe(true);
    }
    expect(await run(['new-parser', 'mydata', '--experiment', 'myexperiment', '--root', copy], io)).toBe(2); // never overwrites
    expect(await run(['new-parser', 'otherdata', '--root', copy], io)).toBe(2);
    expect(out).toContain("required option '--experiment <name>'");
    const caseJson = JSON.parse(readFileSync(path.join(copy, 'testdata/mydata/first-case/case.json'), 'utf8'));
    expect(caseJson).toEqual({ date: '2020-09-09', experiment: 'myexperiment' });
    const schema = JSON.parse(readFileSync(path.join(copy, 'schemas/mydata.json'), 'utf8')) as {
      'x-mlab': { experiments: string[] };
    };
    expect(schema['x-mlab'].experiments).toEqual(['myexperiment']);
    // As generated, the files pass the formatting check of `npm run check`.
    for (const f of ['parsers/mydata.ts', 'schemas/mydata.json']) {
      const file = path.join(copy, f);
      const options = { ...(await prettier.resolveConfig(file)), filepath: file };
      expect(await prettier.check(readFileSync(file, 'utf8'), options), f).toBe(true);
    }

    const generated = vitestInCopy();
    expect(generated.output).toContain('golden cases of mydata');
    expect(generated.status, generated.output).toBe(0);

    // Step 4: a new case with an input and case.json, expectations written, reviewed, passing.
    const caseDir = path.join(copy, 'testdata/mydata/big-value');
    mkdirSync(caseDir);
    writeFileSync(
      path.join(caseDir, 'values.jsonl'),
      '{"UUID":"h_1_0000000000000003","Value":9223372036854775807}\n{"no":"uuid"}\n',
    );
    writeFileSync(path.join(caseDir, 'case.json'), '{"date": "2021-01-01", "experiment": "myexperiment"}\n');
    const missing = vitestInCopy();
    expect(missing.status).not.toBe(0); // no expectation yet: the new case fails until written
    expect(missing.output).toContain('big-value');
    const updated = vitestInCopy({ UPDATE_GOLDEN: '1' });
    expect(updated.status, updated.output).toBe(0);
    expect(readFileSync(path.join(caseDir, 'expected.jsonl'), 'utf8')).toContain('"Value":"9223372036854775807"');
    expect(readFileSync(path.join(caseDir, 'expected-errors.jsonl'), 'utf8')).toContain('line 2: no UUID');
    const reviewed = vitestInCopy();
    expect(reviewed.status, reviewed.output).toBe(0);
  }, 180_000);
});
