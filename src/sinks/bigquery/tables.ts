/**
 * The BigQuery sink's datasets, tables and views, created when missing and brought up to date:
 * data tables `<prefix>raw_<experiment>.<datatype>` typed from the JSON Schema and DAY-partitioned
 * on `date` (queries must filter on it), views `<prefix><experiment>.<datatype>` from views.ts,
 * and the ledger tables `_rejects` and `_archives` in `<prefix>mlab_etl`.
 *
 * A table's schema only grows: fields are added or relaxed from REQUIRED to NULLABLE, never
 * changed or removed; anything else stops with schema_incompatible before a row is written.
 *
 * Ledger tables: `_archives` is partitioned by day on `started` and clustered on `archive_url`,
 * `_rejects` by day on `time` and clustered on `archive_url`; neither requires a partition filter,
 * because "was this archive processed, and what went wrong" is asked without knowing when.
 */
import type { BigQuery, Dataset, Table } from '@google-cloud/bigquery';
import { EtlError } from '../../errors.js';
import { bigQuerySchema, type SchemaSet } from '../../schema/schema-set.js';
import type { TableRef } from '../../schema/tables.js';
import { planView } from '../../schema/views.js';
import type { SetupAction } from '../sink.js';
import { describe, sinkError, statusOf } from './errors.js';
import { classify, type Retrier } from './retry.js';

/** The dataset of `_rejects` and `_archives`, after the prefix. */
export const LEDGER_DATASET = 'mlab_etl';

interface BqField {
  name: string;
  type: string;
  mode?: string;
  description?: string;
  fields?: BqField[];
  [attribute: string]: unknown;
}

const FIELD_TYPES: Record<string, string> = {
  INT64: 'INTEGER',
  FLOAT64: 'FLOAT',
  BOOL: 'BOOLEAN',
  STRUCT: 'RECORD',
  DECIMAL: 'NUMERIC',
  BIGDECIMAL: 'BIGNUMERIC',
};

function canonicalType(type: string): string {
  const upper = type.toUpperCase();
  return FIELD_TYPES[upper] ?? upper;
}

function modeOf(f: BqField): string {
  return (f.mode ?? 'NULLABLE').toUpperCase();
}
/** Adds what the schema file has and the live table lacks; lists what cannot be reconciled. */
function evolve(
  live: BqField[],
  wanted: BqField[],
  prefix = '',
): { fields: BqField[]; changes: string[]; conflicts: string[] } {
  const changes: string[] = [];
  const conflicts: string[] = [];
  const fields = live.map((l) => ({ ...l }));
  for (const w of wanted) {
    const path = `${prefix}${w.name}`;
    const at = fields.findIndex((l) => l.name.toLowerCase() === w.name.toLowerCase());
    const l = fields[at];
    if (!l) {
      if (modeOf(w) === 'REQUIRED') {
        conflicts.push(`field ${path} is new and REQUIRED; a new field must be optional (NULLABLE or REPEATED)`);
      } else {
        fields.push(w);
        changes.push(`added ${path}`);
      }
      continue;
    }
    const liveType = canonicalType(l.type);
    const wantedType = canonicalType(w.type);
    if (liveType !== wantedType) {
      conflicts.push(`field ${path} is ${liveType} in the table and ${wantedType} in the schema file`);
      continue;
    }
    const liveMode = modeOf(l);
    const wantedMode = modeOf(w);
    if (liveMode !== wantedMode) {
      if (liveMode === 'REQUIRED' && wantedMode === 'NULLABLE') {
        fields[at] = { ...l, mode: 'NULLABLE' };
        changes.push(`relaxed ${path} to NULLABLE`);
      } else if (wantedMode === 'REQUIRED') {
        conflicts.push(`field ${path} became REQUIRED in the schema file; the table has it ${liveMode}`);
        continue;
      } else {
        conflicts.push(`field ${path} is ${liveMode} in the table and ${wantedMode} in the schema file`);
        continue;
      }
    }
    if (wantedType === 'RECORD') {
      const inner = evolve(l.fields ?? [], w.fields ?? [], `${path}.`);
      changes.push(...inner.changes);
      conflicts.push(...inner.conflicts);
      if (inner.changes.length > 0) fields[at] = { ...(fields[at] as BqField), fields: inner.fields };
    }
  }
  return { fields, changes, conflicts };
}

export interface TableSetupOptions {
  schemas: SchemaSet;
  projectId: string;
  /** Prepended to every dataset name as is. */
  prefix: string;
  /** Location of the datasets created. */
  location: string;
  /** The sink, for messages. */
  description: string;
}

/** Creates and updates the sink's datasets, tables and views; each at most once per sink. */
export class TableSetup {
  private readonly schemas: SchemaSet;
  private readonly projectId: string;
  private readonly prefix: string;
  private readonly location: string;
  private readonly description: string;
  /** Prepares done or under way, by object name: a second prepare sends no request. */
  private readonly prepared = new Map<string, Promise<SetupAction[]>>();

  constructor(
    private readonly bq: BigQuery,
    options: TableSetupOptions,
    private readonly retrier: Retrier,
  ) {
    this.schemas = options.schemas;
    this.projectId = options.projectId;
    this.prefix = options.prefix;
    this.location = options.location;
    this.description = options.description;
  }

  /** The dataset's name with the prefix. */
  datasetId(dataset: string): string {
    return `${this.prefix}${dataset}`;
  }

  /**
   * Creates or updates the datasets, tables and views of these tables and the ledger, for
   * `mlab-etl setup`. The schemas do not say which experiments a datatype belongs to, so the
   * caller names the tables (`tableFor(experiment, datatype)`).
   */
  async setup(refs: TableRef[]): Promise<SetupAction[]> {
    const actions = await this.prepareLedger();
    for (const ref of refs) actions.push(...(await this.prepare(ref)));
    return actions;
  }

  /** The ledger dataset and its tables. */
  async prepareLedger(): Promise<SetupAction[]> {
    return this.once(`${this.datasetId(LEDGER_DATASET)}.`, async () => [
      ...(await this.ensureDataset(LEDGER_DATASET)),
      ...(await this.ensureTable(LEDGER_DATASET, '_archives', '_archives', {
        partitionField: 'started',
        clustering: ['archive_url'],
      })),
      ...(await this.ensureTable(LEDGER_DATASET, '_rejects', '_rejects', {
        partitionField: 'time',
        clustering: ['archive_url'],
      })),
    ]);
  }

  /** The table, its view, and the tables the view joins. */
  async prepare(ref: TableRef): Promise<SetupAction[]> {
    return this.once(`${this.datasetId(ref.dataset)}.${ref.table}`, async () => {
      const actions = [
        ...(await this.ensureDataset(ref.dataset)),
        ...(await this.ensureTable(ref.dataset, ref.table, ref.table, {
          partitionField: 'date',
          // Annotation tables are read through the joined views, by a join on date that BigQuery
          // does not count as a partition filter: requiring one would make every view query fail.
          requirePartitionFilter: this.schemas.meta(ref.table).annotates !== true,
        })),
      ];
      const plan = planView(ref, this.schemas);
      for (const need of plan.needs) actions.push(...(await this.prepare(need)));
      actions.push(...(await this.ensureDataset(ref.viewDataset)));
      const sql = plan.sql('bigquery', (d, t) => `\`${this.projectId}.${this.datasetId(d)}.${t}\``);
      actions.push(...(await this.ensureView(ref, sql)));
      return actions;
    });
  }

  /** Runs a prepare once per sink; a failed one is tried again next time. */
  private async once(key: string, run: () => Promise<SetupAction[]>): Promise<SetupAction[]> {
    let p = this.prepared.get(key);
    if (p) {
      await p;
      return [];
    }
    // The error is shaped inside the shared promise: every caller waiting on it gets a sink_error.
    p = run().catch((err: unknown) => {
      this.prepared.delete(key);
      if (err instanceof EtlError) throw err;
      throw sinkError('sink_error', `${this.description}: cannot prepare ${key}: ${describe(err)}`, {
        cause: err,
        transient: classify(err) === 'retry',
      });
    });
    this.prepared.set(key, p);
    return await p;
  }

  private async ensureDataset(dataset: string): Promise<SetupAction[]> {
    const id = this.datasetId(dataset);
    const key = `dataset ${id}`;
    const earlier = this.prepared.get(key);
    if (earlier) {
      // Under way for another table of the same dataset: its tables must wait for it too.
      await earlier;
      return [];
    }
    const run = async (): Promise<SetupAction[]> => {
      const ds = this.bq.dataset(id);
      try {
        await this.retrier.run(() => ds.get());
        return [{ object: id, kind: 'dataset', action: 'unchanged' }];
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
      try {
        await this.retrier.run(() => this.bq.createDataset(id, { location: this.location }));
      } catch (err) {
        // Another worker created it meanwhile.
        if (statusOf(err) === 409) return [{ object: id, kind: 'dataset', action: 'unchanged' }];
        throw err;
      }
      return [{ object: id, kind: 'dataset', action: 'created' }];
    };
    const p = run();
    this.prepared.set(key, p);
    try {
      return await p;
    } catch (err) {
      this.prepared.delete(key);
      throw err;
    }
  }

  private async ensureTable(
    dataset: string,
    table: string,
    schemaName: string,
    layout: { partitionField: string; requirePartitionFilter?: boolean; clustering?: string[] },
  ): Promise<SetupAction[]> {
    const ds: Dataset = this.bq.dataset(this.datasetId(dataset));
    const object = `${this.datasetId(dataset)}.${table}`;
    const wanted = bigQuerySchema(this.schemas.fields(schemaName)) as BqField[];
    const description = this.schemas.get(schemaName).description;
    const partitioned = wanted.some((f) => f.name === layout.partitionField);
    const requireFilter = partitioned && layout.requirePartitionFilter === true;
    const handle = ds.table(table);
    for (let round = 0; ; round++) {
      const meta = await this.metadataOrNone<{ schema?: { fields?: BqField[] }; etag?: string; type?: string }>(handle);
      if (!meta) {
        try {
          await this.retrier.run(() =>
            ds.createTable(table, {
              schema: { fields: wanted },
              ...(partitioned
                ? {
                    // Both spellings: the table-level one is current, the other is what older readers look at.
                    timePartitioning: {
                      type: 'DAY',
                      field: layout.partitionField,
                      ...(requireFilter ? { requirePartitionFilter: true } : {}),
                    },
                    ...(requireFilter ? { requirePartitionFilter: true } : {}),
                  }
                : {}),
              ...(layout.clustering ? { clustering: { fields: layout.clustering } } : {}),
              ...(typeof description === 'string' ? { description } : {}),
            }),
          );
          return [{ object, kind: 'table', action: 'created' }];
        } catch (err) {
          if (statusOf(err) === 409 && round < 3) continue;
          throw err;
        }
      }
      if (meta.type === 'VIEW') {
        throw sinkError('schema_incompatible', `${this.description}: ${object} is a view, expected a table`);
      }
      const { fields, changes, conflicts } = evolve(meta.schema?.fields ?? [], wanted);
      if (conflicts.length > 0) {
        throw sinkError(
          'schema_incompatible',
          `${this.description}: table ${object} cannot take schemas/${schemaName}.json: ${conflicts.join('; ')}`,
        );
      }
      if (changes.length === 0) return [{ object, kind: 'table', action: 'unchanged' }];
      try {
        // The etag makes a concurrent change by another worker fail (412) instead of being overwritten.
        await this.retrier.run(() =>
          handle.setMetadata({ schema: { fields }, ...(meta.etag ? { etag: meta.etag } : {}) }),
        );
        return [{ object, kind: 'table', action: 'updated', changes }];
      } catch (err) {
        if (statusOf(err) === 412 && round < 3) continue;
        throw err;
      }
    }
  }

  private async ensureView(ref: TableRef, query: string): Promise<SetupAction[]> {
    const ds = this.bq.dataset(this.datasetId(ref.viewDataset));
    const object = `${this.datasetId(ref.viewDataset)}.${ref.table}`;
    const handle = ds.table(ref.table);
    const view = { query, useLegacySql: false };
    for (let round = 0; ; round++) {
      const meta = await this.metadataOrNone<{ type?: string; view?: { query?: string; useLegacySql?: boolean } }>(
        handle,
      );
      if (!meta) {
        try {
          const description = this.schemas.get(ref.table).description;
          await this.retrier.run(() =>
            ds.createTable(ref.table, {
              view,
              description: `One row per (id, date) of ${this.datasetId(ref.dataset)}.${ref.table}, the newest parse winning.${typeof description === 'string' ? ` ${description}` : ''}`,
            }),
          );
          return [{ object, kind: 'view', action: 'created' }];
        } catch (err) {
          if (statusOf(err) === 409 && round < 3) continue;
          throw err;
        }
      }
      if (meta.type !== 'VIEW') {
        throw sinkError('schema_incompatible', `${this.description}: ${object} is a table, expected a view`);
      }
      if (meta.view?.query === query && meta.view.useLegacySql === false) {
        return [{ object, kind: 'view', action: 'unchanged' }];
      }
      await this.retrier.run(() => handle.setMetadata({ view }));
      return [{ object, kind: 'view', action: 'updated', changes: ['query'] }];
    }
  }

  /** A table's metadata, or undefined when it does not exist (404). */
  private async metadataOrNone<T>(handle: Table): Promise<T | undefined> {
    try {
      const [meta] = (await this.retrier.run(() => handle.getMetadata())) as unknown as [T];
      return meta;
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      return undefined;
    }
  }
}
