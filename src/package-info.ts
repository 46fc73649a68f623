/** Where the package lives and what it is, read once. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  let dir = from;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'schemas'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`mlab-etl: package root not found above ${from}`);
    dir = up;
  }
}

/** The package root: holds package.json, schemas/ and parsers/ (or dist/parsers/ when built). */
export const PACKAGE_ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)));
export const SCHEMAS_DIR = path.join(PACKAGE_ROOT, 'schemas');

const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
export const VERSION: string = pkg.version;

/**
 * The checkout's HEAD commit, or null outside a checkout: the default of `--git-commit`, which
 * the image build sets through MLAB_ETL_GIT_COMMIT (an image has no .git).
 */
export function checkoutHead(): string | null {
  try {
    const gitDir = path.join(PACKAGE_ROOT, '.git');
    const head = readFileSync(path.join(gitDir, 'HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    const ref = head.slice(5);
    const loose = path.join(gitDir, ref);
    if (existsSync(loose)) return readFileSync(loose, 'utf8').trim();
    const packed = readFileSync(path.join(gitDir, 'packed-refs'), 'utf8');
    const line = packed.split('\n').find((l) => l.endsWith(` ${ref}`));
    return line ? (line.split(' ')[0] ?? null) : null;
  } catch {
    return null;
  }
}
