/**
 * `--sink` specifications: `duckdb:FILE` (the default, ./mlab-etl.duckdb), `jsonl:DIR`, `stdout`,
 * or `bigquery:PROJECT[.DATASET_PREFIX]` (datasets `<prefix>raw_<experiment>`, `<prefix><experiment>`,
 * `<prefix>mlab_etl`).
 */
import type { SchemaSet } from '../schema/schema-set.js';
import type { BigQuerySinkOptions } from './bigquery/sink.js';

import { JsonlSink } from './jsonl-sink.js';
import type { Sink } from './sink.js';
import { StdoutSink } from './stdout-sink.js';

/** The local database `parse` and `query` use unless told otherwise. */
export const DEFAULT_DUCKDB_FILE = 'mlab-etl.duckdb';
export const DEFAULT_SINK = `duckdb:${DEFAULT_DUCKDB_FILE}`;

export class SinkSpecError extends Error {
  override name = 'SinkSpecError';
}

export interface SinkStreams {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** Connection settings that do not belong in a spec string (a test server's endpoint and auth). */
export type BigQueryConnection = Pick<BigQuerySinkOptions, 'apiEndpoint' | 'authClient'> & Partial<BigQuerySinkOptions>;

/** What a sink is opened with besides its spec: the CLI's sink options, a test's BigQuery server. */
export interface SinkSettings {
  bigquery?: BigQueryConnection;
  /** DuckDB's memory_limit, e.g. '512MB' (DEFAULT_DUCKDB_MEMORY unless set). */
  duckdbMemoryLimit?: string;
}

const BIGQUERY_TARGET = /^((?:[a-z0-9.-]+:)?[a-z][a-z0-9-]*)(?:\.([A-Za-z0-9_]+))?$/;

export async function openSink(
  spec: string,
  schemas: SchemaSet,
  streams?: SinkStreams,
  settings: SinkSettings = {},
): Promise<Sink> {
  const colon = spec.indexOf(':');
  const kind = colon === -1 ? spec : spec.slice(0, colon);
  const target = colon === -1 ? '' : spec.slice(colon + 1);
  switch (kind) {
    case 'duckdb': {
      // `duckdb` alone is the default file; `duckdb:` with nothing after it is a mistake.
      if (colon !== -1 && !target)
        throw new SinkSpecError(`--sink duckdb:FILE needs a file (or --sink duckdb for ${DEFAULT_DUCKDB_FILE})`);
      // DuckDB's native module is large: loaded only for the DuckDB sink.
      const { DuckDbSink } = await import('./duckdb/sink.js');
      const memoryLimit = settings.duckdbMemoryLimit;
      return DuckDbSink.open(target || DEFAULT_DUCKDB_FILE, schemas, memoryLimit ? { memoryLimit } : {});
    }
    case 'jsonl':
      if (!target) throw new SinkSpecError('--sink jsonl:DIR needs a directory');
      return new JsonlSink(target, (message) =>
        (streams?.stderr ?? ((t) => process.stderr.write(t)))(`mlab-etl: ${message}\n`),
      );
    case 'bigquery': {
      // Project ids may hold a domain (example.com:project), so the prefix is after the last dot.
      const m = BIGQUERY_TARGET.exec(target);
      if (!m?.[1]) throw new SinkSpecError('--sink bigquery:PROJECT[.DATASET_PREFIX], e.g. bigquery:mlab-sandbox.dev_');
      // Loaded only when used: the client library is a noticeable share of a short parse's time.
      const { BigQuerySink } = await import('./bigquery/sink.js');
      return BigQuerySink.open({
        ...settings.bigquery,
        projectId: m[1],
        ...(m[2] ? { datasetPrefix: m[2] } : {}),
        schemas,
      });
    }
    case 'stdout':
      return new StdoutSink(
        streams?.stdout ?? ((t) => process.stdout.write(t)),
        streams?.stderr ?? ((t) => process.stderr.write(t)),
      );
    default:
      throw new SinkSpecError(
        `--sink ${spec}: expected duckdb:FILE, jsonl:DIR, bigquery:PROJECT[.DATASET_PREFIX] or stdout`,
      );
  }
}
