/**
 * The worker's HTTP face: /metrics (Prometheus), /healthz (alive), /readyz (subscribed and the
 * sink reachable), POST /push (Pub/Sub push subscriptions) and, when enabled, GET /v2/worker
 * (M-Lab's manual endpoint). No route prints configuration or the environment.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { manualStatus, pushStatus, type TaskOutcome } from './dispositions.js';
import { ERRORS, EtlError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseGsUrl, pushMessage } from './triggers.js';
import type { Metrics } from './metrics.js';
import type { PushAuthenticator } from './push-auth.js';
import type { Worker } from './archive-worker.js';

const MAX_PUSH_BODY = 1024 * 1024;

export interface HttpOptions {
  port: number;
  host?: string;
  enableManualWorker: boolean;
  /** When set, POST /push requires a valid Pub/Sub OIDC token. */
  pushAuth?: PushAuthenticator | undefined;
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_PUSH_BODY)
      throw new EtlError('bad_message', `push body larger than ${MAX_PUSH_BODY} bytes`, { stage: 'input' });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A request nobody can read: acked, since sending it again cannot help (the error table says so). */
function badMessage(message: string): TaskOutcome {
  return { disposition: ERRORS.bad_message.disposition, status: 'bad', code: 'bad_message', message };
}

function outcomeBody(o: TaskOutcome): Record<string, unknown> {
  return {
    status: o.status,
    disposition: o.disposition,
    ...(o.url ? { archive: o.url } : {}),
    ...(o.code ? { code: o.code } : {}),
    ...(o.message ? { message: o.message } : {}),
    ...(o.rows === undefined ? {} : { rows: o.rows }),
  };
}

interface Routes {
  worker: Worker;
  metrics: Metrics;
  logger: Logger;
  options: HttpOptions;
}

export async function startHttpServer(
  worker: Worker,
  metrics: Metrics,
  logger: Logger,
  options: HttpOptions,
): Promise<Server> {
  const routes: Routes = { worker, metrics, logger, options };
  const server = createServer((req, res) => {
    void route(routes, req, res).catch((err: unknown) => {
      logger.log('ERROR', 'http handler failed', { path: req.url?.split('?')[0], error: (err as Error).message });
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  return server;
}

async function route(routes: Routes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { worker, metrics, options } = routes;
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/metrics') {
    send(res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
  } else if (req.method === 'GET' && url.pathname === '/healthz') {
    send(res, 200, { status: 'alive' });
  } else if (req.method === 'GET' && url.pathname === '/readyz') {
    const ready = await worker.ready().catch(() => false);
    send(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready' });
  } else if (req.method === 'POST' && url.pathname === '/push') {
    await push(routes, req, res);
  } else if (req.method === 'GET' && url.pathname === '/v2/worker' && options.enableManualWorker) {
    await manual(routes, url, res);
  } else {
    send(res, 404, { error: 'not found' });
  }
}

/** POST /push: a Pub/Sub push delivery, acked (2xx) only once the archive is committed or cannot succeed. */
async function push(routes: Routes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { worker, metrics, logger, options } = routes;
  if (options.pushAuth) {
    const auth = await options.pushAuth.verify(req.headers.authorization);
    if (!auth.ok) {
      metrics.messages.inc({ trigger: 'push', outcome: 'unauthenticated' });
      logger.log('WARNING', 'push refused', { reason: auth.reason });
      send(res, auth.status, { status: 'unauthenticated' });
      return;
    }
  }
  if (worker.isStopping) {
    send(res, 503, { status: 'stopping' });
    return;
  }
  // The slot is taken before the body is read: a client that sends its headers and waits still
  // counts against --max-in-flight.
  const release = worker.reserve();
  if (!release) {
    // Pub/Sub push backs off on 429 and delivers again: the same bound as streaming pull.
    metrics.messages.inc({ trigger: 'push', outcome: 'busy' });
    send(res, 429, { status: 'busy' });
    return;
  }
  try {
    await pushIn(routes, req, res);
  } finally {
    release();
  }
}

/** A push request admitted to a slot: its envelope read and its archive processed in that slot. */
async function pushIn({ worker, metrics, logger }: Routes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let envelope: unknown;
  try {
    envelope = JSON.parse((await readBody(req)).toString('utf8')) as unknown;
    const message = (envelope as { message?: unknown } | null)?.message;
    if (message === null || typeof message !== 'object') {
      throw new EtlError('bad_message', 'push body has no "message" object: not a Pub/Sub push envelope', {
        stage: 'input',
      });
    }
  } catch (err) {
    // A body that is not a push envelope cannot come from Pub/Sub: refuse it so a misconfiguration shows.
    const message = err instanceof EtlError ? err.message : `push body is not JSON: ${(err as Error).message}`;
    metrics.messages.inc({ trigger: 'push', outcome: 'bad' });
    send(res, 400, { status: 'bad', code: 'bad_message', message });
    return;
  }
  let outcome: TaskOutcome;
  try {
    outcome = await worker.handle(pushMessage(envelope), 'push', { reserved: true });
  } catch (err) {
    // A message Pub/Sub delivered but nobody can read (bad base64, no attributes): redelivery cannot help.
    metrics.messages.inc({ trigger: 'push', outcome: 'bad' });
    logger.log('WARNING', 'bad message', { trigger: 'push', error: (err as Error).message });
    outcome = badMessage((err as Error).message);
  }
  send(res, pushStatus(outcome), outcomeBody(outcome));
}

/** GET /v2/worker?filename=gs://...: M-Lab's manual endpoint, answered once the archive is done. */
async function manual({ worker }: Routes, url: URL, res: ServerResponse): Promise<void> {
  const release = worker.reserve();
  if (!release) {
    send(res, 429, { status: 'busy' });
    return;
  }
  try {
    send(res, ...(await manualIn(worker, url)));
  } finally {
    release();
  }
}

async function manualIn(worker: Worker, url: URL): Promise<[number, Record<string, unknown>]> {
  const filename = url.searchParams.get('filename');
  let outcome: TaskOutcome;
  try {
    if (!filename) throw new EtlError('bad_message', 'filename=gs://... is required', { stage: 'input' });
    const { bucket, name } = parseGsUrl(filename);
    outcome = await worker.handle(
      { attributes: {}, data: Buffer.from(JSON.stringify({ filename: `gs://${bucket}/${name}` })) },
      'http',
      { reserved: true },
    );
  } catch (err) {
    outcome = badMessage((err as Error).message);
  }
  return [manualStatus(outcome), outcomeBody(outcome)];
}
