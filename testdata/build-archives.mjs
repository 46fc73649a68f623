#!/usr/bin/env node
// Builds the archives that `npm start` parses, in M-Lab's GCS layout
// (testdata/archives/<bucket>/<experiment>/<datatype>/YYYY/MM/DD/<name>.tgz), from the real DISCO
// files of the switch golden cases. Deterministic: the same bytes on every run.
// Usage: npm run testdata
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

const here = path.dirname(fileURLToPath(import.meta.url));
const MTIME = new Date(Date.UTC(2021, 11, 14, 3, 0, 0));

/** A pusher-like .tgz: the date directories, then each file with MLAB.* PAX headers. */
async function pusherArchive(dateDir, files, pax) {
  const pack = tar.pack();
  const chunks = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c);
  })();
  const add = (header, body) =>
    new Promise((resolve, reject) => pack.entry({ mtime: MTIME, uid: 0, gid: 0, ...header }, body, (e) => (e ? reject(e) : resolve())));
  const parts = dateDir.split('/');
  for (let i = 1; i <= parts.length; i++) await add({ name: `${parts.slice(0, i).join('/')}/`, type: 'directory', mode: 0o755 }, Buffer.alloc(0));
  for (const [name, bytes] of files) await add({ name: `${dateDir}/${name}`, mode: 0o644, pax }, bytes);
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks), { level: 9 });
}

const archives = [
  {
    out: 'archives/mlab-sandbox/utilization/switch/2021/12/14/20211214T030000.000000Z-switch-mlab2-dfw07-utilization.tgz',
    dateDir: '2021/12/14',
    files: [['20211214T023700-switch.jsonl', 'switch/v2-dfw07-local-octets-zeroed/20211214T023700-switch.jsonl']],
    server: 'mlab2.dfw07.measurement-lab.org',
  },
  {
    out: 'archives/mlab-sandbox/utilization/switch/2016/05/12/20160512T180000.000000Z-switch-mlab3-svg01-utilization.tgz',
    dateDir: '2016/05/12',
    files: [['20160512T170000-switch.json.gz', 'switch/v1-svg01-drops-last-sample/20160512T170000-switch.json.gz']],
    server: 'mlab3.svg01.measurement-lab.org',
  },
];

for (const a of archives) {
  const pax = { 'MLAB.datatype': 'switch', 'MLAB.experiment.name': 'utilization', 'MLAB.server.name': a.server };
  const bytes = await pusherArchive(
    a.dateDir,
    a.files.map(([name, src]) => [name, readFileSync(path.join(here, src))]),
    pax,
  );
  const out = path.join(here, a.out);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, bytes);
  console.log(`${a.out} (${bytes.length} bytes)`);
}
