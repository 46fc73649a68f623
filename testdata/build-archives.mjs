#!/usr/bin/env node
// Builds the archives that `npm start` parses, in M-Lab's GCS layout
// (testdata/archives/<bucket>/<experiment>/<datatype>/YYYY/MM/DD/<name>.tgz). Deterministic: the
// same bytes on every run.
// - switch: the real DISCO files of the switch golden cases, in pusher-like archives;
// - ndt7: M-Lab's real archive, kept as it is in archives/ (not built here);
// - annotation2: SYNTHETIC annotations for every other test of that ndt7 archive (real UUIDs,
//   server site from the archive name, made-up client location and network), so the joined view
//   shows tests with and without an annotation. They are not M-Lab data.
// Usage: npm run testdata
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGunzip, gunzipSync, gzipSync } from 'node:zlib';
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

const NDT7 = path.join(here, 'archives/mlab-sandbox/ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz');

// annotation2: synthetic annotations for every other ndt7 test, sorted by UUID.
const uuids = [];
const extract = tar.extract();
createReadStream(NDT7).pipe(createGunzip()).pipe(extract);
for await (const entry of extract) {
  const chunks = [];
  for await (const c of entry) chunks.push(c);
  const doc = JSON.parse(gunzipSync(Buffer.concat(chunks)).toString());
  uuids.push((doc.Download ?? doc.Upload).UUID);
}
uuids.sort();
const annotated = uuids.filter((_u, i) => i % 2 === 0);
const annotation = (uuid) =>
  JSON.stringify({
    UUID: uuid,
    Timestamp: '2020-03-18T00:00:00Z',
    Server: {
      Site: 'syd03',
      Machine: 'mlab3',
      Geo: { ContinentCode: 'OC', CountryCode: 'AU', City: 'Sydney', Latitude: -33.86, Longitude: 151.21 },
      Network: { ASNumber: 64500, ASName: 'SYNTHETIC-SERVER-NETWORK', Systems: [{ ASNs: [64500] }] },
    },
    Client: {
      Geo: { ContinentCode: 'OC', CountryCode: 'AU', Region: 'x', Latitude: -33.9, Longitude: 151.2, AccuracyRadiusKm: 100 },
      Network: { CIDR: '192.0.2.0/24', ASNumber: 64501, ASName: 'SYNTHETIC-CLIENT-NETWORK', Systems: [{ ASNs: [64501] }] },
    },
  });
const annBytes = await pusherArchive(
  '2020/03/18',
  annotated.map((u) => [`${u}.json`, Buffer.from(annotation(u))]),
  { 'MLAB.datatype': 'annotation2', 'MLAB.experiment.name': 'ndt', 'MLAB.server.name': 'mlab3.syd03.measurement-lab.org' },
);
const annOut = 'archives/mlab-sandbox/ndt/annotation2/2020/03/18/20200318T010000.000000Z-annotation2-mlab3-syd03-ndt.tgz';
mkdirSync(path.dirname(path.join(here, annOut)), { recursive: true });
writeFileSync(path.join(here, annOut), annBytes);
console.log(`${annOut} (${annBytes.length} bytes, ${annotated.length} of ${uuids.length} tests annotated)`);
