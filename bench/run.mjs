#!/usr/bin/env node
// The benchmark of issue 5: on the same synthetic archives, in the same run, as whole processes,
// the median of several runs of
//   (1) the floor: Node gunzip + tar-stream + JSON.parse of every line/document (bench/floor.mjs)
//   (2) gzip -dc > /dev/null
//   (3) the naive reference: Python tarfile + json writing the same rows as JSONL (bench/naive_reference.py)
//   (4) mlab-etl parse to the JSONL sink and to the DuckDB sink
//   (5) mlab-etl parse with 2 worker threads (shown as not available until `parse --workers` exists)
// each with MB/s of decompressed entry bytes (the same denominator for every row), rows/s, peak
// RSS of the whole process and the ratio to the floor. Then a CPU profile of mlab-etl on the
// switch archive, summarised. Writes docs/benchmarks.md and bench/results.json (with --small:
// bench/data/benchmarks-small.md and bench/data/results-small.json, so CI leaves the tree clean).
//
// Targets are checked and reported, never asserted as timings. With --check the process exits 1
// only when a measured command crashed, wrote the wrong number of rows, when the naive reference
// stopped matching mlab-etl, or when mlab-etl's peak RSS went over the bound.
//
// Usage: node bench/run.mjs [--small] [--check] [--runs N] [--runs-1gb N] [--sizes 50,500] [--no-1gb]
//          [--runs-500 N] [--budget SECONDS] [--kinds switch,ndt7] [--ref GIT_REF] [--no-build] [--no-profile] [--no-verify]
//          [--seed N] [--timeout SECONDS] [--rss-bound MiB] [--write-docs]
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { setTimeout, clearTimeout } from 'node:timers';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { archiveSpecs, ensureArchives } from './generate.mjs';
import { BENCH, CLI, DATA, ROOT, buildRef, ensureBuilt, fmt } from './lib.mjs';
import { markdown as profileMarkdown, summarize } from './profile-summary.mjs';
import { verifyNaive } from './verify-naive.mjs';

const MB = 1e6;
const started = Date.now();

// ---------------------------------------------------------------- options

function options(argv) {
  const o = {
    small: false,
    check: false,
    runs: 3,
    runs500: 3,
    budget: 840,
    runs1gb: 3,
    sizes: null,
    singleGb: true,
    kinds: ['switch', 'ndt7'],
    ref: null,
    build: true,
    profile: true,
    bigquery: true,
    verify: true,
    seed: 5,
    timeout: 900,
    rssBound: 256,
    writeDocs: null,
  };
  const value = (i, name) => {
    const v = argv[i + 1];
    if (v === undefined) usage(`${name} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--small') o.small = true;
    else if (a === '--check') o.check = true;
    else if (a === '--runs') o.runs = positive(value(i++, a), a);
    else if (a === '--budget') o.budget = positive(value(i++, a), a);
    else if (a === '--runs-500') o.runs500 = positive(value(i++, a), a);
    else if (a === '--runs-1gb') o.runs1gb = positive(value(i++, a), a);
    else if (a === '--sizes')
      o.sizes = value(i++, a)
        .split(',')
        .map((s) => positive(s, a));
    else if (a === '--no-1gb') o.singleGb = false;
    else if (a === '--kinds') o.kinds = value(i++, a).split(',');
    else if (a === '--ref') o.ref = value(i++, a);
    else if (a === '--no-build') o.build = false;
    else if (a === '--no-profile') o.profile = false;
    else if (a === '--no-bigquery') o.bigquery = false;
    else if (a === '--no-verify') o.verify = false;
    else if (a === '--seed') o.seed = Number(value(i++, a));
    else if (a === '--timeout') o.timeout = positive(value(i++, a), a);
    else if (a === '--rss-bound') o.rssBound = positive(value(i++, a), a);
    else if (a === '--write-docs') o.writeDocs = true;
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown option ${a}`);
  }
  if (o.kinds.some((k) => k !== 'switch' && k !== 'ndt7')) usage('--kinds: switch and/or ndt7');
  if (o.small) {
    o.sizes ??= [50];
    o.singleGb = false;
  }
  o.sizes ??= [50, 500];
  o.writeDocs ??= !o.small;
  return o;
}

function positive(s, name) {
  const n = Number(s);
  if (!(n > 0)) usage(`${name} ${s}: expected a positive number`);
  return n;
}

function usage(error) {
  const text = readFileSync(fileURLToPath(import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('// Usage:') || l.startsWith('//          '))
    .map((l) => l.slice(3))
    .join('\n');
  if (error) console.error(`bench/run.mjs: ${error}`);
  console.error(text);
  process.exit(error ? 2 : 0);
}

const opt = options(process.argv.slice(2));
const log = (s) => console.error(s);

// ---------------------------------------------------------------- measuring one process

const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const RUSAGE_WRAPPER =
  'import resource,subprocess,sys\n' +
  'r=subprocess.run(sys.argv[2:])\n' +
  'open(sys.argv[1],"w").write("%d 0\\n"%resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n' +
  'sys.exit(r.returncode if r.returncode>=0 else 128-r.returncode)';

let current = null;
function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (current) killGroup(current);
    process.exit(130);
  });
}

/**
 * Runs one command as a whole process; returns {seconds, rssMiB, code, stdout, stderrTail, timedOut}.
 * Peak RSS comes from /usr/bin/time (%M, KiB) or, without it, from getrusage(RUSAGE_CHILDREN) in a
 * small python3 wrapper. Seconds are wall time measured here.
 */
function measure(cmd, args, { stdoutToNull = false } = {}) {
  const rssFile = path.join(DATA, `rss-${process.pid}.txt`);
  rmSync(rssFile, { force: true });
  const [bin, binArgs] = TIME
    ? [TIME, ['-f', '%M %e', '-o', rssFile, cmd, ...args]]
    : ['python3', ['-c', RUSAGE_WRAPPER, rssFile, cmd, ...args]];
  const nullFd = stdoutToNull ? openSync('/dev/null', 'w') : null;
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    // Its own process group, so a timeout (or Ctrl-C here) ends the wrapper and the measured process together.
    const child = spawn(bin, binArgs, { stdio: ['ignore', nullFd ?? 'pipe', 'pipe'], cwd: ROOT, detached: true });
    current = child;
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      if (stderr.length > 64 * 1024) stderr = stderr.slice(-16 * 1024);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // The time wrapper's child is the measured process; ending the wrapper's process group ends both.
      killGroup(child);
    }, opt.timeout * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      current = null;
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (nullFd !== null) closeSync(nullFd);
      let rssMiB = null;
      let note = '';
      if (existsSync(rssFile)) {
        const lines = readFileSync(rssFile, 'utf8').trim().split('\n');
        const last = lines.at(-1)?.split(' ') ?? [];
        if (last.length >= 1 && /^\d+$/.test(last[0])) rssMiB = Number(last[0]) / 1024;
        note = lines.slice(0, -1).join(' ');
        rmSync(rssFile, { force: true });
      }
      resolve({
        seconds,
        rssMiB,
        code: code ?? (signal ? 128 : 1),
        signal,
        timedOut,
        note,
        stdout,
        stderrTail: stderr.slice(-2000),
      });
    });
  });
}

function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Rows written, from the summary table mlab-etl prints (`raw_<experiment>.<datatype>  archives  parsed  skipped  failed  written ...`). */
function etlSummary(stdout) {
  const line = stdout.split('\n').find((l) => l.startsWith('raw_'));
  if (!line) return null;
  const c = line.trim().split(/\s+/);
  return {
    parsed: Number(c[2]),
    skipped: Number(c[3]),
    failed: Number(c[4]),
    rows: Number(c[5]),
    rejected: Number(c[6]),
  };
}

function cliSupports(cli, flag) {
  const r = spawnSync(process.execPath, [cli, 'parse', '--help'], { encoding: 'utf8' });
  return r.stdout.includes(flag);
}

// ---------------------------------------------------------------- the plan

let buildWarning = null;
let cli = CLI;
let codeUnderTest;
if (opt.ref) {
  const b = buildRef(opt.ref, { log });
  cli = b.cli;
  codeUnderTest = `${opt.ref} = ${b.sha.slice(0, 12)} (built in bench/data/build/)`;
} else {
  if (opt.build) buildWarning = ensureBuilt({ log });
  const head = spawnSync('git', ['-C', ROOT, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'parsers', 'schemas'], {
    encoding: 'utf8',
  })
    .stdout.split('\n')
    .filter(Boolean).length;
  codeUnderTest = `work tree at ${head}${dirty ? ` with ${dirty} changed or new files under src/, parsers/, schemas/` : ''}`;
}
const workers = cliSupports(cli, '--workers');

const specs = archiveSpecs({ sizes: opt.sizes, singleGb: opt.singleGb }).filter((s) => opt.kinds.includes(s.kind));
const tGen = Date.now();
const manifests = await ensureArchives(specs, { seed: opt.seed, log });
const generateSeconds = (Date.now() - tGen) / 1000;

let verification = null;
if (opt.verify) {
  log('checking that the naive reference writes the same rows as mlab-etl (testdata) ...');
  verification = await verifyNaive({ cli, log });
}

const OUT = path.join(DATA, 'out');
const BIG_LIMIT = '4000000000'; // --max-entry-bytes for the single 1 GB entry (default 200 MiB would skip it)

function removeDuck(file) {
  rmSync(file, { force: true });
  rmSync(`${file}.wal`, { force: true });
}

/** The measurements of one archive. Each has a command and a way to count its rows. */
function plan(m) {
  const archive = path.join(ROOT, m.archive);
  const jsonlDir = path.join(OUT, `${m.id}-jsonl`);
  const duckFile = path.join(OUT, `${m.id}.duckdb`);
  const naiveOut = path.join(OUT, `${m.id}-naive.jsonl`);
  // The 1 GB entry is one switch file of 511,654 timestamps: above both default limits, raised to measure it.
  const limit = m.single ? ['--max-entry-bytes', BIG_LIMIT, '--limit', 'maxGroupedRows=1000000'] : [];
  const etlRows = (r) => etlSummary(r.stdout);
  const items = [
    {
      key: 'floor',
      label: '(1) floor: Node gunzip + tar-stream + JSON.parse',
      cmd: process.execPath,
      args: [path.join(BENCH, 'floor.mjs'), archive],
      rows: () => null,
    },
    {
      key: 'gzip',
      label: '(2) gzip -dc > /dev/null',
      cmd: 'gzip',
      args: ['-dc', archive],
      stdoutToNull: true,
      rows: () => null,
    },
    {
      key: 'naive',
      label: '(3) naive Python (tarfile + json) to JSONL',
      cmd: 'python3',
      args: [path.join(BENCH, 'naive_reference.py'), archive, naiveOut],
      rows: (r) => {
        try {
          return { rows: JSON.parse(r.stdout).rows };
        } catch {
          return null;
        }
      },
      cleanup: () => rmSync(naiveOut, { force: true }),
    },
    {
      key: 'etl-jsonl',
      label: '(4) mlab-etl parse --sink jsonl',
      cmd: process.execPath,
      args: [cli, 'parse', archive, '--sink', `jsonl:${jsonlDir}`, '--no-progress', ...limit],
      rows: etlRows,
      etl: true,
      setup: () => rmSync(jsonlDir, { recursive: true, force: true }),
      cleanup: () => rmSync(jsonlDir, { recursive: true, force: true }),
    },
    {
      key: 'etl-duckdb',
      label: '(4) mlab-etl parse --sink duckdb',
      cmd: process.execPath,
      args: [cli, 'parse', archive, '--sink', `duckdb:${duckFile}`, '--no-progress', ...limit],
      rows: etlRows,
      etl: true,
      setup: () => removeDuck(duckFile),
      cleanup: () => removeDuck(duckFile),
    },
    workers
      ? {
          key: 'etl-workers',
          label: '(5) mlab-etl parse --workers 2 --sink jsonl',
          cmd: process.execPath,
          args: [cli, 'parse', archive, '--sink', `jsonl:${jsonlDir}-w`, '--no-progress', '--workers', '2', ...limit],
          rows: etlRows,
          etl: true,
          setup: () => rmSync(`${jsonlDir}-w`, { recursive: true, force: true }),
          cleanup: () => rmSync(`${jsonlDir}-w`, { recursive: true, force: true }),
        }
      : {
          key: 'etl-workers',
          label: '(5) mlab-etl parse --workers 2 --sink jsonl',
          unavailable: 'not available: `parse --workers` does not exist yet',
        },
  ];
  if (m.single) {
    items.push({
      key: 'etl-default-limit',
      label: '(4) mlab-etl parse --sink jsonl, default --max-entry-bytes',
      cmd: process.execPath,
      args: [cli, 'parse', archive, '--sink', `jsonl:${jsonlDir}-d`, '--no-progress'],
      rows: etlRows,
      etl: true,
      expectSkip: true,
      setup: () => rmSync(`${jsonlDir}-d`, { recursive: true, force: true }),
      cleanup: () => rmSync(`${jsonlDir}-d`, { recursive: true, force: true }),
    });
  }
  return items;
}

// ---------------------------------------------------------------- measuring

mkdirSync(OUT, { recursive: true });

/** One repetition of every command of an archive, in order. */
async function repetition(state) {
  const t0 = Date.now();
  log(
    `\n${state.m.id}: run ${state.reps + 1} (${(state.m.entryBytes / MB).toFixed(1)} MB in ${state.m.entries} entries, ${state.m.rows} rows)`,
  );
  for (const it of state.items) {
    if (it.unavailable) continue;
    it.setup?.();
    const r = await measure(it.cmd, it.args, { stdoutToNull: it.stdoutToNull });
    const counted = it.rows(r);
    it.cleanup?.();
    const run = {
      seconds: r.seconds,
      rssMiB: r.rssMiB,
      code: r.code,
      timedOut: r.timedOut,
      rows: counted?.rows ?? null,
      ...(counted && 'skipped' in counted
        ? { skipped: counted.skipped, failed: counted.failed, rejected: counted.rejected }
        : {}),
      ...(r.code !== 0 || r.timedOut ? { error: `${r.note} ${r.stderrTail}`.trim().slice(-1500) } : {}),
    };
    it.runs.push(run);
    log(
      `  ${it.label}: ${r.seconds.toFixed(2)} s, ${fmt(r.rssMiB, 0)} MiB` +
        (run.rows !== null ? `, ${run.rows} rows` : '') +
        (r.code !== 0 ? `, exit ${r.code}${r.timedOut ? ' (timeout)' : ''}` : ''),
    );
  }
  state.reps++;
  state.repSeconds = Math.max(state.repSeconds, (Date.now() - t0) / 1000);
}

// Every archive gets its minimum of runs first (--runs on the small ones; 1 on the 500 MB and
// 1 GB ones); then the big ones get more runs, up to --runs-500 / --runs-1gb, while the
// projected total stays within --budget. Repetitions interleave the commands, so a burst of load
// from a neighbour spreads over all of them.
const states = manifests.map((m) => ({
  m,
  items: plan(m).map((it) => ({ ...it, runs: [] })),
  reps: 0,
  repSeconds: 0,
  min: m.single || m.entryBytes >= 400 * MB ? 1 : opt.runs,
  max: m.single ? opt.runs1gb : m.entryBytes >= 400 * MB ? opt.runs500 : opt.runs,
}));
for (const st of states) while (st.reps < st.min) await repetition(st);
const RESERVE = 60; // seconds kept for the start-up runs, the profiles and the report
for (let more = true; more;) {
  more = false;
  for (const st of states
    .filter((x) => x.reps < x.max)
    .sort((a, b) => a.reps - b.reps || a.repSeconds - b.repSeconds)) {
    const elapsed = (Date.now() - started) / 1000;
    if (elapsed + st.repSeconds * 1.1 + RESERVE > opt.budget) {
      st.skippedForBudget = true;
      continue;
    }
    await repetition(st);
    more = true;
  }
}

const results = [];
for (const { m, items, reps, max, skippedForBudget } of states) {
  const byKey = new Map(items.map((it) => [it.key, it]));
  const runs = reps;
  const floorSeconds = median(byKey.get('floor').runs.map((r) => r.seconds));
  const rows = [];
  for (const it of byKey.values()) {
    if (it.unavailable) {
      rows.push({ key: it.key, label: it.label, unavailable: it.unavailable, runs: [] });
      continue;
    }
    const ok = it.runs.filter((r) => r.code === 0 && !r.timedOut);
    const seconds = median(ok.map((r) => r.seconds));
    const outRows = median(ok.map((r) => r.rows).filter((x) => x !== null));
    const maxRss = Math.max(...it.runs.map((r) => r.rssMiB ?? NaN).filter(Number.isFinite));
    const expectedRows = it.expectSkip ? 0 : m.rows;
    const crashed = it.runs.filter((r) => r.code !== 0 || r.timedOut);
    const wrongRows = it.etl || it.key === 'naive' ? ok.filter((r) => r.rows !== expectedRows) : [];
    rows.push({
      key: it.key,
      label: it.label,
      command: [it.cmd === process.execPath ? 'node' : it.cmd, ...it.args.map((a) => path.relative(ROOT, a) || a)].join(
        ' ',
      ),
      runs: it.runs,
      seconds,
      mbPerSecond: m.entryBytes / MB / seconds,
      rowsPerSecond: Number.isFinite(outRows) ? outRows / seconds : null,
      rows: Number.isFinite(outRows) ? outRows : null,
      peakRssMiB: Number.isFinite(maxRss) ? maxRss : null,
      medianRssMiB: median(it.runs.map((r) => r.rssMiB)),
      xFloor: floorSeconds / seconds,
      etl: Boolean(it.etl),
      crashed: crashed.length,
      wrongRows: wrongRows.length,
      expectedRows: it.etl || it.key === 'naive' ? expectedRows : null,
      error: crashed[0]?.error ?? null,
    });
  }
  results.push({
    archive: m,
    runsEach: runs,
    runsWanted: max,
    reducedForBudget: Boolean(skippedForBudget && runs < max),
    measurements: rows,
  });
}

// ---------------------------------------------------------------- start-up and profile

const startup = [];
for (let i = 0; i < 3; i++) startup.push((await measure(process.execPath, [cli, '--version'])).seconds);
const startupSeconds = median(startup);

const profiles = [];
if (opt.profile) {
  for (const kind of opt.kinds) {
    const m =
      manifests.find((x) => x.kind === kind && !x.single && x.entryBytes < 100 * MB) ??
      manifests.find((x) => x.kind === kind && !x.single);
    if (!m) continue;
    const dir = path.join(DATA, 'prof', m.id);
    rmSync(dir, { recursive: true, force: true });
    const out = path.join(OUT, `${m.id}-prof`);
    rmSync(out, { recursive: true, force: true });
    const r = spawnSync(
      process.execPath,
      [
        '--cpu-prof',
        `--cpu-prof-dir=${dir}`,
        cli,
        'parse',
        path.join(ROOT, m.archive),
        '--sink',
        `jsonl:${out}`,
        '--no-progress',
      ],
      {
        encoding: 'utf8',
      },
    );
    rmSync(out, { recursive: true, force: true });
    const file = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.cpuprofile')) : null;
    if (r.status !== 0 || !file) {
      log(`profile of ${m.id} failed: ${r.stderr}`);
      continue;
    }
    const summary = summarize(JSON.parse(readFileSync(path.join(dir, file), 'utf8')), { top: 20 });
    profiles.push({
      id: m.id,
      file: path.relative(ROOT, path.join(dir, file)),
      command: `node --cpu-prof --cpu-prof-dir=${path.relative(ROOT, dir)} ${path.relative(ROOT, cli)} parse ${m.archive} --sink jsonl:DIR`,
      summary,
    });
  }
}
// ---------------------------------------------------------------- BigQuery sink

// The rows of each 50 MB archive, written through the BigQuery sink to the test server (in its
// own process) answering every insertAll 75 ms late: bench/bigquery.mjs.
const bigquery = [];
if (opt.bigquery) {
  const distDir = path.dirname(path.dirname(cli));
  for (const m of manifests.filter((x) => !x.single && x.entryBytes < 100 * MB)) {
    const out = path.join(OUT, `${m.id}-bq-rows`);
    rmSync(out, { recursive: true, force: true });
    const parsed = spawnSync(
      process.execPath,
      [cli, 'parse', path.join(ROOT, m.archive), '--sink', `jsonl:${out}`, '--no-progress'],
      {
        encoding: 'utf8',
      },
    );
    const dataset = existsSync(out) ? readdirSync(out).find((d) => d.startsWith('raw_')) : undefined;
    const table = dataset ? readdirSync(path.join(out, dataset)).find((f) => f.endsWith('.jsonl')) : undefined;
    if (parsed.status !== 0 || !dataset || !table) {
      log(`BigQuery sink bench of ${m.id}: parse failed: ${firstLine(parsed.stderr)}`);
      continue;
    }
    log(`BigQuery sink: ${m.id} rows through bench/bigquery.mjs`);
    const r = spawnSync(
      process.execPath,
      [
        path.join(BENCH, 'bigquery.mjs'),
        path.join(out, dataset, table),
        '--dist',
        distDir,
        '--in-flight',
        '8,16,32',
        '--backend',
        'latency-only,checking',
      ],
      { encoding: 'utf8', timeout: 300_000 },
    );
    rmSync(out, { recursive: true, force: true });
    if (r.status !== 0) {
      log(`BigQuery sink bench of ${m.id} failed: ${firstLine(r.stderr)}`);
      bigquery.push({ id: m.id, error: firstLine(r.stderr) || `exit ${r.status}` });
      continue;
    }
    for (const line of r.stdout.split('\n').filter(Boolean)) bigquery.push({ id: m.id, ...JSON.parse(line) });
  }
}

rmSync(OUT, { recursive: true, force: true });

// ---------------------------------------------------------------- targets

const find = (id, key) => results.find((r) => r.archive.id === id)?.measurements.find((x) => x.key === key);
const targets = [];
for (const r of results) {
  const { id, single } = r.archive;
  const jsonl = find(id, 'etl-jsonl');
  const duck = find(id, 'etl-duckdb');
  const naive = find(id, 'naive');
  if (!single) {
    targets.push({
      target: `parse to JSONL >= 0.5x the floor (aim 0.7x), ${id}`,
      value: jsonl.xFloor,
      shown: `${fmt(jsonl.xFloor, 2)}x`,
      pass: jsonl.xFloor >= 0.5,
      aim: jsonl.xFloor >= 0.7,
    });
    const vsNaive = naive.seconds / jsonl.seconds;
    targets.push({
      target: `parse to JSONL >= 3x the naive Python reference, ${id}`,
      value: vsNaive,
      shown: `${fmt(vsNaive, 2)}x`,
      pass: vsNaive >= 3,
    });
  }
  const withWorkers = find(id, 'etl-workers');
  if (withWorkers && !withWorkers.unavailable && withWorkers.seconds) {
    const speedup = jsonl.seconds / withWorkers.seconds;
    targets.push({
      target: `parse --workers 2 >= 1.7x the one-thread throughput, ${id}`,
      value: speedup,
      shown: `${fmt(speedup, 2)}x`,
      pass: speedup >= 1.7,
    });
  }
  for (const [x, name] of [
    [jsonl, 'JSONL'],
    [duck, 'DuckDB'],
  ]) {
    const ok = x.crashed === 0 && x.peakRssMiB !== null && x.peakRssMiB <= opt.rssBound;
    targets.push({
      target: `peak RSS of parse to ${name} <= ${opt.rssBound} MiB, ${id}`,
      value: x.peakRssMiB,
      shown: `${fmt(x.peakRssMiB, 0)} MiB${x.crashed ? ` (${x.crashed} of ${x.runs.length} runs failed: ${firstLine(x.error)})` : ''}`,
      pass: ok,
      rss: true,
    });
  }
}
for (const id of [...new Set(bigquery.map((b) => b.id))]) {
  for (const [backend, what] of [
    ['checking', 'the BigQuery test server'],
    ['latency-only', 'the latency-only endpoint (the sink alone)'],
  ]) {
    const runs = bigquery.filter((b) => b.id === id && !b.error && (b.backend ?? 'checking') === backend);
    if (runs.length === 0) continue;
    const best = runs.reduce((a, b) => (b.rowsPerSecond > a.rowsPerSecond ? b : a));
    targets.push({
      target: `BigQuery sink >= 50,000 rows/s against ${what} at 75 ms per insertAll, ${id} rows`,
      value: best.rowsPerSecond,
      shown: `${fmt(best.rowsPerSecond, 0)} rows/s (${fmt(best.mbPerSecond, 1)} MB/s of rows; sink busy ${fmt(100 * best.sinkCpuShare, 0)}%, server ${fmt(100 * best.serverCpuShare, 0)}%)`,
      pass: best.rowsPerSecond >= 50_000,
    });
  }
}
const totalSeconds = (Date.now() - started) / 1000;
if (!opt.small)
  targets.push({
    target: 'the whole benchmark completes in under 15 minutes',
    value: totalSeconds,
    shown: `${fmt(totalSeconds / 60, 1)} min`,
    pass: totalSeconds < 900,
  });

function firstLine(s) {
  if (!s) return '';
  const lines = s
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return (lines.find((l) => /heap out of memory|error|Error|terminated|signal/i.test(l)) ?? lines.at(-1) ?? '').slice(
    0,
    160,
  );
}

// Failures that --check turns into exit 1: never timings.
const problems = [];
for (const r of results) {
  for (const x of r.measurements) {
    if (x.unavailable) continue;
    if (x.crashed)
      problems.push(
        `${r.archive.id}: ${x.label}: ${x.crashed} of ${x.runs.length} runs failed (${firstLine(x.error)})`,
      );
    if (x.wrongRows) problems.push(`${r.archive.id}: ${x.label}: wrote ${x.rows} rows, expected ${x.expectedRows}`);
  }
}
for (const t of targets) if (t.rss && !t.pass) problems.push(`${t.target}: ${t.shown}`);
for (const v of verification ?? [])
  if (!v.ok) problems.push(`naive reference differs from mlab-etl on ${v.name}: ${v.message}`);

// ---------------------------------------------------------------- machine

function machine() {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const mhz = /cpu MHz\s*:\s*(.*)/.exec(cpuinfo)?.[1];
  const version = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout || ''}${r.stderr || ''}`.split('\n')[0].trim();
  };
  return {
    cpu: `${model}${mhz ? ` (${Number(mhz).toFixed(0)} MHz)` : ''}`,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memoryGiB: os.totalmem() / 1024 ** 3,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    python: version('python3', ['--version']),
    gzip: version('gzip', ['--version']),
    loadAverageAtStart: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    rssFrom: TIME
      ? '/usr/bin/time -f %M (max resident set size of the process)'
      : 'getrusage(RUSAGE_CHILDREN).ru_maxrss via python3 (no /usr/bin/time)',
    date: new Date().toISOString(),
  };
}
const host = machine();

// ---------------------------------------------------------------- report

function table(r) {
  const head = ['measurement', 'MB/s', 'rows/s', 'peak RSS MiB', 'x floor', 'median s', 'runs'];
  const lines = r.measurements.map((x) =>
    x.unavailable
      ? [x.label, 'n/a', 'n/a', 'n/a', 'n/a', 'n/a', x.unavailable]
      : [
          x.label,
          fmt(x.mbPerSecond, 1),
          x.rowsPerSecond === null ? '-' : fmt(x.rowsPerSecond, 0),
          fmt(x.peakRssMiB, 0),
          `${fmt(x.xFloor, 2)}`,
          fmt(x.seconds, 2),
          `${x.runs.length}${x.crashed ? ` (${x.crashed} failed: ${firstLine(x.error)})` : ''}${x.wrongRows ? ` (rows ${x.rows} != ${x.expectedRows})` : ''}`,
        ],
  );
  return { head, lines };
}

function markdownTable({ head, lines }) {
  const esc = (c) => String(c).replace(/\|/g, '\\|');
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_h, i) => (i === 0 || i === head.length - 1 ? '---' : '---:')).join('|')}|`,
    ...lines.map((l) => `| ${l.map(esc).join(' | ')} |`),
  ].join('\n');
}

function textTable({ head, lines }) {
  const all = [head, ...lines];
  const w = head.map((_h, i) => Math.max(...all.map((l) => String(l[i]).length)));
  return all
    .map((l) =>
      l
        .map((c, i) => (i === 0 || i === l.length - 1 ? String(c).padEnd(w[i]) : String(c).padStart(w[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function archiveTitle(m) {
  return `${m.id}: ${(m.entryBytes / MB).toFixed(1)} MB decompressed in ${m.entries} ${m.kind === 'switch' ? 'DISCOv2 .jsonl' : 'ndt7 .json.gz'} entr${m.entries === 1 ? 'y' : 'ies'} (${(m.archiveBytes / MB).toFixed(1)} MB .tgz), ${m.rows} rows`;
}

const stdoutReport = [
  ...results.flatMap((r) => ['', archiveTitle(r.archive), textTable(table(r))]),
  '',
  `CLI start-up (node ${path.relative(ROOT, cli)} --version): ${fmt(startupSeconds, 2)} s`,
  '',
  'Targets:',
  ...targets.map(
    (t) =>
      `  ${t.pass ? 'PASS' : 'FAIL'}  ${t.target}: ${t.shown}${t.aim === false && t.pass ? ' (aim 0.7x not reached)' : ''}`,
  ),
  ...(problems.length ? ['', 'Problems (--check fails on these):', ...problems.map((p) => `  ${p}`)] : []),
  '',
  `Total ${fmt(totalSeconds, 0)} s (generating archives ${fmt(generateSeconds, 0)} s).`,
].join('\n');
console.log(stdoutReport);

const json = {
  issue: 5,
  date: host.date,
  machine: host,
  codeUnderTest,
  buildWarning,
  options: { ...opt },
  generateSeconds,
  totalSeconds,
  startupSeconds,
  workersAvailable: workers,
  bigquery,
  verification,
  results,
  targets,
  problems,
  profiles: profiles.map((p) => ({
    id: p.id,
    file: p.file,
    command: p.command,
    totalMs: p.summary.totalMs,
    functions: p.summary.functions,
    areas: p.summary.areas,
  })),
};
const resultsFile = opt.writeDocs
  ? path.join(BENCH, 'results.json')
  : path.join(DATA, opt.small ? 'results-small.json' : 'results.json');
writeFileSync(resultsFile, `${JSON.stringify(json, null, 2)}\n`);

const md = [
  '# Benchmarks',
  '',
  `Generated by \`node bench/run.mjs${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\` (issue 5) on ${host.date.slice(0, 10)}; do not edit by hand. Raw figures: [bench/results.json](../bench/results.json); how it works: [bench/README.md](../bench/README.md).`,
  '',
  'Every figure is a whole process, measured in the same run on the same archives. MB/s is decompressed entry bytes (what the archive holds, MB = 10^6 bytes) over the median wall time, the same denominator for every row; rows/s is rows written over the same time; peak RSS is the largest of the runs; "x floor" is the floor\'s median time over this one\'s (1.00 = as fast as the floor).',
  '',
  '## Machine',
  '',
  `- CPU: ${host.cpu}, ${host.cores} cores; memory ${fmt(host.memoryGiB, 1)} GiB; ${host.os}`,
  `- ${host.node}, ${host.python}, ${host.gzip}; load average at start ${host.loadAverageAtStart} (a shared machine: absolute figures drift, compare ratios within one run)`,
  `- Peak RSS from ${host.rssFrom}`,
  `- Code measured: ${codeUnderTest}${buildWarning ? ` (${buildWarning})` : ''}`,
  `- Runs: the median of ${results.map((r) => `${r.runsEach} on ${r.archive.id}`).join(', ')}${
    results.some((r) => r.reducedForBudget)
      ? ` (fewer than wanted on ${results
          .filter((r) => r.reducedForBudget)
          .map((r) => `${r.archive.id}, ${r.runsEach} of ${r.runsWanted}`)
          .join(
            '; ',
          )}: the 500 MB and 1 GB archives get 1 run first, then more while the projected total stays within the ${opt.budget} s budget)`
      : ''
  }; archives generated with seed ${opt.seed} by bench/generate.mjs`,
  '',
  '## Results',
  '',
  ...results.flatMap((r) => [`### ${archiveTitle(r.archive)}`, '', markdownTable(table(r)), '']),
  `CLI start-up alone (\`node ${path.relative(ROOT, cli)} --version\`): ${fmt(startupSeconds, 2)} s, included in every mlab-etl figure above.`,
  '',
  '## Targets',
  '',
  '| target | measured | result |',
  '|---|---:|---|',
  ...targets.map(
    (t) =>
      `| ${t.target} | ${t.shown} | ${t.pass ? (t.aim === false ? 'pass (aim 0.7x not reached)' : 'pass') : '**fail**'} |`,
  ),
  '',
  ...(problems.length
    ? ['Problems (`--check` fails on these, never on timings):', '', ...problems.map((p) => `- ${p}`), '']
    : []),
  ...(verification
    ? [
        `The naive reference wrote the same rows as mlab-etl (id, date, a, raw; parser provenance ignored) on ${verification.filter((v) => v.ok).length} of ${verification.length} real testdata inputs${verification.every((v) => v.ok) ? '' : ' (see problems)'}.`,
        '',
      ]
    : []),
  ...(bigquery.length
    ? [
        '',
        '## BigQuery sink',
        '',
        '`node bench/bigquery.mjs ROWS.jsonl`: the rows `mlab-etl parse` wrote for the archive, written through the BigQuery sink (one process, batches of one entry as the pipeline hands them over, then the archive committed) to a server in another process answering every insertAll 75 ms late. Backend "checking" is the BigQuery test server, which parses and checks every row as BigQuery would; "latency-only" is an endpoint in the same process that forwards everything else to it but answers insertAll without parsing the rows (it refuses a request over 10 MB or 500 rows), which measures the sink alone. "sink busy" and "server busy" are the share of the time each process was on a CPU (the machine has 2 cores).',
        '',
        markdownTable({
          head: [
            'rows of',
            'backend',
            'insertAll in flight',
            'rows',
            'row MB',
            'seconds',
            'rows/s',
            'MB/s',
            'sink busy',
            'server busy',
            'requests',
            'rows per request',
          ],
          lines: bigquery
            .filter((b) => !b.error)
            .map((b) => [
              b.id,
              b.backend ?? 'checking',
              String(b.maxInFlight),
              String(b.rows),
              fmt(b.rowBytes / MB, 1),
              fmt(b.seconds, 2),
              fmt(b.rowsPerSecond, 0),
              fmt(b.mbPerSecond, 1),
              `${fmt(100 * b.sinkCpuShare, 0)}%`,
              b.serverCpuShare === undefined ? '-' : `${fmt(100 * b.serverCpuShare, 0)}%`,
              String(b.insertAllRequests),
              fmt(b.rowsPerRequest, 0),
            ]),
        }),
        '',
        ...bigquery.filter((b) => b.error).map((b) => `- ${b.id}: failed: ${b.error}`),
        '',
      ]
    : []),
  '## Where the time goes',
  '',
  ...profiles.flatMap((p) => [
    `### ${p.id}`,
    '',
    `\`${p.command}\` (profile kept in ${p.file}).`,
    '',
    profileMarkdown(p.summary),
    '',
  ]),
  // What was changed because of the profiles: written by hand, kept beside the harness.
  ...(existsSync(path.join(BENCH, 'profile-changes.md'))
    ? [readFileSync(path.join(BENCH, 'profile-changes.md'), 'utf8').trim().replace(/^## /, '### '), '']
    : []),
  `Total benchmark time: ${fmt(totalSeconds / 60, 1)} min (generating archives: ${fmt(generateSeconds, 0)} s).`,
  '',
];
const mdFile = opt.writeDocs
  ? path.join(ROOT, 'docs', 'benchmarks.md')
  : path.join(DATA, opt.small ? 'benchmarks-small.md' : 'benchmarks.md');
writeFileSync(mdFile, md.join('\n'));
if (opt.writeDocs) {
  // The repository's `npm run lint` runs prettier --check over docs/ and bench/: write what it expects.
  const prettier = path.join(ROOT, 'node_modules/.bin/prettier');
  if (existsSync(prettier))
    spawnSync(prettier, ['--write', '--log-level', 'warn', mdFile, resultsFile], { cwd: ROOT, stdio: 'inherit' });
}
log(`\nwrote ${path.relative(ROOT, mdFile)} and ${path.relative(ROOT, resultsFile)}`);

if (opt.check && problems.length) {
  log(`\n--check: ${problems.length} problem(s)`);
  process.exitCode = 1;
}
