// `parse` stopped mid-archive by SIGINT, SIGTERM or SIGKILL leaves no temporary file of parsed
// rows behind: the signals clean up at once, and after a kill -9 the next run removes what the
// dead process left. Through the real command, in a child process with a temporary directory of
// its own.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeSwitchArchive } from '../support/archives.js';
import { spawnCli, tempDir, waitFor } from '../support/helpers.js';

/** Files under `dir`, as paths relative to it; in a temporary directory, only mlab-etl's (tsx keeps its cache there too). */
function filesUnder(dir: string, only = ''): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .filter((f) => f.startsWith(only));
}

function parse(archive: string, db: string, tmp: string) {
  const args = ['parse', archive, '--sink', `duckdb:${db}`, '--no-progress', '--limit', 'groupedRowsInMemory=100'];
  return spawnCli(args, { TMPDIR: tmp });
}

describe('parse interrupted mid-archive', () => {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`${signal}: exits ${code}, says what was done, and leaves no temporary file`, async () => {
      const root = tempDir('interrupt');
      const tmp = path.join(root, 'tmp');
      mkdirSync(tmp);
      const archive = await writeSwitchArchive(root, { files: 4, samples: 3000 });
      const run = parse(archive, path.join(root, 'x.duckdb'), tmp);
      // Spilled rows on disk: the archive is being parsed.
      await waitFor('spilled rows', () => filesUnder(tmp, 'mlab-etl-').some((f) => f.endsWith('.run')), 60_000);
      run.child.kill(signal);
      expect(await run.exited).toBe(code);
      expect(run.output()).toContain(`${signal}: stopped after 0 of 1 archives`);
      expect(filesUnder(tmp, 'mlab-etl-')).toEqual([]);
      expect(filesUnder(path.join(root, 'x.data')).filter((f) => f.endsWith('.partial'))).toEqual([]);
    }, 90_000);
  }

  it('SIGKILL: the next run removes what the killed process left', async () => {
    const root = tempDir('interrupt');
    const tmp = path.join(root, 'tmp');
    mkdirSync(tmp);
    const archive = await writeSwitchArchive(root, { files: 4, samples: 3000 });
    const killed = parse(archive, path.join(root, 'x.duckdb'), tmp);
    await waitFor('spilled rows', () => filesUnder(tmp, 'mlab-etl-').some((f) => f.endsWith('.run')), 60_000);
    killed.child.kill('SIGKILL');
    await killed.exited;
    const left = filesUnder(tmp, 'mlab-etl-');
    expect(left.length).toBeGreaterThan(0); // a kill -9 cannot clean up
    const next = parse(archive, path.join(root, 'x.duckdb'), tmp);
    expect(await next.exited, next.output()).toBe(0);
    expect(filesUnder(tmp, 'mlab-etl-')).toEqual([]);
  }, 120_000);
});
