/** `--sink` specifications: `duckdb:FILE` (the default, ./mlab-etl.duckdb), `jsonl:DIR` or `stdout`. */
import type { SchemaSet } from '../schema.js';
import { DEFAULT_DUCKDB_FILE, DuckDbSink } from './duckdb-sink.js';
import { JsonlSink } from './jsonl-sink.js';
import type { Sink } from './sink.js';
import { StdoutSink } from './stdout-sink.js';

export const DEFAULT_SINK = `duckdb:${DEFAULT_DUCKDB_FILE}`;

export class SinkSpecError extends Error {
  override name = 'SinkSpecError';
}

export interface SinkStreams {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export async function openSink(spec: string, schemas: SchemaSet, streams?: SinkStreams): Promise<Sink> {
  const colon = spec.indexOf(':');
  const kind = colon === -1 ? spec : spec.slice(0, colon);
  const target = colon === -1 ? '' : spec.slice(colon + 1);
  switch (kind) {
    case 'duckdb':
      return DuckDbSink.open(target || DEFAULT_DUCKDB_FILE, schemas);
    case 'jsonl':
      if (!target) throw new SinkSpecError('--sink jsonl:DIR needs a directory');
      return new JsonlSink(target);
    case 'stdout':
      return new StdoutSink(
        streams?.stdout ?? ((t) => process.stdout.write(t)),
        streams?.stderr ?? ((t) => process.stderr.write(t)),
      );
    default:
      throw new SinkSpecError(`--sink ${spec}: expected duckdb:FILE, jsonl:DIR or stdout`);
  }
}
