import { DuckDBInstance } from '@duckdb/node-api';
import { SchemaSet, duckdbType, quoteIdent } from '/work/main/dist/src/schema.js';
import { readdirSync, rmSync } from 'node:fs';
const [prefix, table, mem, every, ckpt] = process.argv.slice(2);
const schemas = SchemaSet.load();
const fields = schemas.fields(table);
rmSync('/tmp/probe.duckdb', { force: true }); rmSync('/tmp/probe.duckdb.wal', { force: true });
const cfg = { memory_limit: mem, threads: '1', preserve_insertion_order: 'false' };
let inst = await DuckDBInstance.create('/tmp/probe.duckdb', cfg);
let conn = await inst.connect();
await conn.run(`CREATE TABLE t (${fields.map((f) => `${quoteIdent(f.name)} ${duckdbType(f)}`).join(', ')})`);
const cols = fields.map((f) => `'${f.name}': '${duckdbType(f).replace(/'/g, "''")}'`).join(', ');
const rss = () => Math.round(process.memoryUsage().rss / 1048576);
const trace = [];
let n = 0; const t0 = performance.now();
for (const f of readdirSync('/tmp/chunks').filter((x) => x.startsWith(prefix)).sort()) {
  await conn.run(`INSERT INTO t SELECT * FROM read_json('/tmp/chunks/${f}', format='newline_delimited', maximum_object_size=16777216, columns={${cols}})`);
  if (ckpt === 'ckpt') await conn.run('CHECKPOINT');
  trace.push(rss());
  if (++n % Number(every) === 0) { conn.closeSync(); inst.closeSync(); inst = await DuckDBInstance.create('/tmp/probe.duckdb', cfg); conn = await inst.connect(); trace.push('r' + rss()); }
}
const r = await conn.runAndReadAll('SELECT count(*) FROM t'); 
console.log(JSON.stringify({ every, ckpt, trace, rows: String(r.getRows()[0][0]), s: ((performance.now()-t0)/1000).toFixed(2) }));
conn.closeSync(); inst.closeSync();
