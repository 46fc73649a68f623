/**
 * One entry from bytes to checked, serialised rows: parser -> standard columns -> schema
 * validation -> JSON text. The same code runs on the main thread and in worker threads
 * (entry-pool.ts), so a row is the same text whichever ran it.
 */
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { EtlError, toEtlError } from '../errors.js';
import { excerpt, type EntryReject } from '../ledger/records.js';
import type { Limits } from '../limits.js';
import { stringifyBigQuery } from '../json/lossless-json.js';
import type { ArchiveInfo, Parser, ParserContext } from '../parser/api.js';
import { assembleRow, checkRows, type Provenance, type Row } from './rows.js';
import { jsonlBytes } from './row-batch.js';

/** Everything about an entry but its bytes: what a worker thread needs besides the body. */
export interface EntryJob {
  name: string;
  size: number;
  pax: Readonly<Record<string, string>>;
  archive: ArchiveInfo;
  provenance: Provenance;
  limits: Limits;
  /** Epoch ms: past it, the archive fails with archive_timeout. */
  deadline: number;
  /** Rows validated and handed over at a time. */
  batchRows: number;
}

/** What an entry gives, a batch at a time, in order. */
export interface EntryBatch {
  /** Valid rows as JSONL bytes, and where each row's line ends. */
  text: Buffer;
  ends: number[];
  /** Each valid row's index within the entry. */
  indices: number[];
  /** Records the parser skipped, then rows that failed validation, in that order. */
  rejects: EntryReject[];
  /** How many of `rejects` are skipped records (the rest are schema_violation rows). */
  skipped: number;
}

/**
 * The entry's batches. On failure the rows and skips gathered before it come out as a last batch
 * (they are real) and then the error is thrown, as an EtlError.
 */
export async function* entryBatches(
  parser: Parser,
  validate: ValidateFunction,
  job: EntryJob,
  body: AsyncIterable<Buffer>,
): AsyncGenerator<EntryBatch, void, undefined> {
  const skips: EntryReject[] = [];
  const context: ParserContext = {
    skip(code, message, text) {
      skips.push({ entry: job.name, code, message, ...(text === undefined ? {} : { excerpt: excerpt(text) }) });
    },
  };
  let index = 0;
  let rows: Row[] = [];
  const take = (): EntryBatch => {
    const rejects = skips.splice(0);
    const skipped = rejects.length;
    const checked = checkRows(validate, rows, { entry: job.name, firstIndex: index });
    index += rows.length;
    rows = [];
    rejects.push(...checked.rejects);
    return {
      ...jsonlBytes(checked.rows.map((r) => stringifyBigQuery(r))),
      indices: checked.indices,
      rejects,
      skipped,
    };
  };

  let failure: EtlError | null = null;
  try {
    const parsed = parser.parse(
      { name: job.name, size: job.size, pax: job.pax, body, archive: job.archive, limits: job.limits },
      context,
    );
    for await (const row of parsed) {
      if (row === null || typeof row !== 'object' || typeof row.id !== 'string') {
        throw new EtlError('parser_error', `${parser.name} parser produced a row without a string id`, {
          stage: 'parser',
        });
      }
      if (index + rows.length >= job.limits.maxRowsPerEntry) {
        throw new EtlError('too_many_rows', `more than ${job.limits.maxRowsPerEntry} rows from one entry`, {
          stage: 'parser',
        });
      }
      rows.push(assembleRow(row, job.archive.date, job.provenance));
      if (rows.length >= job.batchRows) {
        yield take();
        if (Date.now() > job.deadline) {
          throw new EtlError('archive_timeout', 'the archive took longer than its time budget', {
            stage: 'parser',
            retryable: true,
          });
        }
      }
    }
  } catch (err) {
    failure = toEtlError(err, 'parser_error', 'parser');
  }
  // Rows and skips gathered before a failure are kept: they are real, and the entry is marked failed.
  if (rows.length > 0 || skips.length > 0) yield take();
  if (failure) throw failure;
}
