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
import {
  closeSync,
  createWriteStream,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  type WriteStream,
} from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import path from 'node:path';
import { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { EtlError, storageError } from '../../errors.js';
import { scratchSubdir, trackTemporary } from '../../scratch.js';
import type { ArchiveRecord, RejectRecord } from '../../ledger/records.js';
import { stringifyBigQuery } from '../../json/lossless-json.js';
import { duckdbType, quoteIdent, type SchemaSet } from '../../schema/schema-set.js';
import { planView } from '../../schema/views.js';
import { jsonlBytes, type RowBatch } from '../../rows/row-batch.js';
import type { CommitResult, Sink } from '../sink.js';
import type { TableRef } from '../../schema/tables.js';
import { DEFAULT_DUCKDB_MEMORY } from '../defaults.js';

/** read_json's maximum_object_size (it sizes its buffer by it): enough for any row BigQuery takes (10 MB). */
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

/**
 * A path as DuckDB's file-reading functions take it literally rather than as a pattern ([, * and ?
 * bracketed), so a directory named `a*` never reads `ab`'s files too.
 */
function literalPath(p: string): string {
  return p.replace(/[[*?]/g, (c) => `[${c}]`);
}

/** Flushes a file or directory to disk. */
function fsyncPath(p: string): void {
  const fd = openSync(p, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
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
  /** Rows in the files. */
  rows: number;
}

export interface DuckDbSinkOptions {
  /** DuckDB's memory_limit, e.g. '512MB'. */
  memoryLimit?: string;
  threads?: number;
  /** Rows gathered into one Parquet file (FILE_BYTES unless a test wants many files). */
  fileBytes?: number;
}

export class DuckDbSink implements Sink {
  readonly description: string;
  /** Where the rows' Parquet files are, one directory per table. */
  readonly dataDir: string;
  private readonly tmp = scratchSubdir('duckdb-');
  /**
   * What each archive has buffered, by archive then target: an archive's commit (or failure)
   * concerns its own rows, rejects and record only, whatever else is being processed.
   */
  private readonly pending = new Map<string, Map<string, Pending>>();
  private readonly prepared = new Map<string, Promise<void>>();
  /**
   * Rows of each archive in Parquet files already written (a 64 MiB flush): with those of its
   * commit, what its ledger record counts. A flush that failed lost its rows, and they are not counted.
   */
  private readonly stored = new Map<string, number>();
  /** Names this process's Parquet files, apart from other processes' and runs'. */
  private readonly run = `${Date.now().toString(36)}-${randomUUID().slice(0, 8)}`;
  private seq = 0;
  /** Statements run one at a time: archives processed concurrently share the connection. */
  private lock: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    private readonly schemas: SchemaSet,
    private readonly fileBytes: number,
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
    let sink: DuckDbSink | null = null;
    try {
      const conn = await instance.connect();
      sink = new DuckDbSink(file, instance, conn, schemas, options.fileBytes ?? FILE_BYTES);
      sink.removePartials();
      await sink.refuseOldLayout();
      await sink.createTable('main', '_rejects', '_rejects');
      await sink.createTable('main', '_archives', '_archives');
      return sink;
    } catch (err) {
      if (sink) await sink.close();
      else instance.closeSync();
      throw err instanceof EtlError
        ? err
        : new EtlError('sink_error', `${file}: ${(err as Error).message}`, { stage: 'sink', cause: err });
    }
  }

  /**
   * Parquet files a killed process was writing (`*.partial`): only one process can have the
   * database open for writing, so any found now belong to a process that is gone.
   */
  private removePartials(): void {
    if (!existsSync(this.dataDir)) return;
    for (const entry of readdirSync(this.dataDir, { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith('.partial'))
        rmSync(path.join(entry.parentPath, entry.name), { force: true });
    }
  }

  /** A file written by the earlier version holds rows in raw_* tables: refused before anything is written. */
  private async refuseOldLayout(): Promise<void> {
    const r = await this.conn.runAndReadAll(
      "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND starts_with(table_schema, 'raw_') ORDER BY 1",
    );
    const tables = r.getRows().map((row) => String(row[0]));
    if (tables.length > 0) {
      throw new EtlError(
        'sink_error',
        `${this.file}: ${tables.join(', ')} ${tables.length === 1 ? 'is a table' : 'are tables'} in this file, written by an earlier version that kept rows in the database; parse into a new file`,
        { stage: 'sink' },
      );
    }
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
    const columns = fields.map((f) => quoteIdent(f.name)).join(', ');
    await this.conn.run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(ref.dataset)}`);
    await this.conn.run(
      `CREATE OR REPLACE VIEW ${quoteIdent(ref.dataset)}.${quoteIdent(ref.table)} AS SELECT ${columns} FROM read_parquet(${sqlString(`${literalPath(dir)}/*.parquet`)}, union_by_name = true)`,
    );
  }

  /**
   * Writes a query's result to a Parquet file: under a temporary name of its own, flushed to disk,
   * then renamed (and the directory flushed), so a query never sees half a file and a ledger
   * record written afterwards never outlives the rows it counts.
   */
  private async copyToParquet(select: string, file: string): Promise<void> {
    const partial = `${file}.${randomUUID()}.partial`;
    const untrack = trackTemporary(partial);
    try {
      await this.conn.run(
        `COPY (${select}) TO ${sqlString(partial)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP_ROWS}, ROW_GROUP_SIZE_BYTES '${ROW_GROUP_BYTES}')`,
      );
      fsyncPath(partial);
      renameSync(partial, file);
      fsyncPath(path.dirname(file));
    } finally {
      rmSync(partial, { force: true });
      untrack();
    }
  }

  prepareTable(ref: TableRef): Promise<void> {
    const key = `${ref.dataset}.${ref.table}`;
    let ready = this.prepared.get(key);
    if (!ready) {
      // Once per table, whoever asks first; the others wait for the same preparation.
      ready = this.exclusive(() => this.prepareNow(ref, new Set()));
      this.prepared.set(key, ready);
      ready.catch(() => this.prepared.delete(key));
    }
    return ready;
  }

  /** Creates the table's files and views; runs inside exclusive(), so never through prepareTable. */
  private async prepareNow(ref: TableRef, done: Set<string>): Promise<void> {
    const key = `${ref.dataset}.${ref.table}`;
    if (done.has(key)) return;
    done.add(key);
    try {
      await this.createParquetTable(ref);
      const plan = planView(ref, this.schemas);
      for (const need of plan.needs) await this.prepareNow(need, done);
      await this.conn.run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(ref.viewDataset)}`);
      const sql = plan.sql('duckdb', (d, t) => `${quoteIdent(d)}.${quoteIdent(t)}`);
      await this.conn.run(`CREATE OR REPLACE VIEW ${quoteIdent(ref.viewDataset)}.${quoteIdent(ref.table)} AS ${sql}`);
    } catch (err) {
      throw new EtlError('sink_error', `${this.description}: cannot create ${key}: ${(err as Error).message}`, {
        stage: 'sink',
        cause: err,
      });
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private newPiece(): { file: string; stream: WriteStream } {
    const file = path.join(this.tmp, `${++this.seq}.jsonl`);
    const stream = createWriteStream(file, { highWaterMark: 1024 * 1024 });
    // Errors surface where the stream is waited on (drain, finished); this keeps them from being uncaught.
    stream.on('error', () => undefined);
    return { file, stream };
  }

  private pendingOf(archive: string): Map<string, Pending> {
    let m = this.pending.get(archive);
    if (!m) {
      m = new Map();
      this.pending.set(archive, m);
    }
    return m;
  }

  private async appendBytes(
    archive: string,
    kind: Pending['kind'],
    target: string,
    schema: string,
    text: Buffer,
    rows: number,
  ): Promise<void> {
    const buffered = this.pendingOf(archive);
    let p = buffered.get(target);
    if (!p) {
      const { file, stream } = this.newPiece();
      p = { kind, target, schema, files: [file], stream, bytes: 0, pieceBytes: 0, rows: 0 };
      buffered.set(target, p);
    }
    // Backpressure only: the load that follows ends the streams and waits for every write.
    if (!p.stream.write(text)) await once(p.stream, 'drain');
    p.bytes += text.length;
    p.pieceBytes += text.length;
    p.rows += rows;
    if (kind !== 'parquet' || buffered.get(target) !== p) return;
    if (p.bytes >= this.fileBytes) {
      buffered.delete(target);
      await this.exclusive(() => this.load([p]));
      this.stored.set(archive, (this.stored.get(archive) ?? 0) + p.rows);
    } else if (p.pieceBytes >= PIECE_BYTES) {
      // The next piece takes the writes at once; the full one is closed behind it.
      const full = p.stream;
      const next = this.newPiece();
      p.files.push(next.file);
      p.stream = next.stream;
      p.pieceBytes = 0;
      full.end();
      await finished(full);
    }
  }

  /** Takes what an archive has buffered out of `pending`. */
  private takePending(archive: string): Pending[] {
    const mine = [...(this.pending.get(archive)?.values() ?? [])];
    this.pending.delete(archive);
    return mine;
  }

  /** Drops buffered files, stored or not. */
  private discard(batch: Pending[]): void {
    for (const p of batch) {
      p.stream.destroy();
      for (const f of p.files) rmSync(f, { force: true });
    }
  }

  /** Stores buffered files (the caller has taken them out of `pending`); the files go, stored or not. */
  private async load(batch: Pending[]): Promise<void> {
    try {
      for (const p of batch) {
        p.stream.end();
        await finished(p.stream);
        const rows = `SELECT * FROM read_json([${p.files.map((f) => sqlString(literalPath(f))).join(', ')}], format = 'newline_delimited', maximum_object_size = ${MAX_ROW_TEXT}, columns = {${this.readJsonColumns(p.schema)}})`;
        if (p.kind === 'parquet') {
          await this.copyToParquet(rows, path.join(p.target, `1-${this.run}-${++this.seq}.parquet`));
        } else {
          await this.conn.run(`INSERT INTO ${p.target} BY NAME ${rows}`);
        }
      }
    } finally {
      this.discard(batch);
    }
  }

  async writeRows(ref: TableRef, batch: RowBatch): Promise<void> {
    if (batch.ends.length === 0) return;
    try {
      await this.appendBytes(batch.archiveUrl, 'parquet', this.tableDir(ref), ref.table, batch.text, batch.ends.length);
    } catch (err) {
      throw storageError(err, this.description);
    }
  }

  async writeRejects(rejects: RejectRecord[]): Promise<void> {
    try {
      const byArchive = new Map<string, RejectRecord[]>();
      for (const r of rejects) {
        const list = byArchive.get(r.archive_url);
        if (list) list.push(r);
        else byArchive.set(r.archive_url, [r]);
      }
      for (const [archive, list] of byArchive) await this.appendTable(archive, '_rejects', list);
    } catch (err) {
      throw storageError(err, this.description);
    }
  }

  /** Buffers records of a ledger table (`_rejects`, `_archives`) for an archive's commit. */
  private appendTable(archive: string, table: '_rejects' | '_archives', records: unknown[]): Promise<void> {
    const { text } = jsonlBytes(records.map((r) => stringifyBigQuery(r)));
    return this.appendBytes(archive, 'table', `main.${quoteIdent(table)}`, table, text, records.length);
  }

  async commitArchive(record: ArchiveRecord): Promise<CommitResult> {
    // This archive's rows (their Parquet files first), then its rejects and ledger record in one
    // transaction. Nothing of another archive's is stored or lost here.
    let mine: Pending[] = [];
    const archive = record.archive_url;
    try {
      mine = this.takePending(archive);
      let rows = mine.filter((p) => p.kind === 'parquet');
      if (record.status === 'failed') {
        // A failed archive is processed again: what it still buffers is dropped, not stored, so
        // its (small) record can be written even when the failure was a full disk.
        this.discard(rows);
        rows = [];
      }
      // The record counts what is stored: rows a failed flush lost, or a failed archive dropped, are not among them.
      record.rows_written = (this.stored.get(archive) ?? 0) + rows.reduce((n, p) => n + p.rows, 0);
      this.stored.delete(archive);
      await this.appendTable(archive, '_archives', [record]);
      mine.push(...this.takePending(archive));
      await this.exclusive(async () => {
        await this.load(rows);
        await this.conn.run('BEGIN TRANSACTION');
        try {
          await this.load(mine.filter((p) => p.kind === 'table'));
          await this.conn.run('COMMIT');
        } catch (err) {
          // DuckDB may already have aborted the transaction: the original error is what matters.
          await this.conn.run('ROLLBACK').catch(() => undefined);
          throw err;
        }
      });
    } catch (err) {
      // Whatever was not stored goes: the archive is processed again.
      this.discard([...mine, ...this.takePending(archive)]);
      throw storageError(err, `${this.description}: commit failed`);
    }
    return { record, rejected: {} };
  }

  async close(): Promise<void> {
    for (const archive of [...this.pending.keys()]) this.discard(this.takePending(archive));
    this.conn.closeSync();
    this.instance.closeSync();
    rmSync(this.tmp, { recursive: true, force: true });
  }
}
