/**
 * What the BigQuery sink's tests share: a BigQuery test server per test file, a probe datatype
 * whose schema a test can widen or narrow, sinks under a dataset prefix of their own (so every
 * test starts with no datasets), rows written as the pipeline writes them, and readers of what
 * the server stored.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { EtlError } from '../../src/errors.js';
import type { ArchiveRecord } from '../../src/ledger/records.js';
import { SCHEMAS_DIR } from '../../src/package-info.js';
import { rowBatch, rowKey, type Row } from '../../src/rows/rows.js';
import { SchemaSet } from '../../src/schema/schema-set.js';
import { tableFor } from '../../src/schema/tables.js';
import { BigQuerySink, type BigQuerySinkOptions } from '../../src/sinks/bigquery/sink.js';
import { startBigQueryTestServer, type BigQueryTestServer, type StoredRow } from './bigquery-test-server/index.js';

// The client would otherwise probe the GCE metadata server for credentials and project.
process.env.METADATA_SERVER_DETECTION = 'none';

export const T = 15_000;
export const STARTED = '2024-01-03T00:00:00.000Z';
export const PROBE = tableFor('probe', 'probe');

/** The file's server and the probe schemas, set by useSinkTestServer() before the first test. */
export let server: BigQueryTestServer;
export let probeSchemas: SchemaSet;
let schemaDir: string;
let prefixCount = 0;

/** A dataset prefix no other sink of the file has used. */
export function nextPrefix(): string {
  return `t${++prefixCount}_`;
}

/** A small datatype with the standard columns, a 64-bit counter and a padding column for large rows. */
export function probeSchema(
  a: Record<string, unknown> = {
    Counter: { type: 'integer', description: 'A 64-bit counter.' },
    Note: { type: 'string' },
  },
  extra: Record<string, unknown> = {},
  required: string[] = ['id', 'date', 'parser'],
): unknown {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'urn:mlab-etl:schema:probe',
    title: 'probe',
    description: 'Probe samples for the BigQuery sink tests.',
    type: 'object',
    properties: {
      id: { $ref: 'urn:mlab-etl:schema:_common#/$defs/id' },
      date: { $ref: 'urn:mlab-etl:schema:_common#/$defs/date' },
      parser: { $ref: 'urn:mlab-etl:schema:_common#/$defs/parser' },
      a: { type: 'object', description: 'Summary.', properties: a },
      blob: { type: 'string', description: 'Padding.' },
      ...extra,
    },
    required,
  };
}

/** A schema directory with the shared and ledger schemas and this probe schema. */
export function schemaSetWith(probe: unknown): SchemaSet {
  const dir = mkdtempSync(path.join(schemaDir, 'set-'));
  for (const f of ['_common.json', '_rejects.json', '_archives.json'])
    copyFileSync(path.join(SCHEMAS_DIR, f), path.join(dir, f));
  writeFileSync(path.join(dir, 'probe.json'), JSON.stringify(probe));
  return SchemaSet.load(dir);
}

/** Starts the file's server before its tests, clears its faults after each, stops it after them. */
export function useSinkTestServer(): void {
  beforeAll(async () => {
    server = await startBigQueryTestServer();
    schemaDir = mkdtempSync(path.join(os.tmpdir(), 'bq-sink-test-'));
    probeSchemas = schemaSetWith(probeSchema());
  });

  afterEach(() => {
    server.faults.clear();
  });

  afterAll(async () => {
    await server?.close();
    rmSync(schemaDir, { recursive: true, force: true });
  });
}

export function authClient(): OAuth2Client {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'test', expiry_date: Date.now() + 3600_000 });
  return auth;
}

/** A sink writing under a prefix of its own, so every test starts with no datasets. */
export async function open(
  options: Partial<BigQuerySinkOptions> = {},
): Promise<{ sink: BigQuerySink; prefix: string }> {
  const prefix = nextPrefix();
  const sink = await BigQuerySink.open({
    projectId: 'test',
    datasetPrefix: prefix,
    apiEndpoint: server.url,
    authClient: authClient(),
    schemas: probeSchemas,
    retry: { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 },
    ...options,
  });
  return { sink, prefix };
}

export function archiveUrl(name: string): string {
  return `gs://archive-measurement-lab/probe/probe/2024/01/02/${name}.tgz`;
}

export function rows(url: string, count: number, extra: (i: number) => Record<string, unknown> = () => ({})): Row[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `r${i}`,
    date: '2024-01-02',
    parser: { Version: 'v0.1.0', Time: STARTED, ArchiveURL: url, Filename: `entry-${Math.floor(i / 100)}.json` },
    a: { Counter: i },
    ...extra(i),
  }));
}

export function keys(url: string, batch: Row[]): string[] {
  return batch.map((r, i) => rowKey(url, '1', r.parser.Filename, i));
}

export function record(url: string, rowsWritten: number, rowsRejected = 0): ArchiveRecord {
  return {
    archive_url: url,
    experiment: 'probe',
    datatype: 'probe',
    date: '2024-01-02',
    table: 'raw_probe.probe',
    status: rowsRejected > 0 ? 'partial' : 'ok',
    entries_seen: 1,
    directories: 0,
    entries_parsed: 1,
    entries_skipped: 0,
    entries_failed: 0,
    rows_written: rowsWritten,
    rows_rejected: rowsRejected,
    records_skipped: 0,
    parser_version: 'v0.1.0',
    started: STARTED,
    finished: '2024-01-03T00:00:01.000Z',
  };
}

/** Writes rows as the pipeline does: a batch per entry, each row with its index and key. */
export async function writeAll(sink: BigQuerySink, all: Row[], allKeys: string[]): Promise<void> {
  let start = 0;
  while (start < all.length) {
    const entry = all[start]?.parser.Filename;
    let end = start;
    while (end < all.length && all[end]?.parser.Filename === entry) end++;
    const indices = Array.from({ length: end - start }, (_, i) => start + i);
    await sink.writeRows(PROBE, rowBatch(all.slice(start, end), allKeys.slice(start, end), indices));
    start = end;
  }
}

/** Writes the rows as the pipeline does (keys and entry indices) and commits the archive. */
export async function writeArchive(sink: BigQuerySink, url: string, batch: Row[]): Promise<ArchiveRecord> {
  await writeAll(sink, batch, keys(url, batch));
  const rec = record(url, batch.length);
  await sink.commitArchive(rec);
  return rec;
}

export function stored(prefix: string): StoredRow[] {
  return server.state.rows(`${prefix}raw_probe`, 'probe');
}

export function ledger(prefix: string, url?: string): Array<Record<string, unknown>> {
  return server.state
    .rows(`${prefix}mlab_etl`, '_archives')
    .map((r) => r.json)
    .filter((r) => url === undefined || r.archive_url === url);
}

export function rejects(prefix: string): Array<Record<string, unknown>> {
  return server.state.rows(`${prefix}mlab_etl`, '_rejects').map((r) => r.json);
}

/** insertAll requests to the probe table since `from`, by status. */
export function inserts(prefix: string, from = 0): number[] {
  return server.state.requests
    .slice(from)
    .filter((r) => r.route === 'tabledata.insertAll' && r.path.includes(`/datasets/${prefix}raw_probe/`))
    .map((r) => r.status);
}

export async function failure(promise: Promise<unknown>): Promise<EtlError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof EtlError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}
