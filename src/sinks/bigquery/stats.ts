/** What the BigQuery sink tells metrics: counters, and a call per request and per retry. */

export interface SinkObserver {
  request(operation: string, seconds: number, outcome: 'ok' | 'error'): void;
  retry(reason: string): void;
}

/** Counters for metrics. */
export interface BigQuerySinkStats {
  requests: number;
  retries: number;
  splits: number;
  rowsInserted: number;
  rowsRejected: number;
}
