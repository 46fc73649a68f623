#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by file/package.
// Self time of a JavaScript function includes the built-ins it calls that the profiler does not
// show as frames (JSON.parse, JSON.stringify, RegExp exec, string concatenation...), which is
// usually what one wants to know.
//
// Usage: node bench/profile-summary.mjs FILE.cpuprofile [--top 25] [--markdown]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** A readable place for a script URL: dist/src/x.js, <package>/file.js, node:internal/... */
function place(url) {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) return u.slice(nm + '/node_modules/'.length);
  const dist = u.indexOf('/dist/');
  if (dist >= 0) return u.slice(dist + 1);
  return u.startsWith('/') ? path.basename(u) : u;
}

/** The group a place belongs to: a source file, an npm package, a Node internal module. */
function area(name, where) {
  if (!where) {
    if (name.startsWith('(')) return name;
    return /^validate\d*$|^validate/.test(name) ? '(ajv generated validators)' : '(native / generated code)';
  }
  if (where.startsWith('node:')) {
    const parts = where.split('/');
    return parts[0] === 'node:internal' && parts.length > 2 ? `${parts[0]}/${parts[1]}` : parts.slice(0, 2).join('/');
  }
  if (where.startsWith('dist/')) return where;
  const first = where.split('/')[0];
  return first.startsWith('@') ? where.split('/').slice(0, 2).join('/') : first;
}

export function summarize(profile, { top = 25 } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (id) => {
    const n = byId.get(id);
    if (!n) return '';
    const where = place(n.callFrame.url);
    return `${n.callFrame.functionName || '(anonymous)'}${where ? ` (${where.split('/').pop()}:${n.callFrame.lineNumber + 1})` : ''}`;
  };
  const self = new Map(); // node id -> microseconds
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? 0; // the time until the next sample belongs to this one
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fns = new Map();
  const areas = new Map();
  for (const [id, us] of self) {
    const { callFrame } = byId.get(id);
    const name = callFrame.functionName || '(anonymous)';
    const where = place(callFrame.url);
    const key = `${name}\u0000${where}:${callFrame.lineNumber + 1}`;
    const f = fns.get(key) ?? {
      name,
      where: where ? `${where}:${callFrame.lineNumber + 1}` : '',
      us: 0,
      callers: new Map(),
    };
    f.us += us;
    const caller = label(parent.get(id));
    f.callers.set(caller, (f.callers.get(caller) ?? 0) + us);
    fns.set(key, f);
    const a = area(name, where);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const sorted = [...fns.values()].sort((a, b) => b.us - a.us);
  return {
    totalMs: total / 1000,
    functions: sorted.slice(0, top).map(({ callers, ...f }) => ({
      ...f,
      ms: f.us / 1000,
      share: f.us / total,
      calledFrom: [...callers.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '',
    })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, ms: us / 1000, share: us / total })),
  };
}

export function markdown(summary, { topAreas = 15 } = {}) {
  const pct = (x) => `${(100 * x).toFixed(1)}%`;
  const lines = [
    `Sampled CPU time: ${(summary.totalMs / 1000).toFixed(2)} s (main thread).`,
    '',
    '| self time | share | function | where | mostly called from |',
    '|---:|---:|---|---|---|',
    ...summary.functions.map(
      (f) =>
        `| ${f.ms.toFixed(0)} ms | ${pct(f.share)} | \`${f.name.replace(/\|/g, '\\|')}\` | ${f.where || '-'} | ${f.calledFrom ? `\`${f.calledFrom.replace(/\|/g, '\\|')}\`` : '-'} |`,
    ),
    '',
    'By file or package:',
    '',
    '| self time | share | file / package |',
    '|---:|---:|---|',
    ...summary.areas.slice(0, topAreas).map((a) => `| ${a.ms.toFixed(0)} ms | ${pct(a.share)} | ${a.name} |`),
  ];
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N]');
    process.exit(2);
  }
  const topAt = process.argv.indexOf('--top');
  const s = summarize(JSON.parse(readFileSync(file, 'utf8')), {
    top: topAt > 0 ? Number(process.argv[topAt + 1]) : 25,
  });
  console.log(markdown(s));
}
