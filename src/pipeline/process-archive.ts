/**
 * The path of one archive from bytes to rows: identity -> archive reader -> registry -> parser ->
 * rows (provenance, validation) -> sink -> ledger. Triggers (CLI today, Pub/Sub next) and sources
 * (local files, GCS) sit at the two ends; nothing here knows which.
 *
 * What must stay true: every entry is counted once as parsed, skipped or failed; every row is
 * written or rejected with a reason; a bad entry fails that entry only, a bad archive that archive
 * only; the ledger record is written after the archive's rows and rejects.
 *
 * The parts: read-entries.ts reads the entries and hands them to an entry strategy
 * (strategies/serial.ts on this thread, strategies/threaded.ts in worker threads);
 * ordered-writer.ts stores what they give in archive order; archive-ledger.ts keeps the counts,
 * the rejects and the status.
 */
import { readArchive } from '../archive/archive-reader.js';
import { limitsWith, type Limits } from '../limits.js';
import type { Registry } from '../parser/registry.js';
import type { SchemaSet } from '../schema/schema-set.js';
import { tableFor, tableName } from '../schema/tables.js';
import type { Sink } from '../sinks/sink.js';
import type { ArchiveSource } from '../source/archive-source.js';
import { ArchiveLedger, type ArchiveResult } from './archive-ledger.js';
import { OrderedWriter } from './ordered-writer.js';
import { readEntries } from './read-entries.js';
import { serialStrategy } from './strategies/serial.js';
import { threadedStrategy } from './strategies/threaded.js';
import type { EntryPool } from './threads/entry-pool.js';

export type { ArchiveResult, EntryFailure } from './archive-ledger.js';

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

export interface ProcessHooks {
  onBytes?: (archiveBytesRead: number) => void;
}

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
  const { sink, version, gitCommit } = config;
  const ledger = new ArchiveLedger(sink, source, { version, gitCommit, started });
  try {
    const identity = source.identify();
    ledger.identify(identity);
    source.authorize?.();
    const parser = config.registry.get(identity.datatype);
    // With worker threads the workers validate: compiling the validator here too would only cost time.
    const strategy = config.pool
      ? threadedStrategy(config.pool, identity.datatype)
      : serialStrategy(parser, config.schemas.validator(identity.datatype));
    const table = tableFor(identity.experiment, identity.datatype);
    ledger.setTable(tableName(table));
    // The table is prepared once the archive's first bytes arrive: nothing is created for an
    // object that does not exist (a made-up experiment in a notification would create datasets).
    const bytes = beforeFirstChunk(source.open(), () => sink.prepareTable(table));
    const entries = readArchive(bytes, {
      maxEntryBytes: config.maxEntryBytes ?? limits.maxEntryBytes,
      limits,
      deadline,
      ...(hooks.onBytes ? { onBytes: hooks.onBytes } : {}),
    });
    const batchRows = config.batchRows ?? 500;
    const run = { source, identity, parser, limits, deadline, started, version, gitCommit, batchRows };
    await readEntries(entries, run, strategy, new OrderedWriter(ledger, { sink, table, source, started }));
  } catch (err) {
    ledger.archiveFailed(err);
  }
  const result = await ledger.commit(now);
  return { ...result, seconds: (now().getTime() - startedAt.getTime()) / 1000 };
}

/** The bytes as they come; `first` runs (and is waited for) before the first chunk is handed on. */
async function* beforeFirstChunk(bytes: AsyncIterable<Buffer>, first: () => Promise<void>): AsyncGenerator<Buffer> {
  let started = false;
  for await (const chunk of bytes) {
    if (!started) {
      started = true;
      await first();
    }
    yield chunk;
  }
}
