/** What `parse` tells a person: progress while it runs, a summary per table when it ends. */
import type { Io } from './io.js';
import type { ArchiveResult } from '../pipeline/process-archive.js';

const MB = 1e6;

export class Progress {
  private done = 0;
  private doneBytes = 0;
  private current = 0;
  private lastDraw = 0;

  constructor(
    private readonly io: Io,
    private readonly enabled: boolean,
    private readonly totalBytes: number,
    private readonly totalArchives: number,
  ) {}

  archiveBytes(n: number): void {
    this.current = n;
    const t = Date.now();
    if (t - this.lastDraw >= 100) {
      this.lastDraw = t;
      this.draw();
    }
  }

  archiveDone(size: number): void {
    this.done++;
    this.doneBytes += size;
    this.current = 0;
    this.draw();
  }

  private draw(): void {
    if (!this.enabled) return;
    const read = (this.doneBytes + this.current) / MB;
    this.io.stderr(
      `\r\x1b[K${this.done}/${this.totalArchives} archives, ${read.toFixed(1)}/${(this.totalBytes / MB).toFixed(1)} MB read`,
    );
  }

  clear(): void {
    if (this.enabled) this.io.stderr('\r\x1b[K');
  }
}

interface TableTotals {
  archives: number;
  parsed: number;
  skipped: number;
  failed: number;
  written: number;
  rejected: number;
  bytes: number;
  seconds: number;
}

const MAX_FAILURES_SHOWN = 20;

export function formatSummary(results: ArchiveResult[], sink: string, seconds: number): string {
  const tables = new Map<string, TableTotals>();
  for (const { record, seconds: s } of results) {
    const key = record.table ?? '(not identified)';
    const t = tables.get(key) ?? {
      archives: 0,
      parsed: 0,
      skipped: 0,
      failed: 0,
      written: 0,
      rejected: 0,
      bytes: 0,
      seconds: 0,
    };
    t.archives++;
    t.parsed += record.entries_parsed;
    t.skipped += record.entries_skipped;
    t.failed += record.entries_failed;
    t.written += record.rows_written;
    t.rejected += record.rows_rejected;
    t.bytes += record.entry_bytes ?? 0;
    t.seconds += s;
    tables.set(key, t);
  }
  const header = ['table', 'archives', 'files parsed', 'skipped', 'failed', 'rows written', 'rejected', 'MB', 'MB/s'];
  const rows = [...tables.entries()].map(([name, t]) => [
    name,
    String(t.archives),
    String(t.parsed),
    String(t.skipped),
    String(t.failed),
    String(t.written),
    String(t.rejected),
    (t.bytes / MB).toFixed(1),
    t.seconds > 0 ? (t.bytes / MB / t.seconds).toFixed(1) : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  const archives = results.length;
  const failedArchives = results.filter((r) => r.record.status === 'failed').length;
  const lines = [
    `Parsed ${archives} archive${archives === 1 ? '' : 's'} into ${sink} in ${seconds.toFixed(1)} s` +
      (failedArchives ? ` (${failedArchives} failed)` : ''),
    '',
    fmt(header),
    ...rows.map(fmt),
  ];
  const failures = results.flatMap((r) =>
    r.failures.map((f) => `  ${r.record.archive_url}${f.entry ? ` [${f.entry}]` : ''}: ${f.code}: ${f.message}`),
  );
  const rejected = results.filter((r) => r.record.rows_rejected > 0);
  if (failures.length > 0 || rejected.length > 0) {
    lines.push('', 'Failures (all are in _archives and _rejects):');
    lines.push(...failures.slice(0, MAX_FAILURES_SHOWN));
    if (failures.length > MAX_FAILURES_SHOWN) lines.push(`  ... and ${failures.length - MAX_FAILURES_SHOWN} more`);
    for (const r of rejected) {
      lines.push(`  ${r.record.archive_url}: schema_violation: ${r.record.rows_rejected} rows rejected`);
    }
  }
  return `${lines.join('\n')}\n`;
}
