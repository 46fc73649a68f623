/**
 * JSONL directory sink: `DIR/raw_<experiment>/<datatype>.jsonl`, `DIR/_rejects.jsonl`,
 * `DIR/_archives.jsonl`, one row a line in BigQuery's JSON conventions (INT64 outside +/-2^53 as
 * decimal strings, TIMESTAMP as RFC 3339), ready for `bq load --source_format=NEWLINE_DELIMITED_JSON`.
 * Files are appended to; a reprocessed archive's rows appear again with a newer parser.Time.
 *
 * What must stay true: a file only ever holds whole lines. A run cut mid-write (a full disk, a
 * kill) can leave a last line without its newline; the next run cuts that line off before it
 * appends, and says so, instead of gluing its first row to it. The ledger line of an archive is
 * written only once its rows and rejects are on disk (fsync), so it never counts what was lost.
 */
import {
  closeSync,
  createWriteStream,
  fsync as fsyncCallback,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  type WriteStream,
} from 'node:fs';

import { once } from 'node:events';
import path from 'node:path';
import { storageError, type EtlError } from '../errors.js';
import type { ArchiveRecord, RejectRecord } from '../ledger/records.js';
import { stringifyBigQuery } from '../json/lossless-json.js';
import { jsonlBytes, type RowBatch } from '../rows/row-batch.js';
import type { CommitResult, Sink } from './sink.js';
import type { TableRef } from '../schema/tables.js';

export class JsonlSink implements Sink {
  readonly description: string;
  /** Each open file: its stream, and its descriptor (opened here so it can be synced). */
  private readonly files = new Map<string, { stream: WriteStream; fd: number }>();
  private readonly failures = new Map<string, Error>();

  /** `warn` hears of files repaired at open (a cut last line removed). */
  constructor(
    private readonly dir: string,
    private readonly warn: (message: string) => void = () => {},
  ) {
    this.description = `jsonl:${dir}`;
  }

  private stream(relative: string): WriteStream {
    let s = this.files.get(relative)?.stream;
    if (!s) {
      const file = path.join(this.dir, relative);
      let fd: number;
      try {
        mkdirSync(path.dirname(file), { recursive: true });
        const cut = cutPartialLine(file);
        if (cut > 0) {
          this.warn(`${file}: removed a last line of ${cut} bytes without its newline (a run that did not finish)`);
        }
        fd = openSync(file, 'a');
      } catch (err) {
        throw this.sinkError(relative, err);
      }
      s = createWriteStream(file, { fd, highWaterMark: 1024 * 1024 });
      // The first error is the cause (ENOSPC); later writes only fail with ERR_STREAM_DESTROYED.
      s.on('error', (err) => {
        if (!this.failures.has(relative)) this.failures.set(relative, err);
      });
      this.files.set(relative, { stream: s, fd });
    }
    return s;
  }

  private sinkError(relative: string, err: unknown): EtlError {
    return storageError(this.failures.get(relative) ?? err, `${this.description}/${relative}`);
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

  /** Resolves once every write so far is on disk (written, then fsync); rejects with the first write error. */
  private async flush(): Promise<void> {
    await Promise.all(
      [...this.files.entries()].map(async ([relative, { stream: s, fd }]) => {
        await new Promise<void>((resolve, reject) =>
          s.write('', (err) => (err ? reject(this.sinkError(relative, err)) : resolve())),
        );
        try {
          await fsyncFd(fd);
        } catch (err) {
          throw this.sinkError(relative, err);
        }
      }),
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

  /** Closes every file; a failure is reported as its first error (ENOSPC), not what closing a broken stream says. */
  async close(): Promise<void> {
    const closed = await Promise.allSettled(
      [...this.files.entries()].map(
        ([relative, { stream: s }]) =>
          new Promise<void>((resolve, reject) =>
            s.end((err?: Error | null) => (err ? reject(this.sinkError(relative, err)) : resolve())),
          ),
      ),
    );
    this.files.clear();
    const failed = [...this.failures].map(([relative, err]) => this.sinkError(relative, err));
    this.failures.clear();
    const rejected = closed.find((c): c is PromiseRejectedResult => c.status === 'rejected');
    const first = failed[0] ?? (rejected?.reason as EtlError | undefined);
    if (first) throw first;
  }
}

async function fsyncFd(fd: number): Promise<void> {
  await new Promise<void>((resolve, reject) => fsyncCallback(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * Cuts a last line without its newline off the file, reading back from the end in 64 KiB steps;
 * returns the bytes removed (0 when the file ends with a newline, is empty or does not exist).
 */
function cutPartialLine(file: string): number {
  let fd: number;
  try {
    fd = openSync(file, 'r+');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return 0;
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(64 * 1024);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - buf.length);
      const n = readSync(fd, buf, 0, end - start, start);
      const nl = buf.subarray(0, n).lastIndexOf(0x0a);
      if (nl !== -1) {
        const keep = start + nl + 1;
        if (keep < size) ftruncateSync(fd, keep);
        return size - keep;
      }
      end = start;
    }
    if (size > 0) ftruncateSync(fd, 0);
    return size;
  } finally {
    closeSync(fd);
  }
}
