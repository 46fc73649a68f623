/**
 * Triggers: what a Pub/Sub message (streaming pull or push) or an HTTP request asks for, reduced
 * to one task type, "process archive gs://BUCKET/OBJECT at generation G". GCS sends an
 * OBJECT_FINALIZE notification per new object (attributes bucketId, objectId, objectGeneration,
 * eventType; data: the object resource); reprocessing sends `{"filename": "gs://..."}`.
 */
import { hasArchiveSuffix } from '../source/archive-path.js';
import { EtlError } from '../errors.js';
import type { GcsObjectRef } from '../source/gcs-source.js';

export type Trigger =
  | { kind: 'task'; object: GcsObjectRef }
  /** Acked and counted, not processed: another event type, or an object that is not an archive. */
  | { kind: 'ignored'; reason: 'event_type' | 'not_an_archive'; detail: string };

export interface PubSubLikeMessage {
  attributes: Record<string, string>;
  data: Buffer;
}

function badMessage(message: string): EtlError {
  return new EtlError('bad_message', message, { stage: 'input' });
}

/** Splits `gs://bucket/object`. */
export function parseGsUrl(url: string): { bucket: string; name: string } {
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m) throw badMessage(`${JSON.stringify(url)} is not a gs://bucket/object URL`);
  return { bucket: m[1] as string, name: m[2] as string };
}

function task(bucket: string, name: string, generation: string | null, size: number | null): Trigger {
  if (!hasArchiveSuffix(name)) return { kind: 'ignored', reason: 'not_an_archive', detail: `gs://${bucket}/${name}` };
  return { kind: 'task', object: { bucket, name, generation, size } };
}

function parseJson(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw badMessage(`message data is not JSON: ${(err as Error).message}`);
  }
}

function sizeOf(resource: unknown): number | null {
  const size = (resource as { size?: unknown } | null)?.size;
  const n = typeof size === 'string' || typeof size === 'number' ? Number(size) : NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** The task a message asks for. Throws EtlError('bad_message') when it asks for nothing intelligible. */
export function triggerOf(message: PubSubLikeMessage): Trigger {
  const a = message.attributes ?? {};
  if (a.eventType !== undefined) {
    if (a.eventType !== 'OBJECT_FINALIZE') return { kind: 'ignored', reason: 'event_type', detail: a.eventType };
    if (!a.bucketId || !a.objectId)
      throw badMessage('OBJECT_FINALIZE notification without bucketId or objectId attributes');
    const generation = a.objectGeneration && /^\d+$/.test(a.objectGeneration) ? a.objectGeneration : null;
    if (a.objectGeneration !== undefined && generation === null)
      throw badMessage(`objectGeneration ${JSON.stringify(a.objectGeneration)} is not a number`);
    // The data (object resource) is optional for us; its size lets a resumed read stop at the end.
    const size = message.data.length > 0 && a.payloadFormat === 'JSON_API_V1' ? sizeOf(safeJson(message.data)) : null;
    return task(a.bucketId, a.objectId, generation, size);
  }
  const body = parseJson(message.data);
  const filename = (body as { filename?: unknown } | null)?.filename;
  if (typeof filename !== 'string')
    throw badMessage('message has neither GCS notification attributes nor {"filename": "gs://..."} data');
  const { bucket, name } = parseGsUrl(filename);
  return task(bucket, name, null, null);
}

function safeJson(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch {
    return null;
  }
}

/** A Pub/Sub push request body: `{"message": {"attributes", "data": base64, "messageId"}, "subscription"}`. */
export function pushMessage(body: unknown): PubSubLikeMessage & { messageId: string | null } {
  const m = (body as { message?: unknown } | null)?.message as
    { attributes?: unknown; data?: unknown; messageId?: unknown } | undefined;
  if (m === null || typeof m !== 'object') throw badMessage('push body has no "message" object');
  const attributes: Record<string, string> = {};
  if (m.attributes !== undefined && m.attributes !== null) {
    if (typeof m.attributes !== 'object') throw badMessage('message.attributes is not an object');
    for (const [k, v] of Object.entries(m.attributes as Record<string, unknown>))
      if (typeof v === 'string') attributes[k] = v;
  }
  let data = Buffer.alloc(0);
  if (m.data !== undefined && m.data !== null) {
    if (typeof m.data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(m.data) || m.data.length % 4 !== 0) {
      throw badMessage('message.data is not base64');
    }
    data = Buffer.from(m.data, 'base64');
  }
  return { attributes, data, messageId: typeof m.messageId === 'string' ? m.messageId : null };
}
