/**
 * What an outcome means for its trigger, decided in one place: a Pub/Sub message is acked or
 * nacked, an HTTP request answered with a status. Retryable failures (a service unavailable, a
 * schema to fix) are nacked so Pub/Sub redelivers them and its dead-letter topic catches what keeps
 * failing; permanent ones (corrupt data, unknown datatype, bucket not allowed) are acked, after
 * the ledger has recorded them, because redelivery cannot fix them.
 */
import type { ErrorCode } from '../errors.js';

export type Disposition = 'ack' | 'nack';

export interface TaskOutcome {
  disposition: Disposition;
  /** ok / partial / failed: an archive was processed; ignored: nothing to do; bad: unintelligible request. */
  status: 'ok' | 'partial' | 'failed' | 'ignored' | 'bad';
  url?: string;
  code?: ErrorCode | undefined;
  message?: string | undefined;
  rows?: number;
}

/** Status for Pub/Sub push: 2xx acks (only once the archive is committed or cannot succeed), 5xx asks for redelivery. */
export function pushStatus(o: TaskOutcome): number {
  return o.disposition === 'ack' ? 200 : 503;
}

const MANUAL_STATUS: Partial<Record<ErrorCode, number>> = {
  bad_message: 400,
  bad_archive_path: 400,
  bucket_not_allowed: 403,
  object_not_found: 404,
};

/** Status for the manual `/v2/worker` endpoint: unlike M-Lab's, a failed archive is an error status. */
export function manualStatus(o: TaskOutcome): number {
  if (o.disposition === 'nack') return 503;
  if (o.status === 'ok') return 200;
  if (o.status === 'partial') return 207;
  if (o.status === 'ignored') return 400;
  return (o.code && MANUAL_STATUS[o.code]) ?? 422;
}
