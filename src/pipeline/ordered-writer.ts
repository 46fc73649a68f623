/**
 * Stores an archive's entries in archive order, one after another, whatever parses them: the
 * sink and the ledger see the same rows, rejects and counts with worker threads as without.
 *
 * An entry is counted when it is stored or its failure recorded, never before: after the first
 * failure that ends the archive nothing more is stored or counted, as in a one-thread run, which
 * stops there. Entries read ahead of that failure are passed over (their resources released).
 */
import { toEtlError, type EtlError } from '../errors.js';
import type { EntryReject } from '../ledger/records.js';
import type { EntryBatch } from '../rows/entry-rows.js';
import { rowKey } from '../rows/rows.js';
import type { TableRef } from '../schema/tables.js';
import type { Sink } from '../sinks/sink.js';
import type { ArchiveSource } from '../source/archive-source.js';
import type { ArchiveLedger } from './archive-ledger.js';

/** Where an archive's rows go. */
export interface RowDestination {
  sink: Sink;
  table: TableRef;
  source: Pick<ArchiveSource, 'url' | 'generation'>;
  /** The processing's start time, on each row batch. */
  started: string;
}

export interface EntryWrite {
  name: string;
  /** The entry's batches, in order; throws the entry's error after the last. */
  batches: () => AsyncIterable<EntryBatch>;
  /** Decompressed bytes of the entry, once its reading has ended (or failed). */
  bytesRead: () => number | Promise<number>;
  /** Runs once the entry is stored or passed over, e.g. to let its worker thread finish it. */
  release?: () => Promise<void>;
}

export class OrderedWriter {
  private chain: Promise<void> = Promise.resolve();
  private failure: EtlError | null = null;

  constructor(
    private readonly ledger: ArchiveLedger,
    private readonly to: RowDestination,
  ) {}

  /** The first failure that ends the archive, once it has happened: nothing more is stored. */
  get failed(): EtlError | null {
    return this.failure;
  }

  /** Queues an entry: stored, counted, its bytes added. Settles (never rejects) once it is done. */
  entry(w: EntryWrite): Promise<void> {
    return this.enqueue(async () => {
      this.ledger.seen();
      try {
        await this.store(w.name, w.batches());
      } finally {
        this.ledger.entryBytes(await w.bytesRead());
      }
    }, w.release);
  }

  /** Queues an entry passed over with a reject; its reject takes its place among the entries' own. */
  skipped(reject: EntryReject): Promise<void> {
    return this.enqueue(() => this.ledger.skipped(reject));
  }

  directory(): Promise<void> {
    return this.enqueue(async () => this.ledger.directory());
  }

  /** Queues the count of an entry that is never read: the one beyond the entry limit. */
  seen(): Promise<void> {
    return this.enqueue(async () => this.ledger.seen());
  }

  /** Waits for every queued write; throws the failure that ended the archive, if one did. */
  async drain(): Promise<void> {
    await this.chain;
    if (this.failure) throw this.failure;
  }

  /** Queues a write behind those before it; the chain never rejects, its first failure is kept. */
  private enqueue(write: () => Promise<void>, release?: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(async () => {
      try {
        if (this.failure === null) await write();
      } catch (err) {
        this.failure ??= toEtlError(err, 'internal_error', 'archive');
      } finally {
        await release?.();
      }
    });
    return this.chain;
  }

  /** Stores an entry's batches and counts it; throws when the entry's failure ends the archive. */
  private async store(name: string, batches: AsyncIterable<EntryBatch>): Promise<void> {
    try {
      for await (const batch of batches) {
        await this.ledger.batchRejects(batch.rejects, batch.skipped);
        if (batch.ends.length === 0) continue;
        await this.writeRows(name, batch);
        this.ledger.rowsWritten(batch.ends.length);
      }
      this.ledger.entryParsed();
    } catch (err) {
      const e = toEtlError(err, 'parser_error', 'parser');
      if (await this.ledger.entryFailed(name, e)) throw e;
    }
  }

  private async writeRows(name: string, batch: EntryBatch): Promise<void> {
    const { sink, table, source, started } = this.to;
    try {
      const keys = sink.usesRowKeys ? batch.indices.map((i) => rowKey(source.url, source.generation, name, i)) : [];
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
  }
}
