/**
 * DuckDB sink, the embedded default. The database file holds the views analysts query and the
 * `_rejects` and `_archives` tables; the rows themselves are Parquet files in a directory beside
 * it (`mlab-etl.duckdb` -> `mlab-etl.data/raw_<experiment>/<datatype>/*.parquet`), read through
 * the views `raw_<experiment>.<datatype>` (every row) and `<experiment>.<datatype>` (one row per
 * (id, date)). Column types come from the JSON Schema (STRUCT, LIST, exact integer types).
 *
 * Why Parquet and not DuckDB tables: loading rows into a table and checkpointing it takes memory
 * that grows with the table's width and size (hundreds of MiB on a 500 MB archive, and a
 * checkpoint of the ndt7 table fails with memory_limit 256MB, which invalidates the database).
 * Writing each load to its own Parquet file keeps DuckDB's memory flat whatever the archive
 * (docs/benchmarks.md). The files are also what other tools read.
 *
 * Rows are serialised as JSONL to temporary files while the archive streams; every 64 MiB, and
 * when the archive commits, those become a Parquet file (written under a temporary name and
 * renamed, so a query never sees half a file). Then the archive's rejects and ledger record are
 * stored in one transaction: rows are durable before the record that says so, as in every sink.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, renameSync, rmSync, existsSync, type WriteStream } from 'node:fs';
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
 * DuckDB's own memory limit (MLAB_ETL_DUCKDB_MEMORY_LIMIT changes it). Rows go to Parquet files a
 * load at a time; only the small ledger tables are DuckDB tables.
 */
export const DEFAULT_DUCKDB_MEMORY = '256MB';
/**
 * Largest row text read_json accepts (it buffers twice this): 10 MiB holds any row BigQuery takes
 * (10 MB). A larger row makes the archive's commit fail with sink_error.
 */
const MAX_ROW_TEXT = 10 * 1024 * 1024;
/**
 * Rows are buffered on disk in JSONL pieces of PIECE_BYTES, and FILE_BYTES of them become one
 * Parquet file, so that a table is not thousands of small files. DuckDB parses a piece at a time,
 * outside its memory_limit, and its Parquet writer holds a row group: those two set the peak.
 * Measured on the 50 MB bench archives with a file per piece, five runs each: 225-259 MiB peak
 * with 4 MiB pieces, 210-219 MiB with 2 MiB (switch). Row groups of 2,048 rows held 236 MiB on ndt7
 * (26 KB rows); bounded to 8 MB as well, 174 MiB.
 */
const PIECE_BYTES = 2 * 1024 * 1024;
const FILE_BYTES = 64 * 1024 * 1024;
const ROW_GROUP_ROWS = 2048;
const ROW_GROUP_BYTES = '8MB';

function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Where a DuckDB file's Parquet files live: `x.duckdb` -> `x.data`, beside it. */
export function dataDirOf(file: string): string {
  const ext = path.extname(file);
  return path.resolve(`${ext ? file.slice(0, -ext.length) : file}.data`);
}

interface Pending {
  /** A directory of Parquet files (data tables), or a qualified, quoted DuckDB table (ledger). */
  kind: 'parquet' | 'table';
  target: string;
  schema: string; // schema name for the column types
  /** JSONL files of rows, the last one being written by `stream`. */
  files: string[];
  stream: WriteStream;
  /** Bytes in all the files, and in the last one. */
  bytes: number;
  pieceBytes: number;
}

export interface DuckDbSinkOptions {
  /** DuckDB's memory_limit, e.g. '512MB'. */
  memoryLimit?: string;
  threads?: number;
}

export class DuckDbSink implements Sink {
  readonly description: string;
  /** Where the rows' Parquet files are, one directory per table. */
  readonly dataDir: string;
  private readonly tmp = mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-duckdb-'));
  private readonly pending = new Map<string, Pending>();
  private readonly prepared = new Set<string>();
  /** Names this process's Parquet files, apart from other processes' and runs'. */
  private readonly run = `${Date.now().toString(36)}-${randomUUID().slice(0, 8)}`;
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
    this.dataDir = dataDirOf(file);
  }

  static async open(file: string, schemas: SchemaSet, options: DuckDbSinkOptions = {}): Promise<DuckDbSink> {
    // DuckDB's defaults (80% of RAM, all cores) suit analytics, not a loader running beside the
    // parser: bounded memory keeps the whole process flat, and insertion order is not needed.
    const config: Record<string, string> = {
      memory_limit: options.memoryLimit ?? DEFAULT_DUCKDB_MEMORY,
      threads: String(options.threads ?? 1),
      preserve_insertion_order: 'false',
      // DuckDB's allocator keeps freed memory for reuse unless told to return it at once. Measured
      // peak RSS of `parse` on the 50 MB bench archives, when rows went to DuckDB tables:
      // 443 -> 338 MiB (switch), 537 -> 403 MiB (ndt7), for 3-10% more time.
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

  /** read_json's `columns` argument: the schema's columns and their DuckDB types. */
  private readJsonColumns(schema: string): string {
    return this.schemas
      .fields(schema)
      .map((f) => `${sqlString(f.name)}: ${sqlString(duckdbType(f))}`)
      .join(', ');
  }

  private async createTable(dataset: string, table: string, schema: string): Promise<void> {
    await this.conn.run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(dataset)}`);
    await this.conn.run(
      `CREATE TABLE IF NOT EXISTS ${quoteIdent(dataset)}.${quoteIdent(table)} (${this.columnsSql(schema)})`,
    );
  }

  private tableDir(ref: Pick<TableRef, 'dataset' | 'table'>): string {
    return path.join(this.dataDir, ref.dataset, ref.table);
  }

  /**
   * The table's directory with a Parquet file of no rows carrying the schema's columns and types,
   * so the view has every column before any row is written (one such file per schema version:
   * files written under an older schema lack the newer columns, which read as NULL).
   */
  private async createParquetTable(ref: TableRef): Promise<void> {
    const dir = this.tableDir(ref);
    mkdirSync(dir, { recursive: true });
    const fields = this.schemas.fields(ref.table);
    const version = createHash('sha256').update(this.columnsSql(ref.table)).digest('hex').slice(0, 12);
    const schemaFile = path.join(dir, `0-schema-${version}.parquet`);
    if (!existsSync(schemaFile)) {
      const nulls = fields.map((f) => `CAST(NULL AS ${duckdbType(f)}) AS ${quoteIdent(f.name)}`).join(', ');
      await this.copyToParquet(`SELECT ${nulls} LIMIT 0`, schemaFile);
    }
    const existing = await this.conn.runAndReadAll(
      `SELECT table_type FROM information_schema.tables WHERE table_schema = ${sqlString(ref.dataset)} AND table_name = ${sqlString(ref.table)}`,
    );
    if (existing.getRows()[0]?.[0] === 'BASE TABLE') {
      throw new Error(
        `${ref.dataset}.${ref.table} is a table in this file, written by an earlier version that kept rows in the database; parse into a new file`,
      );
    }
    const columns = fields.map((f) => quoteIdent(f.name)).join(', ');
    await this.conn.run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(ref.dataset)}`);
    await this.conn.run(
      `CREATE OR REPLACE VIEW ${quoteIdent(ref.dataset)}.${quoteIdent(ref.table)} AS SELECT ${columns} FROM read_parquet(${sqlString(path.join(dir, '*.parquet'))}, union_by_name = true)`,
    );
  }

  /** Writes a query's result to a Parquet file, under a temporary name until it is complete. */
  private async copyToParquet(select: string, file: string): Promise<void> {
    const partial = `${file}.partial`;
    try {
      await this.conn.run(
        `COPY (${select}) TO ${sqlString(partial)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP_ROWS}, ROW_GROUP_SIZE_BYTES '${ROW_GROUP_BYTES}')`,
      );
      renameSync(partial, file);
    } finally {
      rmSync(partial, { force: true });
    }
  }

  async prepareTable(ref: TableRef): Promise<void> {
    const key = `${ref.dataset}.${ref.table}`;
    if (this.prepared.has(key)) return;
    try {
      await this.createParquetTable(ref);
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
    const { text } = jsonlBytes(values.map((v) => stringifyBigQuery(v)));
    return this.appendBytes('table', target, schema, text, values.length);
  }

  private newPiece(): { file: string; stream: WriteStream } {
    const file = path.join(this.tmp, `${++this.seq}.jsonl`);
    const stream = createWriteStream(file, { highWaterMark: 1024 * 1024 });
    // Errors surface where the stream is waited on (drain, finished); this keeps them from being uncaught.
    stream.on('error', () => undefined);
    return { file, stream };
  }

  private async appendBytes(
    kind: Pending['kind'],
    target: string,
    schema: string,
    text: Buffer,
    rows: number,
  ): Promise<void> {
    if (rows === 0) return;
    let p = this.pending.get(target);
    if (!p) {
      const { file, stream } = this.newPiece();
      p = { kind, target, schema, files: [file], stream, bytes: 0, pieceBytes: 0 };
      this.pending.set(target, p);
    }
    // Backpressure only: the load that follows ends the streams and waits for every write.
    if (!p.stream.write(text)) await once(p.stream, 'drain');
    p.bytes += text.length;
    p.pieceBytes += text.length;
    if (kind !== 'parquet' || this.pending.get(target) !== p) return;
    if (p.bytes >= FILE_BYTES) {
      this.pending.delete(target);
      await this.exclusive(() => this.load([p]));
    } else if (p.pieceBytes >= PIECE_BYTES) {
      p.stream.end();
      await finished(p.stream);
      const next = this.newPiece();
      p.files.push(next.file);
      p.stream = next.stream;
      p.pieceBytes = 0;
    }
  }

  /** Stores the buffered files (the caller has taken them out of `pending`). */
  private async load(batch: Pending[]): Promise<void> {
    for (const p of batch) {
      p.stream.end();
      await finished(p.stream);
      const rows = `SELECT * FROM read_json([${p.files.map(sqlString).join(', ')}], format = 'newline_delimited', maximum_object_size = ${MAX_ROW_TEXT}, columns = {${this.readJsonColumns(p.schema)}})`;
      if (p.kind === 'parquet') {
        await this.copyToParquet(rows, path.join(p.target, `1-${this.run}-${++this.seq}.parquet`));
      } else {
        await this.conn.run(`INSERT INTO ${p.target} BY NAME ${rows}`);
      }
      for (const f of p.files) rmSync(f, { force: true });
    }
  }

  async writeRows(ref: TableRef, batch: RowBatch): Promise<void> {
    try {
      await this.appendBytes('parquet', this.tableDir(ref), ref.table, batch.text, batch.ends.length);
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
      // real rows, durable a little early): the rows' Parquet files first, then the rejects and
      // the ledger record in one transaction.
      await this.append('main."_archives"', '_archives', [record]);
      const all = [...this.pending.values()];
      this.pending.clear();
      await this.exclusive(async () => {
        await this.load(all.filter((p) => p.kind === 'parquet'));
        await this.conn.run('BEGIN TRANSACTION');
        try {
          await this.load(all.filter((p) => p.kind === 'table'));
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
