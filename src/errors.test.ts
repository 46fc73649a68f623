import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ARCHIVE_CODES, ERROR_CODES, ERRORS, EtlError, RETRYABLE_CODES, type ErrorCode } from './errors.js';
import { PACKAGE_ROOT } from './package-info.js';

/** The rows of the table in docs/errors.md, each as column name -> cell (backticks removed). */
function documentedRows(): Map<string, Record<string, string>> {
  const doc = readFileSync(path.join(PACKAGE_ROOT, 'docs/errors.md'), 'utf8');
  const cells = (line: string): string[] =>
    line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim().replaceAll('`', ''));
  const lines = doc.split('\n').filter((l) => l.startsWith('|'));
  const header = cells(lines[0] ?? '');
  const rows = new Map<string, Record<string, string>>();
  for (const line of lines.slice(2)) {
    const row: Record<string, string> = Object.fromEntries(cells(line).map((c, i) => [header[i] ?? '', c]));
    rows.set(row.code ?? '', row);
  }
  return rows;
}

describe('docs/errors.md', () => {
  const rows = documentedRows();

  it('documents every error code, and no other', () => {
    expect([...rows.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('gives each code the stage, scope, retry, disposition and manual status of src/errors.ts', () => {
    const columns = (code: ErrorCode): Record<string, string> => {
      const e = ERRORS[code];
      return {
        stage: e.stage,
        'ends the archive': e.endsArchive ? 'yes' : 'no',
        retried: e.retry,
        'Pub/Sub': e.disposition,
        'manual endpoint': String(e.manualStatus),
      };
    };
    for (const code of Object.keys(ERRORS) as ErrorCode[]) {
      const row = rows.get(code) ?? {};
      const want = columns(code);
      const documented = Object.fromEntries(Object.keys(want).map((k) => [k, row[k]]));
      expect(documented, `docs/errors.md, row ${code}`).toEqual(want);
    }
  });
});

describe('the error table', () => {
  it('nacks exactly what is retried, and answers the manual endpoint 503 for it', () => {
    for (const [code, e] of Object.entries(ERRORS)) {
      expect(e.disposition, code).toBe(e.retryable ? 'nack' : 'ack');
      expect(e.manualStatus === 503, code).toBe(e.retryable);
    }
    expect([...RETRYABLE_CODES].sort()).toEqual([
      'archive_timeout',
      'disk_full',
      'internal_error',
      'schema_incompatible',
      'sink_error',
      'source_unavailable',
    ]);
    expect(ARCHIVE_CODES.has('truncated_archive')).toBe(true);
    expect(ARCHIVE_CODES.has('corrupt_entry')).toBe(false);
  });

  it("takes an EtlError's retryable from its code unless the error says otherwise", () => {
    expect(new EtlError('sink_error', 'down', { stage: 'sink' }).retryable).toBe(true);
    expect(new EtlError('sink_error', 'refused', { stage: 'sink', retryable: false }).retryable).toBe(false);
    // Retried after a fix, not by repeating the request: the error itself is not transient.
    expect(new EtlError('schema_incompatible', 'a type changed', { stage: 'sink' }).retryable).toBe(false);
    expect(new EtlError('corrupt_archive', 'not a tar', { stage: 'archive' }).retryable).toBe(false);
    expect(new EtlError('internal_error', 'thread died', { stage: 'parser', retryable: true }).retryable).toBe(true);
  });
});
