/**
 * The HTTP side: paths matched to REST routes, bodies read (and gunzipped) within the size
 * limits, the bearer token required, injected faults and latency applied, and every answer
 * recorded in the state's request log.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import type { Body, Context, Match, Reply } from './context.js';
import { BigQueryApiError } from './errors.js';
import { handle } from './routes.js';
import type { RouteName } from './types.js';

/** The server's request listener: answers every request, a thrown error included, in BigQuery's shape. */
export function listener(ctx: Context, requireAuth: boolean): RequestListener {
  return (req, res) => {
    void (async () => {
      const method = req.method ?? 'GET';
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const match = matchRoute(method, url.pathname);
      let reply: Reply;
      try {
        const body = await readBody(req, ctx.limits.frontEndMaxBytes);
        reply = await respond(ctx, match, req, url, body, requireAuth);
      } catch (err) {
        reply =
          err instanceof BigQueryApiError
            ? { status: err.status, body: err.body() }
            : {
                status: 500,
                body: new BigQueryApiError(500, 'internalError', `bigquery-test-server: ${String(err)}`).body(),
              };
      }
      ctx.state.requests.push({
        method,
        path: url.pathname,
        route: match?.route ?? 'unknown',
        status: reply.status,
        at: ctx.clock(),
      });
      send(res, reply);
    })();
  };
}

function matchRoute(method: string, pathname: string): Match | undefined {
  const prefix = '/bigquery/v2/projects/';
  if (!pathname.startsWith(prefix)) return undefined;
  let segments: string[];
  try {
    segments = pathname.slice(prefix.length).split('/').map(decodeURIComponent);
  } catch {
    return undefined;
  }
  if (segments.at(-1) === '') segments.pop();
  const [projectId = '', kind, datasetId = '', tables, tableId = '', action] = segments;
  if (kind !== 'datasets' || projectId === '') return undefined;
  const m = (route: RouteName): Match => ({ route, projectId, datasetId, tableId });
  switch (segments.length) {
    case 2:
      return method === 'GET' ? m('datasets.list') : method === 'POST' ? m('datasets.insert') : undefined;
    case 3:
      return method === 'GET' ? m('datasets.get') : method === 'DELETE' ? m('datasets.delete') : undefined;
    case 4:
      if (tables !== 'tables') return undefined;
      return method === 'GET' ? m('tables.list') : method === 'POST' ? m('tables.insert') : undefined;
    case 5:
      if (tables !== 'tables') return undefined;
      if (method === 'GET') return m('tables.get');
      if (method === 'PATCH') return m('tables.patch');
      if (method === 'PUT') return m('tables.update');
      if (method === 'DELETE') return m('tables.delete');
      return undefined;
    case 6:
      return tables === 'tables' && action === 'insertAll' && method === 'POST' ? m('tabledata.insertAll') : undefined;
    default:
      return undefined;
  }
}

async function readBody(req: IncomingMessage, keepAtMost: number): Promise<Body> {
  const chunks: Buffer[] = [];
  let size = 0;
  // The rest of an oversized body is read and dropped so the client sees the reply, not a reset.
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= keepAtMost) chunks.push(chunk);
  }
  return { bytes: Buffer.concat(chunks), size };
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.destroyed || res.headersSent) return;
  if (reply.body === undefined) {
    res.writeHead(reply.status).end();
    return;
  }
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': 'application/json; charset=UTF-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

async function respond(
  ctx: Context,
  match: Match | undefined,
  req: IncomingMessage,
  url: URL,
  body: Body,
  requireAuth: boolean,
): Promise<Reply> {
  if (body.size > ctx.limits.frontEndMaxBytes) {
    throw new BigQueryApiError(413, 'requestTooLarge', 'Request Too Large');
  }
  if (requireAuth && !/^Bearer \S+/i.test(req.headers.authorization ?? '')) {
    throw new BigQueryApiError(
      401,
      'required',
      'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
      { location: 'Authorization', locationType: 'header' },
    );
  }
  if (!match) {
    throw new BigQueryApiError(
      501,
      'notImplemented',
      `bigquery-test-server does not implement ${req.method ?? 'GET'} ${url.pathname}`,
    );
  }
  const latency = ctx.faults.latencyFor(match.route);
  try {
    const fault = ctx.faults.takeRequestFault(match.route);
    if (fault) throw fault;
    return handle(ctx, match, req, url, decodeBody(ctx, req, body));
  } finally {
    if (latency > 0) await sleep(latency);
  }
}

function decodeBody(ctx: Context, req: IncomingMessage, body: Body): Body {
  let decoded = body;
  if (/\bgzip\b/i.test(String(req.headers['content-encoding'] ?? '')) && body.bytes.length > 0) {
    try {
      const bytes = gunzipSync(body.bytes, { maxOutputLength: ctx.limits.frontEndMaxBytes + 1 });
      decoded = { bytes, size: bytes.length };
    } catch {
      throw new BigQueryApiError(400, 'parseError', 'The request body is not valid gzip.');
    }
  }
  if (decoded.size > ctx.limits.maxRequestBytes) {
    throw new BigQueryApiError(
      400,
      'badRequest',
      `Request payload size exceeds the limit: ${ctx.limits.maxRequestBytes} bytes.`,
    );
  }
  return decoded;
}
