/**
 * Reads an archive's entries one after another and hands each to where it goes: directories and
 * entries passed over straight to the writer, the others to an entry strategy, which parses them
 * (on this thread or in worker threads) and queues their storing on the writer.
 */
import type { ArchiveEntry, ArchiveItem } from '../archive/archive-reader.js';
import { EtlError, toEtlError } from '../errors.js';
import type { Limits } from '../limits.js';
import type { Parser } from '../parser/api.js';
import type { EntryJob } from '../rows/entry-rows.js';
import type { ArchiveSource } from '../source/archive-source.js';
import type { ArchiveIdentity } from '../source/archive-path.js';
import type { OrderedWriter } from './ordered-writer.js';

/** What every entry of one processing of an archive shares. */
export interface ArchiveRun {
  source: ArchiveSource;
  identity: ArchiveIdentity;
  parser: Parser;
  limits: Limits;
  /** Epoch ms: past it, the archive fails with archive_timeout. */
  deadline: number;
  started: string;
  version: string;
  gitCommit: string | null;
  batchRows: number;
}

/** How entries are parsed: `serial` on this thread, `threaded` in worker threads. */
export interface EntryStrategy {
  /** Parses the entry, reading its body to its end, and queues its storing on the writer. */
  parse(item: ArchiveEntry, job: EntryJob, writer: OrderedWriter): Promise<void>;
  /** Waits for a queued write as the strategy reads: one thread waits for each, worker threads read on. */
  pace(written: Promise<void>): Promise<void>;
}

/**
 * Reads every entry, then waits for the writer. Throws the archive's failure: the writer's first
 * (it concerns an entry before the one being read, as in one thread, which stops there), or the
 * reader's.
 */
export async function readEntries(
  entries: AsyncIterable<ArchiveItem>,
  run: ArchiveRun,
  strategy: EntryStrategy,
  writer: OrderedWriter,
): Promise<void> {
  let readFailed: EtlError | null = null;
  try {
    let read = 0;
    for await (const item of entries) {
      // Checked before an entry too: with worker threads a write may fail while the next is read.
      if (writer.failed) break;
      if (++read > run.limits.maxEntriesPerArchive) {
        // The entry beyond the limit is counted as seen, as the one being read when the archive failed.
        void writer.seen();
        throw new EtlError('too_many_entries', `more than ${run.limits.maxEntriesPerArchive} entries`, {
          stage: 'archive',
        });
      }
      if (item.kind === 'file' && run.parser.accepts(item.name)) {
        await strategy.parse(item, jobFor(run, item), writer);
      } else {
        await strategy.pace(passOver(item, run.parser, writer));
      }
      if (writer.failed) break;
    }
  } catch (err) {
    readFailed = toEtlError(err, 'internal_error', 'archive');
  }
  // Entries already handed to workers are stored (or their failure recorded) before the archive ends.
  await writer.drain();
  if (readFailed) throw readFailed;
}

/** Directories, entries the reader skipped (with their code), and those the parser does not read. */
function passOver(item: ArchiveItem, parser: Parser, writer: OrderedWriter): Promise<void> {
  if (item.kind === 'skipped') {
    if (item.reason === 'directory') return writer.directory();
    return writer.skipped({ entry: item.name, code: item.reason, message: item.message });
  }
  return writer.skipped({
    entry: item.name,
    code: 'not_parsable',
    message: `the ${parser.name} parser does not read entries named like this`,
  });
}

function jobFor(run: ArchiveRun, item: ArchiveEntry): EntryJob {
  const { source, identity } = run;
  return {
    name: item.name,
    size: item.size,
    pax: item.pax,
    archive: { url: identity.url, experiment: identity.experiment, datatype: identity.datatype, date: identity.date },
    limits: run.limits,
    deadline: run.deadline,
    batchRows: run.batchRows,
    provenance: {
      Version: run.version,
      Time: run.started,
      ArchiveURL: source.url,
      Filename: item.name,
      ...(run.gitCommit ? { GitCommit: run.gitCommit } : {}),
      ...(source.size === null ? {} : { ArchiveSize: source.size }),
      FileSize: item.size,
    },
  };
}
