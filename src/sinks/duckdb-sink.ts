/**
 * DuckDB sink, the embedded default: tables `raw_<experiment>.<datatype>` typed from the JSON
 * Schema (STRUCT, LIST, exact integer types), views `<experiment>.<datatype>` with one row per
 * (id, date), and the `_rejects` and `_archives` tables.
 *
 * Rows are loaded in bulk: serialised as JSONL to a temporary file while the archive streams, then
 * inserted with `read_json` (typed by the schema) when the archive commits, together with its
 * rejects and ledger record in one transaction. Per-row inserts are an order of magnitude slower.
 */
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { EtlError } from '../errors.js';
import type { ArchiveRecord, RejectRecord } from '../ledger.js';
import { stringifyBigQuery } from '../lossless-json.js';
import { duckdbType, quoteIdent, type SchemaSet } from '../schema.js';
import { planView } from '../views.js';
import { jsonlBytes, type CommitResult, type RowBatch, type Sink, type TableRef } from './sink.js';

/**
 * DuckDB's own memory limit (MLAB_ETL_DUCKDB_MEMORY_LIMIT changes it). Below about 1 GB its automatic
 * checkpoint of these nested rows can run out of memory, which invalidates the database file's
 * instance (seen with 256 MB on a 500 MB ndt7 archive).
 */
export const DEFAULT_DUCKDB_MEMORY = '1GB';
/**
 * Largest row text read_json accepts (it buffers twice this). Above BigQuery's 10 MB row limit, so
 * rows BigQuery would take fit; a larger row makes the archive's commit fail with sink_error.
 */
const MAX_ROW_TEXT = 16 * 1024 * 1024;
/**
 * Bytes of rows buffered on disk before a load. Small loads keep DuckDB's working memory (it
 * reads the whole file of a load) bounded whatever the archive size.
 */
const LOAD_EVERY_BYTES = 16 * 1024 * 1024;

function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

interface Pending {
  target: string; // qualified, quoted table
  schema: string; // schema name for the column types
  file: string;
  stream: WriteStream;
  rows: number;
  bytes: number;
}

export interface DuckDbSinkOptions {
  /** DuckDB's memory_limit, e.g. '512MB'. */
  memoryLimit?: string;
  threads?: number;
}

export class DuckDbSink implements Sink {
  readonly description: string;
  private readonly tmp = mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-duckdb-'));
  private readonly pending = new Map<string, Pending>();
  private readonly prepared = new Set<string>();
  private seq = 0;
  /** Loads and commits run one at a time: archives processed concurrently share the connection. */
  private lock: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    private readonly schemas: SchemaSet,
  ) {
    this.description = `duckdb:${file}`;
  }

  static async open(file: string, schemas: SchemaSet, options: DuckDbSinkOptions = {}): Promise<DuckDbSink> {
    // DuckDB's defaults (80% of RAM, all cores) suit analytics, not a loader running beside the
    // parser: bounded memory keeps the whole process flat, and insertion order is not needed.
    const config: Record<string, string> = {
      memory_limit: options.memoryLimit ?? DEFAULT_DUCKDB_MEMORY,
      threads: String(options.threads ?? 1),
      preserve_insertion_order: 'false',
      // DuckDB's allocator keeps freed memory for reuse unless told to return it at once. Measured
      // peak RSS of \`parse\` on the 50 MB bench archives: 443 -> 338 MiB (switch), 537 -> 403 MiB
      // (ndt7), for 3-10% more time.
      allocator_flush_threshold: '0MB',
      allocator_bulk_deallocation_flush_threshold: '0MB',
    };
    let instance: DuckDBInstance;
    try {
      instance = await DuckDBInstance.create(file, config);
    } catch (err) {
      throw new EtlError('sink_error', `cannot open DuckDB file ${file}: ${(err as Error).message}`, {
        stage: 'sink',
        cause: err,
      });
    }
    const conn = await instance.connect();
    const sink = new DuckDbSink(file, instance, conn, schemas);
    await sink.createTable('main', '_rejects', '_rejects');
    await sink.createTable('main', '_archives', '_archives');
    return sink;
  }

  private columnsSql(schema: string): string {
    return this.schemas
      .fields(schema)
      .map((f) => `${quoteIdent(f.name)} ${duckdbType(f)}`)
      .join(', ');
  }

  private async createTable(dataset: string, table: string, schema: string): Promise<void> {
    await this.conn.run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(dataset)}`);
    await this.conn.run(
      `CREATE TABLE IF NOT EXISTS ${quoteIdent(dataset)}.${quoteIdent(table)} (${this.columnsSql(schema)})`,
    );
  }

  async prepareTable(ref: TableRef): Promise<void> {
    const key = `${ref.dataset}.${ref.table}`;
    if (this.prepared.has(key)) return;
    try {
      await this.createTable(ref.dataset, ref.table, ref.table);
      const plan = planView(ref, this.schemas);
      for (const need of plan.needs) await this.prepareTable(need);
      await this.conn.run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(ref.viewDataset)}`);
      const sql = plan.sql('duckdb', (d, t) => `${quoteIdent(d)}.${quoteIdent(t)}`);
      await this.conn.run(`CREATE OR REPLACE VIEW ${quoteIdent(ref.viewDataset)}.${quoteIdent(ref.table)} AS ${sql}`);
    } catch (err) {
      throw new EtlError('sink_error', `${this.description}: cannot create ${key}: ${(err as Error).message}`, {
        stage: 'sink',
        cause: err,
      });
    }
    this.prepared.add(key);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private append(target: string, schema: string, values: unknown[]): Promise<void> {
    return this.appendBytes(target, schema, jsonlBytes(values.map((v) => stringifyBigQuery(v))).text, values.length);
  }

  private async appendBytes(target: string, schema: string, text: Buffer, rows: number): Promise<void> {
    if (rows === 0) return;
    let p = this.pending.get(target);
    if (!p) {
      const file = path.join(this.tmp, `${++this.seq}.jsonl`);
      p = { target, schema, file, stream: createWriteStream(file, { highWaterMark: 1024 * 1024 }), rows: 0, bytes: 0 };
      // Errors surface where the stream is waited on (drain, finished); this keeps them from being uncaught.
      p.stream.on('error', () => undefined);
      this.pending.set(target, p);
    }
    // Backpressure only: the load that follows ends the stream and waits for every write.
    if (!p.stream.write(text)) await once(p.stream, 'drain');
    p.rows += rows;
    p.bytes += text.length;
    if (p.bytes >= LOAD_EVERY_BYTES && this.pending.get(target) === p) {
      this.pending.delete(target);
      await this.exclusive(() => this.load([p]));
    }
  }

  /** Inserts the buffered files into their tables (the caller has taken them out of `pending`). */
  private async load(batch: Pending[]): Promise<void> {
    for (const p of batch) {
      p.stream.end();
      await finished(p.stream);
      const columns = this.schemas
        .fields(p.schema)
        .map((f) => `${sqlString(f.name)}: ${sqlString(duckdbType(f))}`)
        .join(', ');
      await this.conn.run(
        `INSERT INTO ${p.target} BY NAME SELECT * FROM read_json(${sqlString(p.file)}, format = 'newline_delimited', maximum_object_size = ${MAX_ROW_TEXT}, columns = {${columns}})`,
      );
      rmSync(p.file, { force: true });
    }
  }

  async writeRows(ref: TableRef, batch: RowBatch): Promise<void> {
    try {
      await this.appendBytes(
        `${quoteIdent(ref.dataset)}.${quoteIdent(ref.table)}`,
        ref.table,
        batch.text,
        batch.ends.length,
      );
    } catch (err) {
      throw new EtlError('sink_error', `${this.description}: ${(err as Error).message}`, { stage: 'sink', cause: err });
    }
  }

  async writeRejects(rejects: RejectRecord[]): Promise<void> {
    try {
      await this.append('main."_rejects"', '_rejects', rejects);
    } catch (err) {
      throw new EtlError('sink_error', `${this.description}: ${(err as Error).message}`, { stage: 'sink', cause: err });
    }
  }

  async commitArchive(record: ArchiveRecord): Promise<CommitResult> {
    try {
      // Everything buffered so far (this archive's rows and rejects, perhaps others' too: they are
      // real rows, durable a little early), then the ledger record, in one transaction.
      await this.append('main."_archives"', '_archives', [record]);
      const batch = [...this.pending.values()];
      this.pending.clear();
      await this.exclusive(async () => {
        await this.conn.run('BEGIN TRANSACTION');
        try {
          await this.load(batch);
          await this.conn.run('COMMIT');
        } catch (err) {
          // DuckDB may already have aborted the transaction: the original error is what matters.
          await this.conn.run('ROLLBACK').catch(() => undefined);
          throw err;
        }
      });
    } catch (err) {
      throw new EtlError('sink_error', `${this.description}: commit failed: ${(err as Error).message}`, {
        stage: 'sink',
        cause: err,
        retryable: true,
      });
    }
    return { record, rejected: {} };
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) p.stream.destroy();
    this.pending.clear();
    this.conn.closeSync();
    this.instance.closeSync();
    rmSync(this.tmp, { recursive: true, force: true });
  }
}
