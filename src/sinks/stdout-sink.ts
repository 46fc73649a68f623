/**
 * `--sink stdout`: for trying a parser on one's own data. Rows go to standard output as JSONL
 * (BigQuery's JSON conventions); every reject, with its code and (for schema violations) the JSON
 * path and keyword, goes to standard error. Nothing is stored.
 */
import type { ArchiveRecord, RejectRecord } from '../ledger/records.js';
import type { CommitResult, Sink } from './sink.js';
import type { RowBatch } from '../rows/row-batch.js';
import type { TableRef } from '../schema/tables.js';

export class StdoutSink implements Sink {
  readonly description = 'stdout';

  constructor(
    private readonly out: (text: string) => void,
    private readonly err: (text: string) => void,
  ) {}

  async prepareTable(_ref: TableRef): Promise<void> {}

  async writeRows(_ref: TableRef, batch: RowBatch): Promise<void> {
    if (batch.text.length > 0) this.out(batch.text.toString('utf8'));
  }

  async writeRejects(rejects: RejectRecord[]): Promise<void> {
    for (const r of rejects) {
      const where = r.entry === undefined ? '' : ` ${r.entry}${r.row_index === undefined ? '' : ` row ${r.row_index}`}`;
      this.err(`reject${where}: ${r.code}: ${r.message}\n`);
    }
  }

  async commitArchive(record: ArchiveRecord): Promise<CommitResult> {
    return { record, rejected: {} };
  }

  async close(): Promise<void> {}
}
