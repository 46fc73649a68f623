/** Structured logs: one JSON object a line, with Cloud Logging's `severity`, a short message and fields. */
export type Severity = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';

export interface Logger {
  log(severity: Severity, message: string, fields?: Record<string, unknown>): void;
}

export function jsonLogger(write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  return {
    log(severity, message, fields = {}) {
      write(
        `${JSON.stringify({ severity, time: new Date().toISOString(), message, ...fields }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`,
      );
    },
  };
}

export const silentLogger: Logger = { log: () => {} };
