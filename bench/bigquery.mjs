// The BigQuery sink against the BigQuery test server answering every insertAll 75 ms late (the
// median latency reported for the real service): can one process keep up?
//
//   node bench/bigquery.mjs ROWS.jsonl [--latency 75] [--in-flight 8,16,32] [--dist DIR]
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
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args.splice(i, 2)[1];
};
// The compiled code to measure: this checkout's unless --dist names another build.
const DIST = path.resolve(flag('--dist', path.join(ROOT, 'dist')));
const dist = (p) => import(path.join(DIST, p));
const { BigQuerySink } = await dist('src/sinks/bigquery-sink.js');
const { SchemaSet } = await dist('src/schema.js');
const { rowKey } = await dist('src/rows.js');
const { jsonlBytes } = await dist('src/sinks/sink.js');
const { dummyAuthClient } = await dist('src/testing/helpers.js');

const latency = Number(flag('--latency', '75'));
const settings = flag('--in-flight', '8,16,32').split(',').map(Number);
const [rowsFile] = args;
if (!rowsFile) {
  console.error('usage: node bench/bigquery.mjs ROWS.jsonl [--latency MS] [--in-flight N,N]');
  process.exit(2);
}

// The server, in its own process; it prints its URL, then answers `count PREFIX` on stdin.
const serverCode = `
  const { startBigQueryTestServer } = await import(${JSON.stringify(path.join(DIST, 'src/testing/bigquery-test-server.js'))});
  const server = await startBigQueryTestServer({ projectId: 'bench', latencyMs: ${latency}, requireAuth: false });
  process.stdout.write(server.url + '\\n');
  const { createInterface } = await import('node:readline');
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, dataset, table] = line.split(' ');
    if (cmd === 'count') {
      const n = server.state.table(dataset, table) ? server.state.rows(dataset, table).length : 0;
      process.stdout.write(JSON.stringify({ rows: n, requests: server.state.requests.filter((r) => r.route === 'tabledata.insertAll').length }) + '\\n');
    }
  }
`;
const server = spawn(process.execPath, ['--input-type=module', '-e', serverCode], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const answers = createInterface({ input: server.stdout })[Symbol.asyncIterator]();
const url = (await answers.next()).value;
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
for (const maxInFlight of settings) {
  const prefix = `b${maxInFlight}_`;
  const sink = await BigQuerySink.open({
    projectId: 'bench',
    datasetPrefix: prefix,
    apiEndpoint: url,
    authClient: dummyAuthClient(),
    schemas,
    maxInFlight,
  });
  const ref = { dataset: `raw_${experiment}`, table: datatype, viewDataset: experiment };
  await sink.prepareTable(ref);
  const before = await ask(`count ${prefix}raw_${experiment} ${datatype}`);
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  for (const e of entries) {
    // In batches of at most 500 rows, as the pipeline hands them over.
    for (let i = 0; i < e.json.length; i += 500) {
      const json = e.json.slice(i, i + 500);
      const indices = json.map((_, k) => i + k);
      await sink.writeRows(ref, {
        ...jsonlBytes(json),
        indices,
        keys: indices.map((k) => rowKey(archiveUrl, null, e.entry, k)),
        archiveUrl,
        entry: e.entry,
        time: e.time,
      });
    }
  }
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
    insertAllRequests: requests,
    rowsPerRequest: stored / Math.max(1, requests - 1), // one request holds the ledger record
  });
}
server.kill();
await once(server, 'exit');
for (const r of results) console.log(JSON.stringify(r));
