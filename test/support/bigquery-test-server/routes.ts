/**
 * The REST routes for datasets and tables: each request applied to the state, and the resources
 * returned as BigQuery shapes them. Everything is checked before anything changes, so a refused
 * request leaves the state as it was.
 */
import type { IncomingMessage } from 'node:http';
import { parseLossless } from '../../../src/json/lossless-json.js';
import { requireDataset, requireTable, type Body, type Context, type Match, type Reply } from './context.js';
import { BigQueryApiError, invalid } from './errors.js';
import { insertAll } from './insert-all.js';
import { isObject, jsonBytes, show } from './json-text.js';
import { checkClustering, checkSchemaUpdate, checkTimePartitioning, normalizeSchema } from './schema-rules.js';
import { applyDescriptive, newEtag, tableName } from './state.js';
import type { DatasetState, TableField, TableInput, TableState, TimePartitioning } from './types.js';

export function handle(ctx: Context, m: Match, req: IncomingMessage, url: URL, body: Body): Reply {
  switch (m.route) {
    case 'datasets.list':
    case 'datasets.get':
    case 'datasets.insert':
    case 'datasets.delete':
      return datasetRoute(ctx, m, m.route, url, body);
    case 'tables.list':
    case 'tables.get':
    case 'tables.insert':
    case 'tables.delete':
      return tableRoute(ctx, m, m.route, body);
    case 'tables.patch':
    case 'tables.update':
      return updateTable(ctx, m, req, parseJsonBody(body), m.route === 'tables.update');
    case 'tabledata.insertAll':
      return insertAll(ctx, m, parseJsonBody(body), body.bytes.length);
  }
}

function datasetRoute(
  ctx: Context,
  m: Match,
  route: 'datasets.list' | 'datasets.get' | 'datasets.insert' | 'datasets.delete',
  url: URL,
  body: Body,
): Reply {
  switch (route) {
    case 'datasets.list':
      return {
        status: 200,
        body: {
          kind: 'bigquery#datasetList',
          datasets: [...ctx.state.datasets.values()]
            .filter((d) => d.projectId === m.projectId)
            .map((d) => ({
              kind: 'bigquery#dataset',
              id: `${d.projectId}:${d.datasetId}`,
              datasetReference: { projectId: d.projectId, datasetId: d.datasetId },
              location: d.location,
            })),
        },
      };
    case 'datasets.get':
      return { status: 200, body: datasetResource(requireDataset(ctx, m)) };
    case 'datasets.insert': {
      const json = parseJsonBody(body);
      const ref = isObject(json.datasetReference) ? json.datasetReference : {};
      if (typeof ref.datasetId !== 'string') throw invalid('Required parameter is missing: datasetReference.datasetId');
      if (ref.projectId !== undefined && ref.projectId !== m.projectId) {
        throw invalid(
          `The project ${show(ref.projectId)} in the dataset reference does not match the project ${m.projectId} of the request.`,
        );
      }
      const ds = ctx.state.createDataset(ref.datasetId, {
        projectId: m.projectId,
        ...(typeof json.location === 'string' ? { location: json.location } : {}),
        ...(typeof json.description === 'string' ? { description: json.description } : {}),
      });
      if (isObject(json.labels)) ds.labels = json.labels as Record<string, string>;
      return { status: 200, body: datasetResource(ds) };
    }
    case 'datasets.delete': {
      const ds = requireDataset(ctx, m);
      if (ds.tables.size > 0 && url.searchParams.get('deleteContents') !== 'true') {
        throw new BigQueryApiError(400, 'resourceInUse', `Dataset ${m.projectId}:${m.datasetId} is still in use`);
      }
      ctx.state.datasets.delete(`${m.projectId}:${m.datasetId}`);
      return { status: 204 };
    }
  }
}

function tableRoute(
  ctx: Context,
  m: Match,
  route: 'tables.list' | 'tables.get' | 'tables.insert' | 'tables.delete',
  body: Body,
): Reply {
  switch (route) {
    case 'tables.list': {
      const ds = requireDataset(ctx, m);
      const tables = [...ds.tables.values()].map((t) => ({
        kind: 'bigquery#table',
        id: tableName(t),
        tableReference: { projectId: t.projectId, datasetId: t.datasetId, tableId: t.tableId },
        type: t.type,
        creationTime: String(t.creationTime),
        ...(t.timePartitioning ? { timePartitioning: t.timePartitioning } : {}),
        ...(t.clustering ? { clustering: t.clustering } : {}),
      }));
      return { status: 200, body: { kind: 'bigquery#tableList', tables, totalItems: tables.length } };
    }
    case 'tables.get': {
      const { ds, table } = requireTable(ctx, m);
      return { status: 200, body: tableResource(table, ds.location) };
    }
    case 'tables.insert': {
      const json = parseJsonBody(body);
      const ref = isObject(json.tableReference) ? json.tableReference : {};
      if (typeof ref.tableId !== 'string') throw invalid('Required parameter is missing: tableReference.tableId');
      if (
        (ref.datasetId !== undefined && ref.datasetId !== m.datasetId) ||
        (ref.projectId !== undefined && ref.projectId !== m.projectId)
      ) {
        throw invalid(
          `The table reference ${show(ref.projectId)}:${show(ref.datasetId)}.${ref.tableId} does not match the dataset of the request.`,
        );
      }
      const ds = requireDataset(ctx, m);
      const table = ctx.state.createTable(m.datasetId, ref.tableId, tableInput(json), m.projectId);
      return { status: 200, body: tableResource(table, ds.location) };
    }
    case 'tables.delete': {
      const { ds } = requireTable(ctx, m);
      ds.tables.delete(m.tableId);
      return { status: 204 };
    }
  }
}

function parseJsonBody(body: Body): Record<string, unknown> {
  if (body.bytes.length === 0) return {};
  let value: unknown;
  try {
    value = parseLossless(body.bytes.toString('utf8'));
  } catch (err) {
    throw new BigQueryApiError(400, 'parseError', `Parse Error: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw invalid('The request body must be a JSON object.');
  return value;
}

function tableInput(json: Record<string, unknown>): TableInput {
  const input: TableInput = {};
  if (json.schema !== undefined) {
    if (!isObject(json.schema)) throw invalid('schema must be an object with fields.');
    input.schema = (json.schema.fields ?? []) as unknown[];
  }
  if (json.timePartitioning !== undefined) input.timePartitioning = json.timePartitioning;
  if (json.rangePartitioning !== undefined) input.rangePartitioning = json.rangePartitioning;
  if (json.clustering !== undefined) input.clustering = json.clustering;
  if (isObject(json.labels)) input.labels = json.labels as Record<string, string>;
  for (const key of ['description', 'friendlyName', 'expirationTime'] as const) {
    const value = json[key];
    if (typeof value === 'string' || typeof value === 'number') input[key] = String(value);
  }
  if (json.view !== undefined && json.view !== null) input.view = json.view as TableInput['view'];
  return input;
}

function updateTable(
  ctx: Context,
  m: Match,
  req: IncomingMessage,
  json: Record<string, unknown>,
  replace: boolean,
): Reply {
  const { ds, table } = requireTable(ctx, m);
  const ifMatch = req.headers['if-match'];
  if (typeof ifMatch === 'string' && ifMatch !== '*' && ifMatch !== table.etag) {
    throw new BigQueryApiError(412, 'conditionNotMet', 'Precondition check failed.');
  }
  const input = tableInput(json);
  const name = tableName(table);
  // Everything is checked before anything changes: a refused update leaves the table as it was.
  let schema: TableField[] | undefined;
  if (input.schema !== undefined) {
    schema = normalizeSchema(input.schema);
    if (table.type === 'TABLE') checkSchemaUpdate(table.schema, schema, name);
  }
  const effective = schema ?? table.schema;
  let view: TableState['view'];
  if (input.view !== undefined) {
    if (table.type !== 'VIEW') throw invalid(`Cannot change table ${name} into a view.`);
    view = ctx.state.checkView(input.view, m.projectId);
  } else if (replace && table.type === 'VIEW') {
    throw invalid(`Missing view definition for view ${name}.`);
  }
  let timePartitioning: TimePartitioning | undefined;
  if (input.timePartitioning !== undefined && input.timePartitioning !== null) {
    timePartitioning = checkTimePartitioning(input.timePartitioning, effective);
    const old = table.timePartitioning;
    if (!old) throw invalid(`Cannot convert non-partitioned table ${name} to a partitioned table.`);
    if (old.type !== timePartitioning.type || (old.field ?? '') !== (timePartitioning.field ?? '')) {
      throw invalid(
        `Cannot change partitioning spec for ${name} from ${old.type}(${old.field ?? '_PARTITIONTIME'}) to ${timePartitioning.type}(${timePartitioning.field ?? '_PARTITIONTIME'}).`,
      );
    }
  }
  const clustering =
    input.clustering !== undefined && input.clustering !== null
      ? checkClustering(input.clustering, effective)
      : undefined;

  const now = ctx.clock();
  if (schema) {
    table.schema = schema;
    table.schemaHistory.push({ since: now, fields: schema });
  }
  if (view) table.view = view;
  if (timePartitioning) table.timePartitioning = timePartitioning;
  if (clustering) table.clustering = clustering;
  else if (json.clustering === null) delete table.clustering;
  applyDescriptive(table, input, replace);
  table.lastModifiedTime = now;
  table.etag = newEtag();
  return { status: 200, body: tableResource(table, ds.location) };
}

function tableResource(t: TableState, location: string): Record<string, unknown> {
  const bytes = t.rows.reduce((n, r) => n + jsonBytes(r.json), 0);
  return {
    kind: 'bigquery#table',
    etag: t.etag,
    id: tableName(t),
    selfLink: `/bigquery/v2/projects/${t.projectId}/datasets/${t.datasetId}/tables/${t.tableId}`,
    tableReference: { projectId: t.projectId, datasetId: t.datasetId, tableId: t.tableId },
    type: t.type,
    location,
    creationTime: String(t.creationTime),
    lastModifiedTime: String(t.lastModifiedTime),
    ...(t.type === 'VIEW' ? { view: t.view } : { numRows: '0', numBytes: '0' }),
    ...(t.schema.length > 0 ? { schema: { fields: t.schema } } : {}),
    ...(t.timePartitioning ? { timePartitioning: t.timePartitioning } : {}),
    ...(t.rangePartitioning ? { rangePartitioning: t.rangePartitioning } : {}),
    ...(t.clustering ? { clustering: t.clustering } : {}),
    ...(t.description !== undefined ? { description: t.description } : {}),
    ...(t.friendlyName !== undefined ? { friendlyName: t.friendlyName } : {}),
    ...(t.labels !== undefined ? { labels: t.labels } : {}),
    ...(t.expirationTime !== undefined ? { expirationTime: t.expirationTime } : {}),
    ...(t.rows.length > 0
      ? {
          streamingBuffer: {
            estimatedRows: String(t.rows.length),
            estimatedBytes: String(bytes),
            oldestEntryTime: String(t.rows[0]?.storedAt ?? t.creationTime),
          },
        }
      : {}),
  };
}

function datasetResource(ds: DatasetState): Record<string, unknown> {
  return {
    kind: 'bigquery#dataset',
    etag: ds.etag,
    id: `${ds.projectId}:${ds.datasetId}`,
    selfLink: `/bigquery/v2/projects/${ds.projectId}/datasets/${ds.datasetId}`,
    datasetReference: { projectId: ds.projectId, datasetId: ds.datasetId },
    location: ds.location,
    creationTime: String(ds.creationTime),
    lastModifiedTime: String(ds.lastModifiedTime),
    ...(ds.description !== undefined ? { description: ds.description } : {}),
    ...(ds.labels !== undefined ? { labels: ds.labels } : {}),
  };
}
