/**
 * Failures and latency programmed by tests: whole requests answered with an error status and
 * BigQuery's error body (the next n, or at a seeded rate), per-row errors for rows that passed
 * validation, and time added before a route's replies.
 */
import { BigQueryApiError } from './errors.js';
import type { FaultSpec, RouteName, RowError, RowFaultContext } from './types.js';

const DEFAULT_FAULT_REASONS: Record<number, string> = {
  403: 'quotaExceeded',
  413: 'requestTooLarge',
  429: 'rateLimitExceeded',
  500: 'backendError',
  503: 'backendError',
};

const DEFAULT_MESSAGES: Record<string, string> = {
  quotaExceeded:
    'Quota exceeded: Your table exceeded quota for streaming insert bytes per table. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas',
  rateLimitExceeded:
    'Exceeded rate limits: too many api requests per user per method for this user_method. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas',
  backendError: 'Error encountered during execution. Retrying may solve the problem.',
  requestTooLarge: 'Request Too Large',
  internalError: 'An internal error occurred and the request could not be completed.',
  invalid: 'Invalid request.',
  timeout: 'Request timed out.',
};

/** mulberry32: small, seedable, good enough to pick which requests fail. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface CountRule {
  remaining: number;
  spec: FaultSpec;
}
interface RateRule {
  probability: number;
  spec: FaultSpec;
  random: () => number;
}
interface RowRule {
  select: number | ((row: RowFaultContext) => boolean);
  reason: string;
  message: string;
}

/** Failures programmed by tests. Rules are checked in the order they were added. */
export class BigQueryFaults {
  private countRules: CountRule[] = [];
  private rateRules: RateRule[] = [];
  private rowRules: RowRule[] = [];
  private latencies = new Map<RouteName | 'any', number>();

  constructor(
    private readonly defaultSeed: number,
    defaultLatencyMs: number,
  ) {
    if (defaultLatencyMs > 0) this.latencies.set('tabledata.insertAll', defaultLatencyMs);
  }

  /** The next `count` matching requests fail with this status and BigQuery's error body. */
  failNext(count: number, spec: FaultSpec): this {
    checkSpec(spec);
    if (!Number.isInteger(count) || count < 0) throw new RangeError('failNext: count must be a non-negative integer');
    this.countRules.push({ remaining: count, spec });
    return this;
  }

  /** Each matching request fails with this probability, drawn from a seeded random: the same seed fails the same requests. */
  failRate(probability: number, spec: FaultSpec, seed = this.defaultSeed): this {
    checkSpec(spec);
    if (!(probability >= 0 && probability <= 1)) throw new RangeError('failRate: probability must be within [0, 1]');
    this.rateRules.push({ probability, spec, random: seededRandom(seed) });
    return this;
  }

  /**
   * Rows that pass validation come back as per-row insertErrors with this reason: the next
   * `count` such rows, or those the predicate picks. They are not stored.
   */
  rowErrors(select: number | ((row: RowFaultContext) => boolean), reason = 'backendError', message?: string): this {
    if (typeof select === 'number' && (!Number.isInteger(select) || select < 0)) {
      throw new RangeError('rowErrors: count must be a non-negative integer');
    }
    this.rowRules.push({ select, reason, message: message ?? DEFAULT_MESSAGES[reason] ?? `Injected ${reason}.` });
    return this;
  }

  /** Extra time before every reply of the route (ms); insertAll unless a route is given. */
  latency(ms: number, route: RouteName | 'any' = 'tabledata.insertAll'): this {
    if (!(ms >= 0)) throw new RangeError('latency: ms must be >= 0');
    this.latencies.set(route, ms);
    return this;
  }

  /** Removes every rule and latency. */
  clear(): this {
    this.countRules = [];
    this.rateRules = [];
    this.rowRules = [];
    this.latencies.clear();
    return this;
  }

  /** @internal The fault for this request, if any; consumes a count. */
  takeRequestFault(route: RouteName): BigQueryApiError | undefined {
    const matches = (spec: FaultSpec): boolean =>
      (spec.route ?? 'tabledata.insertAll') === 'any' || (spec.route ?? 'tabledata.insertAll') === route;
    for (const rule of this.countRules) {
      if (rule.remaining > 0 && matches(rule.spec)) {
        rule.remaining--;
        return faultError(rule.spec);
      }
    }
    for (const rule of this.rateRules) {
      if (matches(rule.spec) && rule.random() < rule.probability) return faultError(rule.spec);
    }
    return undefined;
  }

  /** @internal The injected error of a valid row, if any; consumes a count. */
  takeRowFault(row: RowFaultContext): RowError | undefined {
    for (const rule of this.rowRules) {
      let hit: boolean;
      if (typeof rule.select === 'number') {
        hit = rule.select > 0;
        if (hit) rule.select--;
      } else {
        hit = rule.select(row);
      }
      if (hit) return { reason: rule.reason, location: '', message: rule.message };
    }
    return undefined;
  }

  /** @internal */
  latencyFor(route: RouteName): number {
    return this.latencies.get(route) ?? this.latencies.get('any') ?? 0;
  }
}

function checkSpec(spec: FaultSpec): void {
  if (!Number.isInteger(spec.status) || spec.status < 400 || spec.status > 599) {
    throw new RangeError(`fault status must be an HTTP error status, got ${spec.status}`);
  }
}

function faultError(spec: FaultSpec): BigQueryApiError {
  const reason = spec.reason ?? DEFAULT_FAULT_REASONS[spec.status] ?? (spec.status >= 500 ? 'backendError' : 'invalid');
  return new BigQueryApiError(spec.status, reason, spec.message ?? DEFAULT_MESSAGES[reason] ?? `Injected ${reason}.`);
}
