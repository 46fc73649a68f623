/**
 * What a BigQuery failure says (status, reason, message) and the EtlErrors the sink throws for
 * it. Every EtlError of the sink is made by sinkError, so whether one is retryable is decided in
 * one place: retryableFor.
 */
import { ERRORS, EtlError, type ErrorCode } from '../../errors.js';

interface ApiErrorLike {
  code?: unknown;
  message?: unknown;
  name?: unknown;
  type?: unknown;
  errors?: Array<{ reason?: unknown; message?: unknown }>;
}

/** A per-row error of an insertAll response. */
export interface InsertError {
  index: number;
  errors?: Array<{ reason?: string; location?: string; message?: string }>;
}

export function apiError(err: unknown): ApiErrorLike {
  return err !== null && typeof err === 'object' ? err : {};
}

export function statusOf(err: unknown): number | undefined {
  const code = apiError(err).code;
  return typeof code === 'number' ? code : undefined;
}

export function reasonOf(err: unknown): string | undefined {
  const reason = apiError(err).errors?.[0]?.reason;
  return typeof reason === 'string' ? reason : undefined;
}

export function messageOf(err: unknown): string {
  const m = apiError(err).message;
  return typeof m === 'string' ? m : String(err);
}

export function describe(err: unknown): string {
  const status = statusOf(err);
  const reason = reasonOf(err);
  return `${status === undefined ? '' : `${status} `}${reason ? `${reason}: ` : ''}${messageOf(err)}`;
}

export function rowErrorText(e: InsertError): string {
  return (e.errors ?? [])
    .filter((x) => x.reason !== 'stopped')
    .map((x) => `${x.reason ?? 'unknown'}${x.location ? ` at ${x.location}` : ''}: ${x.message ?? ''}`)
    .join('; ');
}

/**
 * Whether an error of the sink may succeed when the archive is processed again. `transient`
 * says whether the BigQuery failure behind it was one that passes (see classify in retry.ts), and
 * the error table whether the code can pass at all (sink_error can; a schema conflict or a bug
 * stays until someone changes something).
 */
export function retryableFor(code: ErrorCode, transient: boolean): boolean {
  return transient && ERRORS[code].retry === 'transient';
}

export function sinkError(
  code: ErrorCode,
  message: string,
  options: { cause?: unknown; transient?: boolean } = {},
): EtlError {
  return new EtlError(code, message, {
    stage: 'sink',
    ...(options.cause === undefined ? {} : { cause: options.cause }),
    retryable: retryableFor(code, options.transient ?? false),
  });
}

/** Anything thrown as an EtlError: an EtlError as it is, anything else a sink_error that is not retryable. */
export function asSinkError(err: unknown, description: string): EtlError {
  return err instanceof EtlError ? err : sinkError('sink_error', `${description}: ${messageOf(err)}`, { cause: err });
}
