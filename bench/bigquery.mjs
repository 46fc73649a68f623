// The BigQuery sink against the BigQuery test server answering every insertAll 75 ms late (the
// median latency reported for the real service): can one process keep up?
//
//   node bench/bigquery.mjs ROWS.jsonl [--latency 75] [--in-flight 8,16,32] [--backend checking,latency-only] [--dist DIR]
//
// ROWS.jsonl: rows as `mlab-etl parse --sink jsonl` wrote them (real rows of a real schema). The
// test server runs in a child process, so parsing request bodies there does not slow the sink;
// it refuses what BigQuery refuses (over 10 MB, unknown fields, bad types). Every row is written
// once per setting, in batches of one entry as the pipeline hands them over, then the archive is
// committed (every request answered) and the server is asked how many rows it stored. Prints one
// JSON object per setting.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { OAuth2Client } from 'google-auth-library';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args.splice(i, 2)[1];
};
// The compiled code to measure: this checkout's unless --dist names another build.
const DIST = path.resolve(flag('--dist', path.join(ROOT, 'dist')));
const dist = (p) => import(path.join(DIST, p));
const { BigQuerySink } = await dist('src/sinks/bigquery/sink.js');
const { SchemaSet } = await dist('src/schema/schema-set.js');
const { rowKey } = await dist('src/rows/rows.js');
const { jsonlBytes } = await dist('src/rows/row-batch.js');
// The build holds production code only: the test server is run from its TypeScript source (tsx).
const TEST_SERVER = path.join(ROOT, 'test/support/bigquery-test-server/index.ts');

/** Credentials the test server accepts; the sink never asks Google for a token with them. */
function dummyAuthClient() {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'test', expiry_date: Date.now() + 3_600_000 });
  return auth;
}

const latency = Number(flag('--latency', '75'));
const settings = flag('--in-flight', '8,16,32').split(',').map(Number);
const backends = flag('--backend', 'checking').split(',');
for (const b of backends) {
  if (b !== 'checking' && b !== 'latency-only') {
    console.error(`--backend ${b}: expected checking or latency-only`);
    process.exit(2);
  }
}
const [rowsFile] = args;
if (!rowsFile) {
  console.error('usage: node bench/bigquery.mjs ROWS.jsonl [--latency MS] [--in-flight N,N]');
  process.exit(2);
}

// The server, in its own process; it prints its URL and, for `--backend latency-only`, the URL of
// a second endpoint there; then it answers `count PREFIX DATASET TABLE` on stdin.
//
// The latency-only endpoint measures the sink alone. It forwards every request to the test server
// except insertAll, which it answers itself 75 ms late without parsing the rows: it reads the body,
// refuses one over 10 MB or holding more than 500 rows (counted as `"insertId":` occurrences, one
// per row in the sink's requests) and counts the rows. The checking server parses and checks every
// row (as BigQuery does) in one thread, which is what bounds its figure on a 2-core machine.
const serverCode = `
  const http = await import('node:http');
  const { startBigQueryTestServer } = await import(${JSON.stringify(pathToFileURL(TEST_SERVER).href)});
  const server = await startBigQueryTestServer({ projectId: 'bench', latencyMs: ${latency}, requireAuth: false });
  const target = new URL(server.url);
  const counted = new Map(); // 'dataset table' -> rows and requests the latency-only endpoint took
  const NEEDLE = Buffer.from('"insertId":');
  const lean = http.createServer((req, res) => {
    const m = /\\/datasets\\/([^/]+)\\/tables\\/([^/]+)\\/insertAll/.exec(req.url ?? '');
    if (!m || req.method !== 'POST') {
      const fwd = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      req.pipe(fwd);
      return;
    }
    const parts = [];
    let size = 0;
    req.on('data', (c) => { parts.push(c); size += c.length; });
    req.on('end', () => {
      const body = Buffer.concat(parts);
      let rows = 0;
      for (let i = body.indexOf(NEEDLE); i !== -1; i = body.indexOf(NEEDLE, i + NEEDLE.length)) rows++;
      const refuse = size > 10 * 1024 * 1024 || rows > 500 || rows === 0;
      setTimeout(() => {
        if (refuse) {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 400, message: 'request of ' + size + ' bytes and ' + rows + ' rows', errors: [{ reason: 'invalid' }] } }));
          return;
        }
        const key = m[1] + ' ' + m[2];
        const c = counted.get(key) ?? { rows: 0, requests: 0 };
        c.rows += rows;
        c.requests++;
        counted.set(key, c);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"kind":"bigquery#tableDataInsertAllResponse"}');
      }, ${latency});
    });
  });
  await new Promise((resolve) => lean.listen(0, '127.0.0.1', resolve));
  process.stdout.write(server.url + '\\n' + 'http://127.0.0.1:' + lean.address().port + '\\n');
  const { createInterface } = await import('node:readline');
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, dataset, table] = line.split(' ');
    if (cmd === 'count') {
      const stored = server.state.table(dataset, table) ? server.state.rows(dataset, table).length : 0;
      const c = counted.get(dataset + ' ' + table) ?? { rows: 0, requests: 0 };
      const checked = server.state.requests.filter((r) => r.route === 'tabledata.insertAll' && r.path.includes('/datasets/' + dataset + '/tables/' + table + '/')).length;
      const cpu = process.cpuUsage();
      process.stdout.write(JSON.stringify({ rows: stored + c.rows, requests: checked + c.requests, cpuSeconds: (cpu.user + cpu.system) / 1e6 }) + '\\n');
    }
  }
`;
const server = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', serverCode], {
  cwd: ROOT, // where `--import tsx` is resolved
  stdio: ['pipe', 'pipe', 'inherit'],
});
const answers = createInterface({ input: server.stdout })[Symbol.asyncIterator]();
const checkingUrl = (await answers.next()).value;
const latencyOnlyUrl = (await answers.next()).value;
const ask = async (line) => {
  server.stdin.write(`${line}\n`);
  return JSON.parse((await answers.next()).value);
};

// The rows, grouped by entry as the pipeline hands them to a sink.
const entries = [];
let archiveUrl = null;
let datatype = null;
let experiment = null;
for await (const line of createInterface({ input: createReadStream(rowsFile) })) {
  if (!line) continue;
  const row = JSON.parse(line); // only to read the provenance; the text is what is sent
  if (archiveUrl === null) {
    // The table comes from the first row's archive path: .../<experiment>/<datatype>/YYYY/MM/DD/<name>.
    archiveUrl = row.parser.ArchiveURL;
    const m = /\/([^/]+)\/([^/]+)\/\d{4}\/\d{2}\/\d{2}\/[^/]+$/.exec(archiveUrl);
    experiment = m?.[1] ?? 'bench';
    datatype = m?.[2] ?? path.basename(rowsFile, '.jsonl');
  }
  const last = entries.at(-1);
  if (last && last.entry === row.parser.Filename) last.json.push(line);
  else entries.push({ entry: row.parser.Filename, time: row.parser.Time, json: [line] });
}
const total = entries.reduce((n, e) => n + e.json.length, 0);
const bytes = entries.reduce((n, e) => n + e.json.reduce((m, j) => m + Buffer.byteLength(j), 0), 0);

const schemas = SchemaSet.load();
const results = [];
for (const [backend, maxInFlight] of backends.flatMap((b) => settings.map((n) => [b, n]))) {
  const prefix = `${backend === 'checking' ? 'c' : 'l'}${maxInFlight}_`;
  const sink = await BigQuerySink.open({
    projectId: 'bench',
    datasetPrefix: prefix,
    apiEndpoint: backend === 'checking' ? checkingUrl : latencyOnlyUrl,
    authClient: dummyAuthClient(),
    schemas,
    maxInFlight,
  });
  const ref = { dataset: `raw_${experiment}`, table: datatype, viewDataset: experiment };
  await sink.prepareTable(ref);
  const before = await ask(`count ${prefix}raw_${experiment} ${datatype}`);
  // Batches of at most 500 rows of one entry, with their keys, as the pipeline hands them over;
  // made before the clock starts, since making them is the pipeline's work, not the sink's.
  const batches = [];
  for (const e of entries) {
    for (let i = 0; i < e.json.length; i += 500) {
      const json = e.json.slice(i, i + 500);
      const indices = json.map((_, k) => i + k);
      batches.push({
        ...jsonlBytes(json),
        indices,
        keys: indices.map((k) => rowKey(archiveUrl, null, e.entry, k)),
        archiveUrl,
        entry: e.entry,
        time: e.time,
      });
    }
  }
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  for (const batch of batches) await sink.writeRows(ref, batch);
  const committed = await sink.commitArchive({
    archive_url: archiveUrl,
    datatype,
    status: 'ok',
    entries_seen: entries.length,
    directories: 0,
    entries_parsed: entries.length,
    entries_skipped: 0,
    entries_failed: 0,
    rows_written: total,
    rows_rejected: 0,
    records_skipped: 0,
    parser_version: 'bench',
    started: new Date().toISOString(),
    finished: new Date().toISOString(),
  });
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const after = await ask(`count ${prefix}raw_${experiment} ${datatype}`);
  await sink.close();
  const stored = after.rows - before.rows;
  const requests = after.requests - before.requests;
  results.push({
    backend,
    maxInFlight,
    latencyMs: latency,
    rows: total,
    rowBytes: bytes,
    stored,
    rejected: committed.record.rows_rejected,
    seconds,
    rowsPerSecond: total / seconds,
    mbPerSecond: bytes / 1e6 / seconds,
    // Share of the time this process (the sink) was on a CPU: well below 100%, it waited for the server.
    sinkCpuShare: (cpu.user + cpu.system) / 1e6 / seconds,
    // Likewise the server's process (both endpoints live there): near 100%, it was the bound.
    serverCpuShare: (after.cpuSeconds - before.cpuSeconds) / seconds,
    insertAllRequests: requests,
    rowsPerRequest: stored / Math.max(1, requests),
  });
}
server.kill();
await once(server, 'exit');
for (const r of results) console.log(JSON.stringify(r));
