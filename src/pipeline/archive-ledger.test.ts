import { describe, expect, it } from 'vitest';
import { EtlError } from '../errors.js';
import type { RejectRecord } from '../ledger/records.js';
import { JsonlSink } from '../sinks/jsonl-sink.js';
import { tempDir } from '../../test/support/helpers.js';
import { ArchiveLedger } from './archive-ledger.js';

const URL = 'gs://archive-mlab-test/ndt/ndt7/2020/03/18/20200318T003853.705648Z-ndt7-mlab3-syd03-ndt.tgz';
const NOW = new Date('2026-01-02T03:04:05Z');

/** A JSONL sink that remembers how many rejects each writeRejects call carried. */
class CountingSink extends JsonlSink {
  readonly rejectWrites: number[] = [];
  override async writeRejects(rejects: RejectRecord[]): Promise<void> {
    this.rejectWrites.push(rejects.length);
    return super.writeRejects(rejects);
  }
}

function ledger(): { ledger: ArchiveLedger; sink: CountingSink } {
  const sink = new CountingSink(tempDir('ledger'));
  return {
    sink,
    ledger: new ArchiveLedger(
      sink,
      { url: URL, size: 10 },
      { version: 'v', gitCommit: null, started: NOW.toISOString() },
    ),
  };
}

describe('ArchiveLedger', () => {
  it('hands rejects to the sink a thousand at a time, the rest at the commit, and counts them by code', async () => {
    const { ledger: l, sink } = ledger();
    for (let i = 0; i < 2500; i++) await l.skipped({ entry: `e${i}`, code: 'not_parsable', message: 'no' });
    expect(sink.rejectWrites).toEqual([1000, 1000]);
    const result = await l.commit(() => NOW);
    expect(sink.rejectWrites).toEqual([1000, 1000, 500]);
    expect(result.rejectCodes.get('not_parsable')).toBe(2500);
    expect(result.record).toMatchObject({ status: 'ok', entries_seen: 2500, entries_skipped: 2500 });
    await sink.close();
  });

  it('is partial with the first failed entry, or the schema violations when no entry failed', async () => {
    const a = ledger();
    await a.ledger.batchRejects([{ entry: 'x', code: 'schema_violation', message: 'bad' }], 0);
    await a.ledger.entryFailed('y', new EtlError('invalid_json', 'not JSON', { stage: 'parser' }));
    expect((await a.ledger.commit(() => NOW)).record).toMatchObject({
      status: 'partial',
      error_code: 'invalid_json',
      error_message: 'y: not JSON',
    });
    const b = ledger();
    await b.ledger.batchRejects([{ entry: 'x', code: 'schema_violation', message: 'bad' }], 0);
    const result = await b.ledger.commit(() => NOW);
    expect(result.record).toMatchObject({ status: 'partial', error_code: 'schema_violation', rows_rejected: 1 });
    expect(result.retryable).toBe(false);
    await Promise.all([a.sink.close(), b.sink.close()]);
  });

  it('fails the archive, retryable as the error table says even when the error is not transient', async () => {
    const { ledger: l, sink } = ledger();
    expect(await l.entryFailed('e', new EtlError('sink_error', 'refused', { stage: 'sink', retryable: false }))).toBe(
      true,
    );
    l.archiveFailed(new EtlError('sink_error', 'refused', { stage: 'sink', retryable: false }));
    const result = await l.commit(() => NOW);
    expect(result.record).toMatchObject({ status: 'failed', error_code: 'sink_error', entries_failed: 1 });
    expect(result.retryable).toBe(true);
    expect(result.failures).toEqual([{ entry: null, code: 'sink_error', message: 'refused' }]);

    const other = ledger();
    other.ledger.archiveFailed(new EtlError('corrupt_archive', 'not a tar', { stage: 'archive' }));
    expect((await other.ledger.commit(() => NOW)).retryable).toBe(false);
    await Promise.all([sink.close(), other.sink.close()]);
  });
});
