// Shared by the bench scripts: where things are, building the CLI when it is stale, comparing rows.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.dirname(BENCH);
export const DATA = path.join(BENCH, 'data');
export const CLI = path.join(ROOT, 'dist/src/cli/main.js');

function newestMtime(dir, exts) {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p, exts));
    else if (exts.some((x) => e.name.endsWith(x))) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Runs `npm run build` when dist/src/cli/main.js is missing or older than a source file. A build that
 * reports type errors but still emitted a fresh dist/ (tsc emits despite errors; others edit src/
 * while the benchmark runs) is a warning, returned as text; no fresh dist/ throws.
 */
export function ensureBuilt({ log = console.error } = {}) {
  const sources = () =>
    Math.max(
      newestMtime(path.join(ROOT, 'src'), ['.ts']),
      newestMtime(path.join(ROOT, 'parsers'), ['.ts']),
      statSync(path.join(ROOT, 'tsconfig.json')).mtimeMs,
      statSync(path.join(ROOT, 'tsconfig.build.json')).mtimeMs,
    );
  const before = sources();
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= before) return null;
  log('dist/ is stale: npm run build ...');
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status === 0) return null;
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= before) {
    const warning = 'npm run build reported type errors (see above); measuring the JavaScript it emitted anyway';
    log(`WARNING: ${warning}`);
    return warning;
  }
  throw new Error('npm run build failed: the benchmark needs a CLI built from the current sources');
}

/**
 * Builds a committed revision in bench/data/build/<sha>/ (git archive of src, parsers, schemas,
 * package.json, tsconfig.json; node_modules linked), so a benchmark can pin the code measured
 * while the work tree changes. Returns {cli, sha}.
 */
export function buildRef(ref, { log = console.error } = {}) {
  const sha = execFileSync('git', ['-C', ROOT, 'rev-parse', '--verify', `${ref}^{commit}`], {
    encoding: 'utf8',
  }).trim();
  const dir = path.join(DATA, 'build', sha);
  const cli = path.join(dir, 'dist/src/cli/main.js');
  if (existsSync(cli)) return { cli, sha };
  log(`building ${ref} (${sha.slice(0, 12)}) in ${path.relative(ROOT, dir)} ...`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tarball = execFileSync(
    'git',
    ['-C', ROOT, 'archive', sha, 'src', 'parsers', 'schemas', 'package.json', 'tsconfig.json'],
    {
      maxBuffer: 1 << 30,
    },
  );
  execFileSync('tar', ['-x', '-C', dir], { input: tarball });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const r = spawnSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(dir, 'tsconfig.json')],
    {
      stdio: 'inherit',
    },
  );
  if (!existsSync(cli)) throw new Error(`building ${ref} failed`);
  if (r.status !== 0) log(`WARNING: ${ref} has type errors; measuring the JavaScript tsc emitted`);
  return { cli, sha };
}

/** Where two JSON values differ (key order ignored), as a path like `.raw.Metrics[3].sample`, or null when equal. */
export function difference(a, b, at = '') {
  if (a === b) return null;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') {
    return `${at || '(root)'}: ${JSON.stringify(a)?.slice(0, 80)} != ${JSON.stringify(b)?.slice(0, 80)}`;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return `${at}: array vs object`;
  if (Array.isArray(a)) {
    if (a.length !== b.length) return `${at}: length ${a.length} != ${b.length}`;
    for (let i = 0; i < a.length; i++) {
      const d = difference(a[i], b[i], `${at}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (ka.join('\u0000') !== kb.join('\u0000')) {
    const only = (x, y) => x.filter((k) => !y.includes(k)).join(',');
    return `${at || '(root)'}: keys only in mlab-etl: [${only(ka, kb)}], only in naive: [${only(kb, ka)}]`;
  }
  for (const k of ka) {
    const d = difference(a[k], b[k], `${at}.${k}`);
    if (d) return d;
  }
  return null;
}

export function fmt(n, digits = 1) {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}
