/**
 * The path of one archive from bytes to rows: identity -> archive reader -> registry -> parser ->
 * rows (provenance, validation) -> sink -> ledger. Triggers (CLI today, Pub/Sub next) and sources
 * (local files, GCS) sit at the two ends; nothing here knows which.
 *
 * What must stay true: every entry is counted once as parsed, skipped or failed; every row is
 * written or rejected with a reason; a bad entry fails that entry only, a bad archive that archive
 * only; the ledger record is written after the archive's rows and rejects.
 */
import type { ArchiveIdentity } from './archive-path.js';
import { readArchive, type ArchiveEntry } from './archive-reader.js';
import { EtlError, toEtlError, type ErrorCode } from './errors.js';
import { excerpt, type ArchiveRecord, type RejectRecord } from './ledger.js';
import { limitsWith, type Limits } from './limits.js';
import type { Parser, ParserContext } from './parser-api.js';
import type { Registry } from './registry.js';
import { assembleRow, checkRows, rowKey, type Provenance, type Row } from './rows.js';
import type { SchemaSet } from './schema.js';
import { tableFor, tableName, type Sink, type TableRef } from './sinks/sink.js';

export interface ArchiveSource {
  /** Where the archive is (gs:// or file:// URL), known even when its identity is not. */
  url: string;
  /** The archive's identity; throws EtlError bad_archive_path when the path does not say it. */
  identify(): ArchiveIdentity;
  /** Throws when the archive may not be read (a bucket not allowed); called before any byte is read. */
  authorize?(): void;
  /** Size as stored, when known. */
  size: number | null;
  /** The object generation (GCS), so a replaced object is a new archive; null for local files. */
  generation: string | null;
  open(): AsyncIterable<Buffer>;
}

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
/** Archive-level failures surfacing while an entry is read: they end the archive, not just the entry. */
const ARCHIVE_CODES = new Set<ErrorCode>([
  'archive_timeout',
  'too_many_entries',
  'truncated_archive',
  'corrupt_archive',
  'sink_error',
  'schema_incompatible',
  'source_unavailable',
  'object_not_found',
  'input_not_found',
]);

/** Archive-level failures worth another attempt later (the service or a fixed schema may be back). */
const RETRYABLE_CODES = new Set<ErrorCode>([
  'archive_timeout',
  'sink_error',
  'source_unavailable',
  'schema_incompatible',
  'internal_error',
]);

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

  const reject = async (r: Omit<RejectRecord, 'time' | 'archive_url' | 'datatype'>): Promise<void> => {
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
    const validate = config.schemas.validator(identity.datatype);
    const table = tableFor(identity.experiment, identity.datatype);
    record.table = tableName(table);
    await sink.prepareTable(table);

    const entries = readArchive(source.open(), {
      maxEntryBytes: config.maxEntryBytes ?? limits.maxEntryBytes,
      limits,
      deadline,
      ...(hooks.onBytes ? { onBytes: hooks.onBytes } : {}),
    });
    for await (const item of entries) {
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
        await reject({ entry: item.name, code: item.reason, message: item.message });
        continue;
      }
      if (!parser.accepts(item.name)) {
        record.entries_skipped++;
        await reject({
          entry: item.name,
          code: 'not_parsable',
          message: `the ${parser.name} parser does not read entries named like this`,
        });
        continue;
      }
      try {
        await parseEntry(item, parser, identity, table, {
          validate,
          sink,
          record,
          reject,
          batchRows: config.batchRows ?? 500,
          limits,
          deadline,
          generation: source.generation,
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
        record.entries_parsed++;
      } catch (err) {
        const e = toEtlError(err, 'parser_error', 'parser');
        record.entries_failed++;
        if (ARCHIVE_CODES.has(e.code)) {
          // The entry being read when the archive failed is counted and named too.
          await reject({ entry: item.name, code: e.code, message: e.message });
          throw e;
        }
        failures.push({ entry: item.name, code: e.code, message: e.message });
        await reject({ entry: item.name, code: e.code, message: e.message });
      } finally {
        record.entry_bytes = (record.entry_bytes ?? 0) + item.bytesRead();
      }
    }
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

interface EntryState {
  validate: Parameters<typeof checkRows>[0];
  sink: Sink;
  record: ArchiveRecord;
  reject: (r: Omit<RejectRecord, 'time' | 'archive_url' | 'datatype'>) => Promise<void>;
  batchRows: number;
  provenance: Provenance;
  generation: string | null;
  limits: Limits;
  /** Epoch ms: past it, the archive fails with archive_timeout. */
  deadline: number;
}

async function parseEntry(
  entry: ArchiveEntry,
  parser: Parser,
  identity: ArchiveIdentity,
  table: TableRef,
  state: EntryState,
): Promise<void> {
  const { record } = state;
  const skipped: Omit<RejectRecord, 'time' | 'archive_url' | 'datatype'>[] = [];
  const context: ParserContext = {
    skip(code, message, text) {
      record.records_skipped++;
      skipped.push({ entry: entry.name, code, message, ...(text === undefined ? {} : { excerpt: excerpt(text) }) });
    },
  };
  let index = 0;
  let batch: Row[] = [];
  const flush = async (): Promise<void> => {
    for (const s of skipped.splice(0)) await state.reject(s);
    if (batch.length === 0) return;
    const checked = checkRows(state.validate, batch, {
      time: state.provenance.Time,
      archive_url: state.provenance.ArchiveURL,
      datatype: identity.datatype,
      entry: entry.name,
      firstIndex: index,
    });
    index += batch.length;
    batch = [];
    for (const r of checked.rejects) await state.reject(r);
    record.rows_rejected += checked.rejects.length;
    try {
      const keys = state.sink.usesRowKeys
        ? checked.indices.map((i) => rowKey(state.provenance.ArchiveURL, state.generation, entry.name, i))
        : [];
      await state.sink.writeRows(table, checked.rows, keys, checked.indices);
    } catch (err) {
      throw toEtlError(err, 'sink_error', 'sink');
    }
    record.rows_written += checked.rows.length;
  };

  const rows = parser.parse(
    {
      name: entry.name,
      size: entry.size,
      pax: entry.pax,
      body: entry.body,
      archive: { url: identity.url, experiment: identity.experiment, datatype: identity.datatype, date: identity.date },
      limits: state.limits,
    },
    context,
  );
  try {
    for await (const parsed of rows) {
      if (parsed === null || typeof parsed !== 'object' || typeof parsed.id !== 'string') {
        throw new EtlError('parser_error', `${parser.name} parser produced a row without a string id`, {
          stage: 'parser',
        });
      }
      if (index + batch.length >= state.limits.maxRowsPerEntry) {
        throw new EtlError('too_many_rows', `more than ${state.limits.maxRowsPerEntry} rows from one entry`, {
          stage: 'parser',
        });
      }
      batch.push(assembleRow(parsed, identity.date, state.provenance));
      if (batch.length >= state.batchRows) {
        await flush();
        if (Date.now() > state.deadline) {
          throw new EtlError('archive_timeout', 'the archive took longer than its time budget', {
            stage: 'parser',
            retryable: true,
          });
        }
      }
    }
  } finally {
    // Rows and skips gathered before a failure are kept: they are real, and the entry is marked failed.
    await flush();
  }
}
