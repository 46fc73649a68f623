#!/usr/bin/env node
// Checks that the naive Python reference produces the same rows as mlab-etl's JSONL sink (same
// id, date, a and raw, in the same order; `parser` provenance ignored), so that comparing their
// speed is comparing the same work. Inputs:
// - the real archives bundled in testdata/archives/ (DISCOv2 switch, 114 real ndt7 tests);
// - every golden input of testdata/switch/ (DISCOv2 only: the naive reference skips DISCOv1) and
//   testdata/ndt7/, each packed into a one-entry archive in the GCS layout under bench/data/verify/;
// - with --synthetic, the generated 50 MB archives too.
// Exits 1 on any difference.
//
// Usage: node bench/verify-naive.mjs [--synthetic] [--ref GIT_REF]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { BENCH, CLI, DATA, ROOT, difference, ensureBuilt } from './lib.mjs';

const VERIFY = path.join(DATA, 'verify');

async function oneEntryTgz(entryName, bytes) {
  const pack = tar.pack();
  const chunks = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c);
  })();
  await new Promise((resolve, reject) =>
    pack.entry({ name: entryName, mtime: new Date(0), mode: 0o644 }, bytes, (e) => (e ? reject(e) : resolve())),
  );
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

/** The golden inputs of a datatype, each as a one-entry archive in the GCS layout. */
async function goldenArchives(datatype, experiment, accept) {
  const out = [];
  const dir = path.join(ROOT, 'testdata', datatype);
  for (const c of readdirSync(dir, { withFileTypes: true })) {
    if (!c.isDirectory()) continue;
    const caseDir = path.join(dir, c.name);
    const input = readdirSync(caseDir).find(accept);
    if (!input) continue;
    // A case that pins a schema violation: the naive reference validates nothing, so it would
    // write the row mlab-etl rejects. Those cases are checked by the golden tests alone.
    const errors = path.join(caseDir, 'expected-errors.jsonl');
    if (existsSync(errors) && readFileSync(errors, 'utf8').includes('"schema_violation"')) continue;
    const { date } = JSON.parse(readFileSync(path.join(caseDir, 'case.json'), 'utf8'));
    const [y, m, d] = date.split('-');
    const file = path.join(
      VERIFY,
      'golden',
      c.name,
      experiment,
      datatype,
      y,
      m,
      d,
      `${y}${m}${d}T000000.000000Z-${datatype}-mlab1-abc01-${experiment}.tgz`,
    );
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, await oneEntryTgz(`${y}/${m}/${d}/${input}`, readFileSync(path.join(caseDir, input))));
    out.push({ name: `testdata/${datatype}/${c.name}`, archive: file });
  }
  return out;
}

function rowsOf(file) {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const { parser: _p, ...rest } = JSON.parse(l);
      return rest;
    });
}

/** Runs both on one archive and compares; returns {name, rows, ok, message}. */
export function compareOne({ name, archive }, cli = CLI) {
  const work = path.join(VERIFY, 'out', name.replace(/[^A-Za-z0-9.-]+/g, '_'));
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const etl = spawnSync(process.execPath, [cli, 'parse', archive, '--sink', `jsonl:${work}/etl`, '--no-progress'], {
    encoding: 'utf8',
  });
  if (etl.status !== 0)
    return { name, rows: 0, ok: false, message: `mlab-etl exited ${etl.status}: ${etl.stdout}${etl.stderr}` };
  const py = spawnSync('python3', [path.join(BENCH, 'naive_reference.py'), archive, `${work}/naive.jsonl`], {
    encoding: 'utf8',
  });
  if (py.status !== 0)
    return { name, rows: 0, ok: false, message: `naive_reference.py exited ${py.status}: ${py.stderr}` };
  const tableDir = readdirSync(path.join(work, 'etl')).find((d) => d.startsWith('raw_'));
  const etlFile = tableDir ? path.join(work, 'etl', tableDir, readdirSync(path.join(work, 'etl', tableDir))[0]) : null;
  const a = etlFile ? rowsOf(etlFile) : [];
  const b = rowsOf(`${work}/naive.jsonl`);
  rmSync(work, { recursive: true, force: true });
  if (a.length !== b.length)
    return { name, rows: a.length, ok: false, message: `mlab-etl wrote ${a.length} rows, naive ${b.length}` };
  for (let i = 0; i < a.length; i++) {
    const d = difference(a[i], b[i]);
    if (d) return { name, rows: a.length, ok: false, message: `row ${i} (id ${a[i].id}): ${d}` };
  }
  return { name, rows: a.length, ok: true, message: 'same rows' };
}

/** `cli`: a built dist/src/cli/main.js; by default this checkout's, rebuilt when stale. */
export async function verifyNaive({ synthetic = [], cli = null, log = console.error } = {}) {
  if (cli === null) ensureBuilt({ log });
  const inputs = [
    ...readdirSync(path.join(ROOT, 'testdata/archives/mlab-sandbox/utilization/switch/2021/12/14')).map((f) => ({
      name: `testdata/archives/.../switch/2021/12/14/${f}`,
      archive: path.join(ROOT, 'testdata/archives/mlab-sandbox/utilization/switch/2021/12/14', f),
    })),
    ...readdirSync(path.join(ROOT, 'testdata/archives/mlab-sandbox/ndt/ndt7/2020/03/18')).map((f) => ({
      name: `testdata/archives/.../ndt7/2020/03/18/${f}`,
      archive: path.join(ROOT, 'testdata/archives/mlab-sandbox/ndt/ndt7/2020/03/18', f),
    })),
    ...(await goldenArchives('switch', 'utilization', (f) => /switch\.jsonl(\.gz)?$/.test(f))),
    ...(await goldenArchives('ndt7', 'ndt', (f) => f.startsWith('ndt7') && /\.json(\.gz)?$/.test(f))),
    ...synthetic,
  ];
  const results = inputs.map((i) => compareOne(i, cli ?? CLI));
  for (const r of results) log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name}: ${r.rows} rows, ${r.message}`);
  return results;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const synthetic = [];
  if (process.argv.includes('--synthetic')) {
    const { archiveSpecs, ensureArchives } = await import('./generate.mjs');
    for (const m of await ensureArchives(archiveSpecs({ sizes: [50], singleGb: false }))) {
      synthetic.push({ name: `synthetic ${m.id}`, archive: path.join(ROOT, m.archive) });
    }
  }
  const refAt = process.argv.indexOf('--ref');
  const cli = refAt > 0 ? (await import('./lib.mjs')).buildRef(process.argv[refAt + 1]).cli : null;
  const results = await verifyNaive({ synthetic, cli, log: console.log });
  process.exitCode = results.every((r) => r.ok) ? 0 : 1;
}
