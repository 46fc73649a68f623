/** Errors in BigQuery's shape: the reply body the REST API sends with a 4xx or 5xx. */

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS',
  412: 'FAILED_PRECONDITION',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE',
};

/** An error reply; thrown by handlers, turned into BigQuery's error body by the dispatcher. */
export class BigQueryApiError extends Error {
  override name = 'BigQueryApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly extra: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): unknown {
    const status = STATUS_NAMES[this.status];
    return {
      error: {
        code: this.status,
        message: this.message,
        errors: [{ message: this.message, domain: 'global', reason: this.reason, ...this.extra }],
        ...(status ? { status } : {}),
      },
    };
  }
}

export const invalid = (message: string): BigQueryApiError => new BigQueryApiError(400, 'invalid', message);
export const notFound = (message: string): BigQueryApiError => new BigQueryApiError(404, 'notFound', message);
