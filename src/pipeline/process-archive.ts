/**
 * The path of one archive from bytes to rows: identity -> archive reader -> registry -> parser ->
 * rows (provenance, validation) -> sink -> ledger. Triggers (CLI today, Pub/Sub next) and sources
 * (local files, GCS) sit at the two ends; nothing here knows which.
 *
 * What must stay true: every entry is counted once as parsed, skipped or failed; every row is
 * written or rejected with a reason; a bad entry fails that entry only, a bad archive that archive
 * only; the ledger record is written after the archive's rows and rejects.
 */
import type { ArchiveSource } from '../source/archive-source.js';
import { readArchive, type ArchiveEntry } from '../archive/archive-reader.js';
import { ARCHIVE_CODES, EtlError, RETRYABLE_CODES, toEtlError, type ErrorCode } from '../errors.js';
import type { ArchiveRecord, EntryReject, RejectRecord } from '../ledger/records.js';
import { limitsWith, type Limits } from '../limits.js';
import type { EntryPool } from './threads/entry-pool.js';
import { entryBatches, type EntryBatch, type EntryJob } from '../rows/entry-rows.js';
import type { Registry } from '../parser/registry.js';
import { rowKey } from '../rows/rows.js';
import type { SchemaSet } from '../schema/schema-set.js';
import { tableFor, tableName } from '../schema/tables.js';
import type { Sink } from '../sinks/sink.js';

export interface PipelineConfig {
  registry: Registry;
  schemas: SchemaSet;
  sink: Sink;
  version: string;
  gitCommit: string | null;
  maxEntryBytes?: number;
  /** Limits (limits.ts); defaults for what is not given. */
  limits?: Partial<Limits>;
  /** Rows validated and handed to the sink at a time. */
  batchRows?: number;
  /** Worker threads that parse entries (`--workers`); entries are parsed on this thread without it. */
  pool?: EntryPool;
  now?: () => Date;
}

export interface EntryFailure {
  entry: string | null;
  code: ErrorCode;
  message: string;
}

export interface ArchiveResult {
  record: ArchiveRecord;
  /** Archive- and entry-level failures, for the summary (the same are in the ledger and rejects). */
  failures: EntryFailure[];
  /** Seconds from start to commit. */
  seconds: number;
  /** The archive failed in a way another attempt may fix (a service down, a schema fixed): retry, do not ack. */
  retryable: boolean;
  /** Rejects recorded, by code. */
  rejectCodes: Map<ErrorCode, number>;
}

export interface ProcessHooks {
  onBytes?: (archiveBytesRead: number) => void;
}

const REJECTS_BATCH = 1000;
export async function processArchive(
  source: ArchiveSource,
  config: PipelineConfig,
  hooks: ProcessHooks = {},
): Promise<ArchiveResult> {
  const now = config.now ?? (() => new Date());
  const limits = limitsWith(config.limits);
  const startedAt = now();
  const deadline = startedAt.getTime() + limits.archiveTimeoutMs;
  const started = startedAt.toISOString();
  const record: ArchiveRecord = {
    archive_url: source.url,
    datatype: '(unknown)',
    status: 'ok',
    entries_seen: 0,
    directories: 0,
    entries_parsed: 0,
    entries_skipped: 0,
    entries_failed: 0,
    rows_written: 0,
    rows_rejected: 0,
    records_skipped: 0,
    entry_bytes: 0,
    parser_version: config.version,
    started,
    finished: started,
    ...(source.size === null ? {} : { archive_bytes: source.size }),
    ...(config.gitCommit ? { git_commit: config.gitCommit } : {}),
  };
  const failures: EntryFailure[] = [];
  let retryable = false;
  let rejects: RejectRecord[] = [];
  const rejectCodes = new Map<ErrorCode, number>();
  const { sink } = config;

  const reject = async (r: EntryReject): Promise<void> => {
    rejects.push({ time: started, archive_url: source.url, datatype: record.datatype, ...r });
    rejectCodes.set(r.code, (rejectCodes.get(r.code) ?? 0) + 1);
    if (rejects.length >= REJECTS_BATCH) await flushRejects();
  };
  const flushRejects = async (): Promise<void> => {
    const batch = rejects;
    rejects = [];
    await sink.writeRejects(batch);
  };

  try {
    const identity = source.identify();
    record.experiment = identity.experiment;
    record.datatype = identity.datatype;
    record.date = identity.date;
    source.authorize?.();
    const parser = config.registry.get(identity.datatype);
    // With worker threads the workers validate: compiling the validator here too would only cost time.
    const validator = (): ReturnType<SchemaSet['validator']> => config.schemas.validator(identity.datatype);
    if (!config.pool) validator();
    const table = tableFor(identity.experiment, identity.datatype);
    record.table = tableName(table);
    await sink.prepareTable(table);

    const entries = readArchive(source.open(), {
      maxEntryBytes: config.maxEntryBytes ?? limits.maxEntryBytes,
      limits,
      deadline,
      ...(hooks.onBytes ? { onBytes: hooks.onBytes } : {}),
    });
    const batchRows = config.batchRows ?? 500;
    const jobFor = (item: ArchiveEntry): EntryJob => ({
      name: item.name,
      size: item.size,
      pax: item.pax,
      archive: { url: identity.url, experiment: identity.experiment, datatype: identity.datatype, date: identity.date },
      limits,
      deadline,
      batchRows,
      provenance: {
        Version: config.version,
        Time: started,
        ArchiveURL: source.url,
        Filename: item.name,
        ...(config.gitCommit ? { GitCommit: config.gitCommit } : {}),
        ...(source.size === null ? {} : { ArchiveSize: source.size }),
        FileSize: item.size,
      },
    });

    /** Stores an entry's batches and counts it; throws when the entry's failure ends the archive. */
    const store = async (name: string, batches: AsyncIterable<EntryBatch>): Promise<void> => {
      try {
        for await (const batch of batches) {
          for (const r of batch.rejects) await reject(r);
          record.records_skipped += batch.skipped;
          record.rows_rejected += batch.rejects.length - batch.skipped;
          const rows = batch.ends.length;
          if (rows === 0) continue;
          try {
            const keys = sink.usesRowKeys
              ? batch.indices.map((i) => rowKey(source.url, source.generation, name, i))
              : [];
            await sink.writeRows(table, {
              text: batch.text,
              ends: batch.ends,
              indices: batch.indices,
              keys,
              archiveUrl: source.url,
              entry: name,
              time: started,
            });
          } catch (err) {
            throw toEtlError(err, 'sink_error', 'sink');
          }
          record.rows_written += rows;
        }
        record.entries_parsed++;
      } catch (err) {
        const e = toEtlError(err, 'parser_error', 'parser');
        record.entries_failed++;
        await reject({ entry: name, code: e.code, message: e.message });
        // The entry being read when the archive failed is counted and named too.
        if (ARCHIVE_CODES.has(e.code)) throw e;
        failures.push({ entry: name, code: e.code, message: e.message });
      }
    };

    // With worker threads, entries are read here and parsed there; `writing` stores their
    // batches one entry after another, in archive order, while the next entries are read.
    const pool = config.pool;
    let writing: Promise<void> = Promise.resolve();
    let writeFailed: EtlError | null = null;
    // Entries read ahead of a failed write are never stored: like a one-thread run, which stops at
    // the failure, the ledger does not count them as seen.
    const unseen = (skipped: boolean): void => {
      record.entries_seen--;
      if (skipped) record.entries_skipped--;
    };
    /** Queues a write behind those before it; the chain never rejects, its first failure is kept. */
    const enqueue = (write: () => Promise<void>, skipped: () => void, always?: () => Promise<void>): void => {
      writing = writing.then(async () => {
        try {
          if (writeFailed === null) await write();
          else skipped();
        } catch (err) {
          writeFailed ??= toEtlError(err, 'internal_error', 'archive');
        } finally {
          await always?.();
        }
      });
    };
    /** Rejects of skipped entries take their place among the entries' own rows and rejects. */
    const inOrder = async (write: () => Promise<void>): Promise<void> => {
      if (!pool) return write();
      enqueue(write, () => unseen(true));
    };
    let readFailed: EtlError | null = null;
    try {
      for await (const item of entries) {
        if (writeFailed !== null) break;
        record.entries_seen++;
        if (record.entries_seen > limits.maxEntriesPerArchive) {
          throw new EtlError('too_many_entries', `more than ${limits.maxEntriesPerArchive} entries`, {
            stage: 'archive',
          });
        }
        if (item.kind === 'skipped') {
          if (item.reason === 'directory') {
            record.directories++;
            continue;
          }
          record.entries_skipped++;
          const { name, reason: code, message } = item;
          await inOrder(() => reject({ entry: name, code, message }));
          continue;
        }
        if (!parser.accepts(item.name)) {
          record.entries_skipped++;
          await inOrder(() =>
            reject({
              entry: item.name,
              code: 'not_parsable',
              message: `the ${parser.name} parser does not read entries named like this`,
            }),
          );
          continue;
        }
        if (!pool) {
          try {
            await store(item.name, entryBatches(parser, validator(), jobFor(item), item.body));
          } finally {
            record.entry_bytes = (record.entry_bytes ?? 0) + item.bytesRead();
          }
          continue;
        }
        const task = await pool.begin(identity.datatype, jobFor(item));
        enqueue(
          () => store(item.name, task.batches()),
          () => unseen(false),
          () => task.discard(),
        );
        try {
          await task.feed(item.body);
        } catch (err) {
          // Reading the entry failed (a corrupt .gz entry, or the archive broke inside it): its
          // parser sees the same error, as it would have reading the body itself.
          const e = toEtlError(err, 'internal_error', 'archive');
          task.abort(e);
          if (ARCHIVE_CODES.has(e.code)) throw err;
        } finally {
          record.entry_bytes = (record.entry_bytes ?? 0) + item.bytesRead();
        }
      }
    } catch (err) {
      readFailed = toEtlError(err, 'internal_error', 'archive');
    }
    // Entries already handed to workers are stored (or their failure recorded) before the archive ends.
    await writing;
    // A failed write concerns an entry before the one being read: it is the archive's error, as
    // it would have been in one thread, which stops there.
    const failedWrite = writeFailed as EtlError | null; // set by callbacks TypeScript's narrowing does not see
    if (failedWrite) throw failedWrite;
    if (readFailed) throw readFailed;
  } catch (err) {
    const e = toEtlError(err, 'internal_error', 'archive');
    record.status = 'failed';
    retryable = e.retryable || RETRYABLE_CODES.has(e.code);
    record.error_code = e.code;
    record.error_message = e.message;
    failures.unshift({ entry: null, code: e.code, message: e.message });
  }

  if (record.status !== 'failed' && (record.entries_failed > 0 || record.rows_rejected > 0)) {
    record.status = 'partial';
    const first = failures[0];
    if (first) {
      record.error_code = first.code;
      record.error_message = `${first.entry}: ${first.message}`;
    } else {
      record.error_code = 'schema_violation';
      record.error_message = `${record.rows_rejected} rows failed schema validation (see _rejects)`;
    }
  }
  await flushRejects();
  record.finished = now().toISOString();
  const committed = await sink.commitArchive(record);
  for (const [code, n] of Object.entries(committed.rejected) as [ErrorCode, number][]) {
    rejectCodes.set(code, (rejectCodes.get(code) ?? 0) + n);
  }
  return { record, failures, retryable, rejectCodes, seconds: (now().getTime() - startedAt.getTime()) / 1000 };
}
