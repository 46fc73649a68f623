/**
 * What one processing of an archive tells the ledger: its `_archives` record (counts, status,
 * error), its `_rejects` (buffered and flushed to the sink a thousand at a time), the rejects by
 * code for the metrics, and the failures for the summary. The status rule is here and nowhere
 * else: failed when the archive failed, partial when an entry failed or a row was rejected.
 */
import { ERRORS, toEtlError, type ErrorCode, type EtlError } from '../errors.js';
import type { ArchiveRecord, EntryReject, RejectRecord } from '../ledger/records.js';
import type { ArchiveSource } from '../source/archive-source.js';
import type { ArchiveIdentity } from '../source/archive-path.js';
import type { Sink } from '../sinks/sink.js';

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

const REJECTS_BATCH = 1000;

export class ArchiveLedger {
  readonly record: ArchiveRecord;
  private rejects: RejectRecord[] = [];
  private readonly rejectCodes = new Map<ErrorCode, number>();
  private readonly failures: EntryFailure[] = [];
  private retryable = false;

  constructor(
    private readonly sink: Sink,
    source: Pick<ArchiveSource, 'url' | 'size'>,
    run: { version: string; gitCommit: string | null; started: string },
  ) {
    this.record = {
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
      parser_version: run.version,
      started: run.started,
      finished: run.started,
      ...(source.size === null ? {} : { archive_bytes: source.size }),
      ...(run.gitCommit ? { git_commit: run.gitCommit } : {}),
    };
  }

  identify(identity: ArchiveIdentity): void {
    this.record.experiment = identity.experiment;
    this.record.datatype = identity.datatype;
    this.record.date = identity.date;
  }

  /** The table the rows go to, once the datatype's parser is known. */
  setTable(name: string): void {
    this.record.table = name;
  }

  async reject(r: EntryReject): Promise<void> {
    const { started: time, archive_url, datatype } = this.record;
    this.rejects.push({ time, archive_url, datatype, ...r });
    this.rejectCodes.set(r.code, (this.rejectCodes.get(r.code) ?? 0) + 1);
    if (this.rejects.length >= REJECTS_BATCH) await this.flushRejects();
  }

  private async flushRejects(): Promise<void> {
    const batch = this.rejects;
    this.rejects = [];
    await this.sink.writeRejects(batch);
  }

  /** An entry that is a directory: seen, not an error. */
  directory(): void {
    this.record.entries_seen++;
    this.record.directories++;
  }

  /** An entry passed over with a reject (too large, not a regular file, not for this parser). */
  async skipped(reject: EntryReject): Promise<void> {
    this.record.entries_seen++;
    this.record.entries_skipped++;
    await this.reject(reject);
  }

  /** An entry counted as seen: one stored or failed (whatever its outcome), or the one beyond maxEntriesPerArchive. */
  seen(): void {
    this.record.entries_seen++;
  }

  /** The rejects of a batch of an entry's rows: skipped records, then rows that failed validation. */
  async batchRejects(rejects: EntryReject[], skipped: number): Promise<void> {
    for (const r of rejects) await this.reject(r);
    this.record.records_skipped += skipped;
    this.record.rows_rejected += rejects.length - skipped;
  }

  /** Rows the sink has stored. */
  rowsWritten(rows: number): void {
    this.record.rows_written += rows;
  }

  entryParsed(): void {
    this.record.entries_parsed++;
  }

  entryBytes(bytes: number): void {
    this.record.entry_bytes = (this.record.entry_bytes ?? 0) + bytes;
  }

  /**
   * An entry that failed, with a reject naming it. True when its failure ends the archive (the
   * entry is counted and named, and the archive's failure follows); otherwise a failure of its own.
   */
  async entryFailed(entry: string, e: EtlError): Promise<boolean> {
    this.record.entries_failed++;
    await this.reject({ entry, code: e.code, message: e.message });
    if (ERRORS[e.code].endsArchive) return true;
    this.failures.push({ entry, code: e.code, message: e.message });
    return false;
  }

  /** The archive failed: what was stored before stays, the record says why. */
  archiveFailed(err: unknown): void {
    const e = toEtlError(err, 'internal_error', 'archive');
    this.record.status = 'failed';
    // A code the table retries is retried whatever the error says; an error may ask for more.
    this.retryable = e.retryable || ERRORS[e.code].retryable;
    this.record.error_code = e.code;
    this.record.error_message = e.message;
    this.failures.unshift({ entry: null, code: e.code, message: e.message });
  }

  private settleStatus(): void {
    const record = this.record;
    if (record.status === 'failed' || (record.entries_failed === 0 && record.rows_rejected === 0)) return;
    record.status = 'partial';
    const first = this.failures[0];
    if (first) {
      record.error_code = first.code;
      record.error_message = `${first.entry}: ${first.message}`;
    } else {
      record.error_code = 'schema_violation';
      record.error_message = `${record.rows_rejected} rows failed schema validation (see _rejects)`;
    }
  }

  /**
   * Settles the status, flushes the rejects and commits the record: after the archive's rows and
   * rejects, as the sink requires. Throws when the sink cannot commit.
   */
  async commit(now: () => Date): Promise<Omit<ArchiveResult, 'seconds'>> {
    this.settleStatus();
    await this.flushRejects();
    this.record.finished = now().toISOString();
    const committed = await this.sink.commitArchive(this.record);
    const rejectCodes = new Map(this.rejectCodes);
    for (const [code, n] of Object.entries(committed.rejected) as [ErrorCode, number][]) {
      rejectCodes.set(code, (rejectCodes.get(code) ?? 0) + n);
    }
    return { record: this.record, failures: this.failures, retryable: this.retryable, rejectCodes };
  }
}
