/**
 * What the test server's own tests share: a server per test file with dataset `ds`, a real
 * `@google-cloud/bigquery` client pointed at it, and raw requests for bodies the client cannot send.
 */
import { BigQuery, type BigQueryOptions, type Table } from '@google-cloud/bigquery';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll } from 'vitest';
import { startBigQueryTestServer, type BigQueryTestServer, type TableInput } from './index.js';

// The client would otherwise probe the GCE metadata server for credentials and project.
process.env.METADATA_SERVER_DETECTION = 'none';

export const T = 15_000;

export interface RowErrorEntry {
  reason: string;
  location: string;
  message: string;
}
export interface InsertAllResponse {
  kind: string;
  insertErrors?: Array<{ index: number; errors: RowErrorEntry[] }>;
}
export interface ErrorBody {
  error: {
    code: number;
    message: string;
    status?: string;
    errors: Array<{ reason: string; message: string; domain: string }>;
  };
}
/** What `table.insert` throws when BigQuery reports per-row errors. */
export interface PartialFailure {
  name: string;
  errors: Array<{ errors: Array<{ reason: string; message: string }>; row: unknown }>;
  response: InsertAllResponse;
}
export interface ApiErrorLike {
  code: number;
  message: string;
  errors: Array<{ reason: string; message: string }>;
}

export const SCHEMA = [
  { name: 'id', type: 'STRING', mode: 'REQUIRED' },
  { name: 'date', type: 'DATE', mode: 'REQUIRED' },
  { name: 'counter', type: 'INT64' },
  { name: 'ratio', type: 'FLOAT64', mode: 'NULLABLE' },
  {
    name: 'a',
    type: 'RECORD',
    fields: [
      { name: 'Site', type: 'STRING' },
      { name: 'CollectionTime', type: 'TIMESTAMP' },
    ],
  },
  { name: 'tags', type: 'STRING', mode: 'REPEATED' },
];

export const INSERT = { raw: true, partialRetries: 0, skipInvalidRows: false, ignoreUnknownValues: false };

export function row(
  id: string,
  extra: Record<string, unknown> = {},
  insertId: string = id,
): { insertId: string; json: unknown } {
  return { insertId, json: { id, date: '2024-01-02', ...extra } };
}

/** The file's server, set by useSharedServer() before the first test. */
export let server: BigQueryTestServer;
let tableCount = 0;

/** Starts the file's server (with dataset `ds`) before its tests and stops it after them. */
export function useSharedServer(): void {
  beforeAll(async () => {
    server = await startBigQueryTestServer();
    server.state.createDataset('ds');
  });

  afterAll(async () => {
    await server?.close();
  });
}

function authClient(): OAuth2Client {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'test', expiry_date: Date.now() + 3600_000 });
  return auth;
}

export function client(target: BigQueryTestServer = server, extra: BigQueryOptions = {}): BigQuery {
  return new BigQuery({ projectId: 'test', apiEndpoint: target.url, authClient: authClient(), ...extra });
}

/** A new table in dataset `ds`, made through the server state so each test starts clean. */
export function freshTable(
  input: TableInput = { schema: SCHEMA },
  bq: BigQuery = client(),
): { id: string; table: Table } {
  const id = `t${++tableCount}`;
  server.state.createTable('ds', id, input);
  return { id, table: bq.dataset('ds').table(id) };
}

export async function failure<E>(promise: Promise<unknown>): Promise<E> {
  try {
    await promise;
  } catch (err) {
    return err as E;
  }
  throw new Error('expected the call to fail');
}

/** A raw request, for bodies the client cannot produce (bare 64-bit literals) and exact reply bodies. */
export async function call(
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = { authorization: 'Bearer test' },
  target: BigQueryTestServer = server,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${target.url}/bigquery/v2/projects/test${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as unknown) : undefined };
}
