/** Small helpers the end-to-end tests share. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { File } from '@google-cloud/storage';
import { OAuth2Client } from 'google-auth-library';
import { PACKAGE_ROOT } from '../../src/package-info.js';

/** Polls until `f` gives a truthy value; fails naming what it waited for after `timeoutMs`. */
export async function waitFor<T>(what: string, f: () => T | Promise<T>, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function tempDir(tag = 'test'): string {
  return mkdtempSync(path.join(os.tmpdir(), `mlab-etl-${tag}-`));
}

/**
 * The records of a JSONL file; none when it does not exist yet. A sink writes whole lines, so a
 * last line without its newline is an error, unless `writing`: the file is read while a process
 * appends to it, and that line is still being written (it is left for the next read).
 */
export function readJsonl<T = Record<string, unknown>>(file: string, { writing = false } = {}): T[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  const end = text.lastIndexOf('\n') + 1;
  if (end < text.length && !writing) throw new Error(`${file}: the last line has no newline`);
  return text
    .slice(0, end)
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}

/** `work`, or a rejection naming what hung after `ms`. */
export async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms (a hang)`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** An auth client holding a dummy token: what the BigQuery client needs to talk to the test server. */
export function dummyAuthClient(): OAuth2Client {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'test', expiry_date: Date.now() + 3_600_000 });
  return auth;
}

/** The bundled archives (testdata/archives), by their path under the bucket: what end-to-end tests upload. */
export const BUNDLED = {
  dir: path.join(PACKAGE_ROOT, 'testdata/archives/mlab-sandbox'),
  switch: 'utilization/switch/2021/12/14/20211214T030000.000000Z-switch-mlab2-dfw07-utilization.tgz',
  ndt7: 'ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz',
  annotation2: 'ndt/annotation2/2020/03/18/20200318T010000.000000Z-annotation2-mlab3-syd03-ndt.tgz',
} as const;

/**
 * Uploads a test's input object to the Storage emulator (`resumable: false`, one request),
 * again if the connection is reset before an answer. Once in seven full test runs here, an
 * upload in the first second of a test (which had just started a Pub/Sub emulator) failed with
 * "socket hang up"; the cause is not known (the emulator keeps idle connections 65 s, see
 * emulators.ts). Only the tests' own staging retries: what mlab-etl reads goes through its own
 * resuming reader.
 */
export async function uploadObject(file: File, bytes: Buffer, options: { contentType?: string } = {}): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await file.save(bytes, { resumable: false, ...options });
      return;
    } catch (err) {
      const reset = (err as { code?: string }).code === 'ECONNRESET' || /socket hang up/.test(String(err));
      if (!reset || attempt >= 3) throw err;
    }
  }
}

/**
 * The command from source (`node --import tsx src/cli/main.ts ARGS`) in a child process, with
 * these environment variables added; `output()` is what it printed on stdout and stderr, and
 * `exited` its exit code (-1 when a signal ended it).
 */
export function spawnCli(
  args: string[],
  env: Record<string, string> = {},
): { child: ChildProcess; exited: Promise<number>; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(PACKAGE_ROOT, 'src/cli/main.ts'), ...args], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
  return { child, exited, output: () => output };
}
