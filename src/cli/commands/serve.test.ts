// serve's options as an operator sets them: flags, environment variables (a ConfigMap), defaults,
// and what a bad value does. Nothing here starts the worker.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../main.js';
import type { Io } from '../io.js';
import { serveConfigOf } from './serve.js';

const VARIABLES = [
  'MLAB_ETL_SUBSCRIPTION',
  'GOOGLE_CLOUD_PROJECT',
  'MLAB_ETL_ALLOW_BUCKETS',
  'MLAB_ETL_SINK',
  'PORT',
  'MLAB_ETL_MAX_IN_FLIGHT',
  'MLAB_ETL_GRACE_PERIOD',
  'MLAB_ETL_WORKERS',
  'MLAB_ETL_ENABLE_V2_WORKER',
  'MLAB_ETL_MAX_ENTRY_BYTES',
  'MLAB_ETL_LIMITS',
  'MLAB_ETL_PUSH_AUDIENCE',
  'MLAB_ETL_PUSH_SERVICE_ACCOUNT',
  'MLAB_ETL_PUSH_ANY_IDENTITY',
  'MLAB_ETL_READ_STALL_TIMEOUT',
];

let saved: Record<string, string | undefined> = {};
beforeEach(() => {
  saved = Object.fromEntries(VARIABLES.map((k) => [k, process.env[k]]));
  for (const k of VARIABLES) delete process.env[k];
});
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

async function serve(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { stdout: (t) => (out += t), stderr: (t) => (err += t), isTTY: false };
  const code = await run(['serve', ...argv], io);
  return { code, out, err };
}

const OK = ['--allow-bucket', 'ok-bucket', '--sink', 'jsonl:out'];

describe('serve configuration', () => {
  it('reads flags, then the environment, with defaults', () => {
    Object.assign(process.env, {
      MLAB_ETL_ALLOW_BUCKETS: 'archive-a, archive-b',
      PORT: '9090',
      MLAB_ETL_SUBSCRIPTION: 's',
      MLAB_ETL_SINK: 'bigquery:p',
    });
    expect(serveConfigOf([])).toMatchObject({
      allowBuckets: ['archive-a', 'archive-b'],
      port: 9090,
      subscription: 's',
      sink: 'bigquery:p',
      gracePeriodSeconds: 60,
      readStallSeconds: 60,
      workers: 0,
      enableManualWorker: false,
      maxEntryBytes: null,
      limits: {},
      pushAudience: null,
    });
    const flags = serveConfigOf(['--allow-bucket', 'x-y', '--allow-bucket', 'z-w', '--port', '1', '--sink', 'jsonl:o']);
    expect(flags).toMatchObject({ allowBuckets: ['x-y', 'z-w'], port: 1, sink: 'jsonl:o' });
  });

  it('takes an empty variable as unset, and turns the v2 endpoint on only when asked', () => {
    Object.assign(process.env, {
      MLAB_ETL_SUBSCRIPTION: '',
      PORT: '',
      MLAB_ETL_MAX_ENTRY_BYTES: '',
      MLAB_ETL_ENABLE_V2_WORKER: 'false',
      MLAB_ETL_LIMITS: 'maxJsonDepth=10, archiveTimeoutMs=5000',
    });
    expect(serveConfigOf(OK)).toMatchObject({
      subscription: null,
      port: 8080,
      maxEntryBytes: null,
      enableManualWorker: false,
      limits: { maxJsonDepth: 10, archiveTimeoutMs: 5000 },
    });
    // A --limit flag replaces the variable's limits.
    expect(serveConfigOf([...OK, '--limit', 'maxJsonDepth=20']).limits).toEqual({ maxJsonDepth: 20 });
    process.env.MLAB_ETL_ENABLE_V2_WORKER = 'TRUE';
    expect(serveConfigOf(OK).enableManualWorker).toBe(true);
    delete process.env.MLAB_ETL_ENABLE_V2_WORKER;
    expect(serveConfigOf([...OK, '--enable-v2-worker']).enableManualWorker).toBe(true);
  });

  it('stops with exit code 2 and a message naming the bad option', async () => {
    const none = await serve();
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/--allow-bucket \(or MLAB_ETL_ALLOW_BUCKETS\) is required/);
    expect((await serve('--allow-bucket', 'ok-bucket')).err).toMatch(/--sink \(or MLAB_ETL_SINK\) is required/);
    const port = await serve(...OK, '--port', 'eighty');
    expect(port.code).toBe(2);
    expect(port.err).toContain(
      "option '--port <n>' argument 'eighty' is invalid. Expected an integer from 0 to 65535.",
    );
    expect((await serve('--allow-bucket', 'Bad_Bucket!', '--sink', 'jsonl:out')).err).toContain(
      `option '--allow-bucket <bucket>' argument 'Bad_Bucket!' is invalid. "Bad_Bucket!" is not a bucket name.`,
    );
    expect((await serve(...OK, '--max-in-flight', '0')).err).toMatch(/'--max-in-flight <n>' argument '0' is invalid/);
    expect((await serve(...OK, '--limit', 'maxJsonDepth=deep')).err).toMatch(/--limit maxJsonDepth=deep: expected/);
    process.env.PORT = 'eighty';
    const fromEnv = await serve(...OK);
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.err).toContain("option '--port <n>' value 'eighty' from env 'PORT' is invalid.");
    delete process.env.PORT;
    process.env.MLAB_ETL_ENABLE_V2_WORKER = 'maybe';
    expect((await serve(...OK)).err).toMatch(/'--enable-v2-worker \[true\|false\]' value 'maybe' from env/);
  });

  it('--help lists each option with its environment variable and default', async () => {
    const help = await serve('--help');
    expect(help.code).toBe(0);
    // As one line: the help is wrapped to the terminal's width.
    const text = help.out.replace(/\s+/g, ' ');
    for (const v of VARIABLES) expect(text).toContain(`env: ${v})`);
    expect(text).toMatch(/--port <n> HTTP port [^(]*\(default: 8080, env: PORT\)/);
    expect(text).toContain('(default: the number of cores, env: MLAB_ETL_MAX_IN_FLIGHT)');
  });

  it('refuses --push-audience alone (any Google identity would pass) unless told so, and an account without an audience', async () => {
    const OKS = ['--allow-bucket', 'archive-mlab-test', '--sink', 'jsonl:/tmp/x', '--push-audience', 'https://w/push'];
    const alone = await serve(...OKS);
    expect(alone.code).toBe(2);
    expect(alone.err).toContain('--push-audience alone accepts a token of any Google identity');
    expect(serveConfigOf([...OKS, '--push-service-account', 'push@p.iam.gserviceaccount.com'])).toMatchObject({
      pushAudience: 'https://w/push',
      pushServiceAccount: 'push@p.iam.gserviceaccount.com',
    });
    expect(serveConfigOf([...OKS, '--push-any-identity'])).toMatchObject({ pushServiceAccount: null });
    process.env.MLAB_ETL_PUSH_ANY_IDENTITY = 'true';
    expect(serveConfigOf(OKS)).toMatchObject({ pushAudience: 'https://w/push' });
    delete process.env.MLAB_ETL_PUSH_ANY_IDENTITY;
    const noAudience = await serve(
      '--allow-bucket',
      'b-ok',
      '--sink',
      'jsonl:/tmp/x',
      '--push-service-account',
      'a@b.c',
    );
    expect(noAudience.code).toBe(2);
    expect(noAudience.err).toContain('--push-service-account needs --push-audience');
  });
});
