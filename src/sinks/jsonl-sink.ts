/**
 * JSONL directory sink: `DIR/raw_<experiment>/<datatype>.jsonl`, `DIR/_rejects.jsonl`,
 * `DIR/_archives.jsonl`, one row a line in BigQuery's JSON conventions (INT64 outside +/-2^53 as
 * decimal strings, TIMESTAMP as RFC 3339), ready for `bq load --source_format=NEWLINE_DELIMITED_JSON`.
 * Files are appended to; a reprocessed archive's rows appear again with a newer parser.Time.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { EtlError } from '../errors.js';
import type { ArchiveRecord, RejectRecord } from '../ledger/records.js';
import { stringifyBigQuery } from '../json/lossless-json.js';
import { jsonlBytes, type RowBatch } from '../rows/row-batch.js';
import type { CommitResult, Sink } from './sink.js';
import type { TableRef } from '../schema/tables.js';

export class JsonlSink implements Sink {
  readonly description: string;
  private readonly files = new Map<string, WriteStream>();
  private readonly failures = new Map<string, Error>();

  constructor(private readonly dir: string) {
    this.description = `jsonl:${dir}`;
  }

  private stream(relative: string): WriteStream {
    let s = this.files.get(relative);
    if (!s) {
      const file = path.join(this.dir, relative);
      mkdirSync(path.dirname(file), { recursive: true });
      s = createWriteStream(file, { flags: 'a', highWaterMark: 1024 * 1024 });
      s.on('error', (err) => this.failures.set(relative, err));
      this.files.set(relative, s);
    }
    return s;
  }

  private sinkError(relative: string, err: Error): EtlError {
    return new EtlError('sink_error', `${this.description}/${relative}: ${err.message}`, {
      stage: 'sink',
      cause: err,
      retryable: true,
    });
  }

  private append(relative: string, values: unknown[]): Promise<void> {
    return this.appendBytes(relative, jsonlBytes(values.map((v) => stringifyBigQuery(v))).text);
  }

  /** Writes without waiting for each write: only the stream's buffer limit slows the parser. */
  private async appendBytes(relative: string, text: Buffer): Promise<void> {
    if (text.length === 0) return;
    const s = this.stream(relative);
    const failed = this.failures.get(relative);
    if (failed) throw this.sinkError(relative, failed);
    if (!s.write(text)) await once(s, 'drain');
  }

  /** Resolves once every write so far has reached the OS; rejects with the first write error. */
  private async flush(): Promise<void> {
    await Promise.all(
      [...this.files.entries()].map(
        ([relative, s]) =>
          new Promise<void>((resolve, reject) =>
            s.write('', (err) => (err ? reject(this.sinkError(relative, err)) : resolve())),
          ),
      ),
    );
    for (const [relative, err] of this.failures) throw this.sinkError(relative, err);
  }

  async prepareTable(ref: TableRef): Promise<void> {
    this.stream(path.join(ref.dataset, `${ref.table}.jsonl`));
  }

  writeRows(ref: TableRef, batch: RowBatch): Promise<void> {
    return this.appendBytes(path.join(ref.dataset, `${ref.table}.jsonl`), batch.text);
  }

  writeRejects(rejects: RejectRecord[]): Promise<void> {
    return this.append('_rejects.jsonl', rejects);
  }

  async commitArchive(record: ArchiveRecord): Promise<CommitResult> {
    // The ledger line is written only once every row and reject before it has reached the OS.
    await this.flush();
    await this.append('_archives.jsonl', [record]);
    await this.flush();
    return { record, rejected: {} };
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.files.values()].map(
        (s) => new Promise<void>((resolve, reject) => s.end((err?: Error | null) => (err ? reject(err) : resolve()))),
      ),
    );
    this.files.clear();
  }
}
