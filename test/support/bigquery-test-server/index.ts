/**
 * A local stand-in for the BigQuery REST API v2, for tests of code built on
 * `@google-cloud/bigquery`. No BigQuery emulator exists for this project's machines, and a mock
 * that accepts anything would let a sink pass tests with rows BigQuery throws away. So this server
 * rejects what BigQuery rejects: rows are checked against the table schema with BigQuery's JSON
 * rules, schema updates are limited to what BigQuery allows, and the request limits are real.
 *
 * Point the real client at it:
 * `new BigQuery({ projectId: 'test', apiEndpoint: server.url, authClient })`; the client adds
 * `/bigquery/v2` itself. The client needs an auth client holding a dummy token, and this server
 * answers 401 to a request without a bearer token, as BigQuery does.
 *
 * What must stay true:
 * - Request bodies are parsed losslessly (`parseLossless`): an integer literal beyond 2^53 reaches
 *   the INT64 range check unrounded.
 * - Stored rows are the row JSON as sent, values untouched: a string stays the string that was
 *   sent ("9223372036854775807" stays that string), an integer literal within +/-2^53 is a
 *   `number`, one beyond is a `bigint`. BigQuery would convert the values to the column types;
 *   tests want to see what the sink sent. Unknown fields are dropped when `ignoreUnknownValues`
 *   is set, as BigQuery drops them.
 * - Table schemas are returned as BigQuery returns them: legacy type names (INTEGER, FLOAT,
 *   BOOLEAN, RECORD) and an explicit mode on every field.
 *
 * Deviations, chosen on purpose:
 * - Where BigQuery's leniency is not documented, the server is strict (a STRING column refuses a
 *   number, BOOL refuses "true", INT64 refuses "+5"): a false failure in a test is cheaper than a
 *   row lost in production.
 * - Error messages follow BigQuery's wording where it is known ("no such field: a.b.", "Provided
 *   Schema does not match Table ...", "Request payload size exceeds the limit: 10485760 bytes.");
 *   the others are close paraphrases. Reasons, locations and statuses are what tests should
 *   assert on.
 * - A request over 10 MiB gets 400 `badRequest` (BigQuery's answer); a request so large that
 *   Google's front end refuses it gets 413. The front end's threshold is not documented: it is
 *   `limits.frontEndMaxBytes`, 32 MiB unless set.
 * - A row's size is the byte length of its JSON text; BigQuery measures its own encoding.
 * - Rows that got an injected per-row error (`faults.rowErrors`) are not stored; the other rows
 *   of the request are, unless the injected reason is `invalid`, which stops the request like a
 *   real validation error.
 * - The added latency is spent after the rows are stored and before the reply, the case where a
 *   client gives up on a request that did succeed (which insertId dedup exists for).
 * - Field names follow the classic rule (letters, digits, underscores); BigQuery's newer flexible
 *   column names are refused.
 * - A view's SQL is not run. A view created without `useLegacySql: false` whose query quotes
 *   names with backticks is refused (legacy SQL, the API's default, has no backticks), and a view
 *   naming `project.dataset.table` or `dataset.table` in backticks needs that table to exist.
 * - No query jobs, load jobs, tabledata.list, paging or partition decorators: unsupported routes
 *   answer 501 so a test notices instead of passing on a silent no-op.
 * - `numRows` stays "0" while rows sit in the streaming buffer, as in BigQuery; the count is in
 *   `streamingBuffer.estimatedRows`.
 *
 * Files: `http.ts` (routing, bodies, auth), `routes.ts` and `insert-all.ts` (the REST calls),
 * `state.ts` (datasets, tables, rows, the request log), `schema-rules.ts` and `row-rules.ts`
 * (what BigQuery accepts as schemas and as row values), `faults.ts` (injected failures, latency).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Context } from './context.js';
import { BigQueryFaults } from './faults.js';
import { listener } from './http.js';
import { BigQueryTestState } from './state.js';
import type { Limits } from './types.js';

export { BigQueryApiError } from './errors.js';
export { BigQueryFaults, seededRandom } from './faults.js';
export { checkRow } from './row-rules.js';
export { normalizeSchema } from './schema-rules.js';
export { BigQueryTestState } from './state.js';
export type {
  DatasetState,
  FaultSpec,
  FieldMode,
  FieldType,
  Limits,
  RequestRecord,
  RouteName,
  RowError,
  RowFaultContext,
  StoredRow,
  TableField,
  TableInput,
  TableState,
  TimePartitioning,
} from './types.js';

export interface BigQueryTestServerOptions {
  /** The project the state helpers use when none is given; requests may name any project. `test` unless set. */
  projectId?: string;
  /** Seed of the deterministic random used by `faults.failRate`. */
  seed?: number;
  /** How long an insertId is remembered (ms). Unlimited unless set; BigQuery keeps it about a minute, best effort. */
  dedupWindowMs?: number;
  /** Latency added to every insertAll reply (ms); the real service's median is about 75 ms. */
  latencyMs?: number;
  /** BigQuery's streaming path sees a schema update only after a while: inserts use the schema in effect this long ago (ms). 0 unless set. */
  schemaUpdateDelayMs?: number;
  /** Answer 401 to requests without `Authorization: Bearer ...`. True unless set. */
  requireAuth?: boolean;
  limits?: Partial<Limits>;
  /** The clock for dedup windows and timestamps; `Date.now` unless set. */
  clock?: () => number;
}

export interface BigQueryTestServer {
  /** `http://127.0.0.1:PORT`, the value for the client's `apiEndpoint`. */
  url: string;
  port: number;
  state: BigQueryTestState;
  faults: BigQueryFaults;
  close(): Promise<void>;
}

const DEFAULT_LIMITS: Limits = {
  maxRequestBytes: 10 * 1024 * 1024,
  frontEndMaxBytes: 32 * 1024 * 1024,
  maxRowBytes: 10 * 1024 * 1024,
  maxRowsPerRequest: 50_000,
};

export async function startBigQueryTestServer(options: BigQueryTestServerOptions = {}): Promise<BigQueryTestServer> {
  const clock = options.clock ?? Date.now;
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  const state = new BigQueryTestState(options.projectId ?? 'test', clock);
  const faults = new BigQueryFaults(options.seed ?? 1, options.latencyMs ?? 0);
  const ctx: Context = {
    state,
    faults,
    limits,
    clock,
    dedupWindowMs: options.dedupWindowMs ?? Number.POSITIVE_INFINITY,
    schemaUpdateDelayMs: options.schemaUpdateDelayMs ?? 0,
  };
  const requireAuth = options.requireAuth ?? true;

  const server: Server = createServer(listener(ctx, requireAuth));

  // Longer than Node's HTTP client keeps an idle connection (5 s), so that the client, not this
  // server, closes it: otherwise a request can meet a connection being closed ("socket hang up").
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    state,
    faults,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
