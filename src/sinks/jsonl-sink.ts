/**
 * JSONL directory sink: `DIR/raw_<experiment>/<datatype>.jsonl`, `DIR/_rejects.jsonl`,
 * `DIR/_archives.jsonl`, one row a line in BigQuery's JSON conventions (INT64 outside +/-2^53 as
 * decimal strings, TIMESTAMP as RFC 3339), ready for `bq load --source_format=NEWLINE_DELIMITED_JSON`.
 * Files are appended to; a reprocessed archive's rows appear again with a newer parser.Time.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { EtlError } from '../errors.js';
import type { ArchiveRecord, RejectRecord } from '../ledger.js';
import { stringifyBigQuery } from '../lossless-json.js';
import type { Row } from '../rows.js';
import type { CommitResult, Sink, TableRef } from './sink.js';

export class JsonlSink implements Sink {
  readonly description: string;
  private readonly files = new Map<string, WriteStream>();

  constructor(private readonly dir: string) {
    this.description = `jsonl:${dir}`;
  }

  private stream(relative: string): WriteStream {
    let s = this.files.get(relative);
    if (!s) {
      const file = path.join(this.dir, relative);
      mkdirSync(path.dirname(file), { recursive: true });
      s = createWriteStream(file, { flags: 'a' });
      this.files.set(relative, s);
    }
    return s;
  }

  private async append(relative: string, values: unknown[]): Promise<void> {
    if (values.length === 0) return;
    const text = values.map((v) => stringifyBigQuery(v)).join('\n') + '\n';
    const s = this.stream(relative);
    await new Promise<void>((resolve, reject) => {
      s.write(text, (err) =>
        err
          ? reject(
              new EtlError('sink_error', `${this.description}/${relative}: ${err.message}`, {
                stage: 'sink',
                cause: err,
                retryable: true,
              }),
            )
          : resolve(),
      );
    });
  }

  async prepareTable(ref: TableRef): Promise<void> {
    this.stream(path.join(ref.dataset, `${ref.table}.jsonl`));
  }

  writeRows(ref: TableRef, rows: Row[], _keys: string[]): Promise<void> {
    return this.append(path.join(ref.dataset, `${ref.table}.jsonl`), rows);
  }

  writeRejects(rejects: RejectRecord[]): Promise<void> {
    return this.append('_rejects.jsonl', rejects);
  }

  async commitArchive(record: ArchiveRecord): Promise<CommitResult> {
    // Every write above has already been handed to the OS (its callback ran); the ledger line comes last.
    await this.append('_archives.jsonl', [record]);
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
