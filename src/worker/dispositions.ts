/**
 * What an outcome means for its trigger, decided in one place: a Pub/Sub message is acked or
 * nacked, an HTTP request answered with a status. Retryable failures (a service unavailable, a
 * schema to fix) are nacked so Pub/Sub redelivers them and its dead-letter topic catches what keeps
 * failing; permanent ones (corrupt data, unknown datatype, bucket not allowed) are acked, after
 * the ledger has recorded them, because redelivery cannot fix them. Which code is which, and the
 * manual endpoint's status for it, is in the error table (src/errors.ts).
 */
import { ERRORS, type Disposition, type ErrorCode } from '../errors.js';

export type { Disposition };

export interface TaskOutcome {
  disposition: Disposition;
  /**
   * ok / partial / failed: an archive was processed; ignored: nothing to do; bad: unintelligible
   * request; refused: an archive not to be read here (a bucket not allowed, a path that is not
   * M-Lab's, a datatype not registered), refused before anything is read or created.
   */
  status: 'ok' | 'partial' | 'failed' | 'ignored' | 'bad' | 'refused';
  url?: string;
  code?: ErrorCode | undefined;
  message?: string | undefined;
  rows?: number;
}

/** Status for Pub/Sub push: 2xx acks (only once the archive is committed or cannot succeed), 5xx asks for redelivery. */
export function pushStatus(o: TaskOutcome): number {
  return o.disposition === 'ack' ? 200 : 503;
}

/** Status for the manual `/v2/worker` endpoint: unlike M-Lab's, a failed archive is an error status. */
export function manualStatus(o: TaskOutcome): number {
  if (o.disposition === 'nack') return 503;
  if (o.status === 'ok') return 200;
  if (o.status === 'partial') return 207;
  if (o.status === 'ignored') return 400;
  return o.code ? ERRORS[o.code].manualStatus : 422;
}
