/**
 * Which BigQuery failures are worth another try, and the one backoff every call of the sink
 * follows: exponential with full jitter, only for 5xx, 408, 429, 403 quota/rate/backend reasons
 * and connection failures; other 4xx fail at once. (The client's own retries are off: its
 * policy never retries 403 quotaExceeded and stacks its attempts under these.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { apiError, messageOf, reasonOf, statusOf } from './errors.js';
import type { BigQuerySinkStats, SinkObserver } from './stats.js';

export interface RetryPolicy {
  /** Tries per request, the first included. */
  attempts: number;
  /** The first backoff's upper bound (ms); each further one doubles, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseDelayMs: 250, maxDelayMs: 32_000 };

/** 403 reasons that mean "later", unlike accessDenied or billingNotEnabled. */
const RETRYABLE_403 = new Set(['quotaExceeded', 'rateLimitExceeded', 'backendError']);
/** Per-row reasons that mean the row itself is fine. */
const RETRYABLE_ROW = new Set(['backendError', 'internalError', 'timeout', 'rateLimitExceeded', 'quotaExceeded']);
const NETWORK_ERROR = /^(E[A-Z]+|ERR_[A-Z_]+|UND_ERR[A-Z_]*)$/;

export type Verdict = 'retry' | 'too-large' | 'fatal';

/** What to do about a failed request: the one place that decides which BigQuery and HTTP errors are retried. */
export function classify(err: unknown): Verdict {
  const status = statusOf(err);
  if (status === 413 || (status === 400 && /payload size exceeds/i.test(messageOf(err)))) return 'too-large';
  if (status !== undefined) {
    if (status >= 500 || status === 429 || status === 408) return 'retry';
    if (status === 403 && RETRYABLE_403.has(reasonOf(err) ?? '')) return 'retry';
    return 'fatal';
  }
  // No HTTP status: the request did not get an answer (reset, timeout, DNS). insertIds make resending safe.
  const e = apiError(err);
  if (typeof e.code === 'string' && NETWORK_ERROR.test(e.code)) return 'retry';
  if (e.name === 'FetchError' || e.name === 'AbortError' || e.type === 'request-timeout') return 'retry';
  return 'fatal';
}

/**
 * What to do about a row of an insertAll response that has errors: `resend` when BigQuery only
 * stopped it because of other rows, `retry` when its reasons pass with time, `refused` otherwise.
 */
export function rowVerdict(reasons: string[]): 'resend' | 'retry' | 'refused' {
  if (reasons.every((r) => r === 'stopped')) return 'resend';
  if (reasons.every((r) => r === 'stopped' || RETRYABLE_ROW.has(r))) return 'retry';
  return 'refused';
}

/** A bounded label for a retried failure: the HTTP status, or the transport error code. */
export function retryReason(err: unknown): string {
  const e = err as { code?: unknown; response?: { status?: number } };
  const status = e?.response?.status ?? (typeof e?.code === 'number' ? e.code : undefined);
  if (typeof status === 'number') return String(status);
  return typeof e?.code === 'string' && /^[A-Z_]+$/.test(e.code) ? e.code : 'network';
}

/** The retry policy at work: counts and reports every retry, and waits before it. */
export class Retrier {
  constructor(
    readonly policy: RetryPolicy,
    private readonly stats: BigQuerySinkStats,
    private readonly observer: SinkObserver | undefined,
  ) {}

  /** Whether a request that failed on this attempt (0 = the first) may be tried again. */
  canRetry(attempt: number): boolean {
    return attempt + 1 < this.policy.attempts;
  }

  /** Counts a retry labelled `reason` and waits the backoff of this attempt. */
  async wait(attempt: number, reason: string): Promise<void> {
    this.stats.retries++;
    this.observer?.retry(reason);
    await sleep(Math.random() * Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** attempt));
  }

  /** Runs a metadata call under the retry policy. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (classify(err) !== 'retry' || !this.canRetry(attempt)) throw err;
        await this.wait(attempt, retryReason(err));
      }
    }
  }
}
