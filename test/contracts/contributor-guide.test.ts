// parsers/README.md's steps, followed in a temporary copy of the repository, so the guide cannot
// rot: scaffold, the tests pass as generated, add a case, write its expectations, pass again; then
// the built `mlab-etl` command of the copy sees the new parsers after `npm run build`, and says to
// run it when parsers/ changed since.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as prettier from 'prettier';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { PACKAGE_ROOT } from '../../src/package-info.js';
import { buildArchive } from '../support/archives.js';

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
  'tsconfig.build.json',
  'vitest.config.ts',
  '.prettierrc.json',
  '.prettierignore',
]) {
  cpSync(path.join(PACKAGE_ROOT, part), path.join(copy, part), { recursive: true });
}
symlinkSync(path.join(PACKAGE_ROOT, 'node_modules'), path.join(copy, 'node_modules'));
afterAll(() => rmSync(copy, { recursive: true, force: true }));

/** The environment of a command run in the copy, as a contributor's shell would have it. */
function shellEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of Object.keys(childEnv)) if (k.startsWith('VITEST')) delete childEnv[k];
  return childEnv;
}

/** The golden, contract and docs tests of the copy, as `npm test` would run them there. */
function vitestInCopy(env: Record<string, string> = {}): { status: number | null; output: string } {
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
    { cwd: copy, env: shellEnv(env), encoding: 'utf8', timeout: 120_000 },
  );
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** A command typed in the copy. */
function shell(command: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(command, args, { cwd: copy, env: shellEnv(), encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * `npx mlab-etl ...` in a checkout: npx runs the package's own bin, the build in dist/ (checked
 * below), here without npx's start-up of several seconds in a fresh directory.
 */
function mlabEtl(...args: string[]): ReturnType<typeof shell> {
  return shell(process.execPath, path.join(copy, 'dist/src/cli/main.js'), ...args);
}

describe('the contributor guide, step by step', () => {
  it('scaffolds datatypes that pass the tests as generated, then take new golden cases', async () => {
    let out = '';
    const io = { stdout: (t: string) => (out += t), stderr: (t: string) => (out += t), isTTY: false };
    expect(await run(['new-parser', 'mydata', '--experiment', 'myexperiment', '--root', copy], io)).toBe(0);
    expect(out).toContain('parsers/mydata.ts');
    // A real M-Lab datatype mlab-etl does not parse yet: no test may use its name as "unknown".
    expect(await run(['new-parser', 'throughput1', '--experiment', 'msak', '--root', copy], io)).toBe(0);
    for (const f of [
      'parsers/mydata.ts',
      'schemas/mydata.json',
      'testdata/mydata/first-case/expected.jsonl',
      'docs/schemas/mydata.md',
      'parsers/throughput1.ts',
    ]) {
      expect(existsSync(path.join(copy, f)), f).toBe(true);
    }
    expect(await run(['new-parser', 'mydata', '--experiment', 'myexperiment', '--root', copy], io)).toBe(2); // never overwrites
    expect(await run(['new-parser', 'otherdata', '--root', copy], io)).toBe(2);
    expect(out).toContain("required option '--experiment <name>'");
    expect(await run(['new-parser', 'otherdata', '--experiment', 'MSAK', '--root', copy], io)).toBe(2);
    expect(out).toContain('experiment "MSAK": use lower-case letters and -');
    const caseJson = JSON.parse(readFileSync(path.join(copy, 'testdata/throughput1/first-case/case.json'), 'utf8'));
    expect(caseJson).toEqual({ date: '2020-09-09', experiment: 'msak' });
    const schema = JSON.parse(readFileSync(path.join(copy, 'schemas/throughput1.json'), 'utf8')) as {
      'x-mlab': { experiments: string[] };
    };
    expect(schema['x-mlab'].experiments).toEqual(['msak']);
    // As generated, the files pass the formatting check of `npm run check`.
    for (const f of ['parsers/mydata.ts', 'schemas/mydata.json']) {
      const file = path.join(copy, f);
      const options = { ...(await prettier.resolveConfig(file)), filepath: file };
      expect(await prettier.check(readFileSync(file, 'utf8'), options), f).toBe(true);
    }

    const generated = vitestInCopy();
    expect(generated.output).toContain('golden cases of mydata');
    expect(generated.output).toContain('golden cases of throughput1');
    expect(generated.status, generated.output).toBe(0);

    // Step 4: new cases with an input and case.json, expectations written, reviewed, passing.
    const caseDir = path.join(copy, 'testdata/mydata/big-value');
    mkdirSync(caseDir);
    writeFileSync(
      path.join(caseDir, 'values.jsonl'),
      '{"UUID":"h_1_0000000000000003","Value":9223372036854775807}\n{"no":"uuid"}\n',
    );
    writeFileSync(path.join(caseDir, 'case.json'), '{"date": "2021-01-01", "experiment": "myexperiment"}\n');
    const msakCase = path.join(copy, 'testdata/throughput1/one-stream');
    mkdirSync(msakCase);
    writeFileSync(path.join(msakCase, 'stream.jsonl'), '{"UUID":"mlab1-abc01_1_0000000000000004","Value":17}\n');
    writeFileSync(path.join(msakCase, 'case.json'), '{"date": "2023-06-05", "experiment": "msak"}\n');
    const missing = vitestInCopy();
    expect(missing.status).not.toBe(0); // no expectation yet: the new cases fail until written
    expect(missing.output).toContain('big-value');
    expect(missing.output).toContain('one-stream');
    const updated = vitestInCopy({ UPDATE_GOLDEN: '1' });
    expect(updated.status, updated.output).toBe(0);
    expect(readFileSync(path.join(caseDir, 'expected.jsonl'), 'utf8')).toContain('"Value":"9223372036854775807"');
    expect(readFileSync(path.join(caseDir, 'expected-errors.jsonl'), 'utf8')).toContain('line 2: no UUID');
    expect(readFileSync(path.join(msakCase, 'expected.jsonl'), 'utf8')).toBe(
      '{"id":"mlab1-abc01_1_0000000000000004","date":"2023-06-05","raw":{"UUID":"mlab1-abc01_1_0000000000000004","Value":17}}\n',
    );
    const reviewed = vitestInCopy();
    expect(reviewed.status, reviewed.output).toBe(0);
  }, 180_000);

  it('runs the new parsers from the command once built, and says to build when parsers/ changed since', async () => {
    // Left from an earlier build: `npm run build` starts from an empty dist/.
    mkdirSync(path.join(copy, 'dist/parsers'), { recursive: true });
    writeFileSync(path.join(copy, 'dist/parsers/gone.js'), 'export default {};\n');
    const build = shell('npm', 'run', 'build', '--silent');
    expect(build.status, `${build.stdout}${build.stderr}`).toBe(0);
    expect(existsSync(path.join(copy, 'dist/parsers/gone.js'))).toBe(false);

    const pkg = JSON.parse(readFileSync(path.join(copy, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin['mlab-etl']).toBe('dist/src/cli/main.js');
    const parsers = mlabEtl('parsers');
    expect(parsers.status, parsers.stderr).toBe(0);
    expect(parsers.stdout).toMatch(/^mydata\s+TODO/m);
    expect(parsers.stdout).toMatch(/^throughput1\s+TODO/m);
    const archives = path.join(copy, 'my-archives');
    const archive = path.join(
      archives,
      'msak/throughput1/2023/06/05/20230605T000000.000000Z-throughput1-mlab1-abc01-msak.tgz',
    );
    mkdirSync(path.dirname(archive), { recursive: true });
    const stream = readFileSync(path.join(copy, 'testdata/throughput1/one-stream/stream.jsonl'));
    writeFileSync(archive, await buildArchive([{ name: '2023/06/05/stream.jsonl', content: stream }]));
    const rows = path.join(copy, 'rows');
    const parsed = mlabEtl('parse', archives, '--sink', `jsonl:${rows}`, '--workers', '1');
    expect(parsed.status, `${parsed.stdout}${parsed.stderr}`).toBe(0);
    expect(readFileSync(path.join(rows, 'raw_msak/throughput1.jsonl'), 'utf8')).toContain(
      '"id":"mlab1-abc01_1_0000000000000004"',
    );

    // After the build: a parser added, one edited, one deleted.
    expect(mlabEtl('new-parser', 'otherdata', '--experiment', 'myexperiment').status).toBe(0);
    const later = new Date(Date.now() + 5_000);
    utimesSync(path.join(copy, 'parsers/throughput1.ts'), later, later);
    rmSync(path.join(copy, 'parsers/mydata.ts'));
    const stale = mlabEtl('parsers');
    expect(stale.status).toBe(1);
    expect(stale.stderr).toContain('mlab-etl: parsers_not_built: ');
    expect(stale.stderr).toContain('parsers/otherdata.ts is not built (no dist/parsers/otherdata.js)');
    expect(stale.stderr).toContain('parsers/throughput1.ts changed after its build dist/parsers/throughput1.js');
    expect(stale.stderr).toContain('dist/parsers/mydata.js is left from a deleted mydata.ts');
    expect(stale.stderr).toMatch(/: run npm run build\n$/);
    const refused = mlabEtl('parse', archives, '--sink', `jsonl:${rows}`, '--workers', '1');
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('parsers_not_built');
    // The schema is read from schemas/ directly: it needs no build.
    expect(mlabEtl('schema', 'otherdata').status).toBe(0);
  }, 180_000);
});
