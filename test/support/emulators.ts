/**
 * Local stand-ins for the Google Cloud services the worker talks to, for end-to-end tests.
 *
 * - Pub/Sub: the real emulator JVM shipped with the machine image's Google Cloud SDK, spawned
 *   directly (not through `gcloud`, which leaves the JVM behind when killed).
 * - Cloud Storage: firebase-tools' Storage emulator, run in this process. It is plain Node; only
 *   its Firebase security-rules runtime (a downloaded Java jar) is replaced with no-ops, because
 *   the Cloud Storage JSON API routes it serves never consult rules.
 *
 * Environment the worker must honour (and nothing else) to run against these emulators; the
 * client libraries read them when a client is constructed, so set them before `new PubSub()` /
 * `new Storage()`:
 * - `PUBSUB_EMULATOR_HOST=127.0.0.1:PORT`: @google-cloud/pubsub switches to plaintext gRPC and
 *   never asks for credentials.
 * - `STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT`: @google-cloud/storage sends unauthenticated
 *   requests to that origin. The scheme is required (without it the client assumes https), and
 *   it must be this variable rather than `apiEndpoint`, so the same worker code runs in both places.
 * - `GOOGLE_CLOUD_PROJECT`: the Pub/Sub client needs a project to name topics and subscriptions;
 *   without it, it asks google-auth-library, which may shell out to `gcloud`. Storage object
 *   reads and writes need no project.
 * - `METADATA_SERVER_DETECTION=none`: stops google-auth-library from probing the GCE metadata
 *   server (seconds of timeouts off Google Cloud).
 *
 * Neither client needs credentials when pointed at an emulator. {@link childProcessEnv} sets
 * `GOOGLE_APPLICATION_CREDENTIALS` to a path that does not exist, so a worker under test that
 * tries to authenticate anyway fails loudly instead of reaching a real project with a
 * developer's credentials.
 *
 * Storage emulator behaviour that differs from Cloud Storage (see emulators.test.ts):
 * - `generation` is ignored on reads: an old or made-up generation returns the current bytes
 *   instead of 404. Generations are millisecond timestamps (GCS: microseconds).
 * - A range the object cannot satisfy (start at or past the end, or start > end) returns the
 *   whole object with status 200 instead of 416.
 * - It sends no `x-goog-stored-content-encoding` header, so @google-cloud/storage silently skips
 *   crc32c/md5 validation of whole-object reads: corruption is not detected.
 * - Each request is answered from one in-memory buffer: it cannot cut a stream midway. Tests of
 *   resuming need a fault-injecting proxy in front of it.
 * - It sends no Pub/Sub notifications: tests publish {@link objectFinalizeNotification} themselves.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Project used by both emulators; `demo-` keeps firebase-tools from calling Firebase APIs. */
export const DEFAULT_PROJECT_ID = 'demo-mlab-etl';

export const DEFAULT_PUBSUB_EMULATOR_BIN =
  '/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator';

export interface PubSubEmulator {
  /** `127.0.0.1:PORT`, the value for `PUBSUB_EMULATOR_HOST`. */
  host: string;
  projectId: string;
  /** The JVM's process id: the launcher script `exec`s java. */
  pid: number;
  stop(): Promise<void>;
}

export interface GcsEmulator {
  /** `http://127.0.0.1:PORT`, the value for `STORAGE_EMULATOR_HOST`. */
  host: string;
  projectId: string;
  stop(): Promise<void>;
  /** Deletes every object and bucket. */
  reset(): Promise<void>;
}

export interface PubSubEmulatorOptions {
  /** Defaults to `$PUBSUB_EMULATOR_BIN`, then {@link DEFAULT_PUBSUB_EMULATOR_BIN}. */
  binary?: string;
  projectId?: string;
  startTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL on stop. */
  stopGraceMs?: number;
}

const STDERR_TAIL_CHARS = 4000;
const PORT_ATTEMPTS = 3;

/** Starts the Pub/Sub emulator on a free loopback port and resolves once it answers `Ok`. */
export async function startPubSubEmulator(options: PubSubEmulatorOptions = {}): Promise<PubSubEmulator> {
  const binary = options.binary ?? process.env['PUBSUB_EMULATOR_BIN'] ?? DEFAULT_PUBSUB_EMULATOR_BIN;
  checkPubSubPrerequisites(binary);
  const projectId = options.projectId ?? DEFAULT_PROJECT_ID;
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const stopGraceMs = options.stopGraceMs ?? 5_000;

  // Another process can take the port between probing it and the JVM binding it.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await launchPubSub(binary, port, projectId, startTimeoutMs, stopGraceMs);
    } catch (err) {
      if (!(err instanceof PortInUseError) || attempt >= PORT_ATTEMPTS) throw err;
    }
  }
}

class PortInUseError extends Error {}

async function launchPubSub(
  binary: string,
  port: number,
  projectId: string,
  startTimeoutMs: number,
  stopGraceMs: number,
): Promise<PubSubEmulator> {
  // Not detached: Ctrl-C in a terminal then reaches the JVM too, as it shares our process group.
  // `--host=127.0.0.1` matters: the default `localhost` binds only [::1] and the Node client
  // then hangs without an error.
  const child = spawn(binary, [`--host=127.0.0.1`, `--port=${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The emulator logs every connection: the pipes must be drained or the JVM blocks on a full
  // pipe; only a tail is kept for error messages.
  let tail = '';
  const keepTail = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-STDERR_TAIL_CHARS);
  };
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);

  let ended = false;
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => {
      ended = true;
      resolve(`could not spawn ${binary}: ${err.message}`);
    });
    child.once('exit', (code, signal) => {
      ended = true;
      resolve(`exited early (code ${code}, signal ${signal})`);
    });
  });
  const killOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  // Last resort if a test run ends without calling stop(); does not cover SIGKILL of this process.
  process.once('exit', killOnExit);

  const host = `127.0.0.1:${port}`;
  const started = await Promise.race([
    waitForOk(`http://${host}/`, startTimeoutMs, () => ended).then((ok) =>
      ok ? null : `not ready within ${startTimeoutMs} ms`,
    ),
    exited,
  ]);
  if (started !== null) {
    await terminate(child, stopGraceMs);
    process.removeListener('exit', killOnExit);
    const message = `Pub/Sub emulator ${binary} on ${host} ${started}; output tail:\n${tail}`;
    throw /BindException|Address already in use/i.test(tail) ? new PortInUseError(message) : new Error(message);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`Pub/Sub emulator ${binary} has no pid`);
  return {
    host,
    projectId,
    pid,
    stop: async () => {
      await terminate(child, stopGraceMs);
      process.removeListener('exit', killOnExit);
    },
  };
}

/** Fails with what is missing, so CI without the SDK or Java fails instead of skipping. */
function checkPubSubPrerequisites(binary: string): void {
  if (!isExecutable(binary)) {
    throw new Error(
      `Pub/Sub emulator not found or not executable: ${binary} (install the Google Cloud SDK ` +
        `pubsub-emulator component, or set PUBSUB_EMULATOR_BIN)`,
    );
  }
  // Mirrors the launcher script: JAVA_HOME wins when set, otherwise `java` on PATH.
  const javaHome = process.env['JAVA_HOME'];
  if (javaHome) {
    const java = join(javaHome, 'bin', 'java');
    if (!isExecutable(java))
      throw new Error(`Java for the Pub/Sub emulator not found: JAVA_HOME is set but ${java} is not executable`);
    return;
  }
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
  if (!dirs.some((d) => isExecutable(join(d, 'java')))) {
    throw new Error('Java for the Pub/Sub emulator not found: JAVA_HOME is not set and there is no `java` on PATH');
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function waitForOk(url: string, timeoutMs: number, gaveUp: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !gaveUp()) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      if (res.ok && (await res.text()).trim() === 'Ok') return true;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  return false;
}

async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** A port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

// firebase-tools ships CommonJS without type declarations; these describe the internals used
// here, from firebase-tools 15.34.2 (pinned exactly for that reason).
interface StorageEmulatorArgs {
  host: string;
  port: number;
  projectId: string;
  /** An array selects the per-bucket rules manager, which with no entries watches no files. */
  rules: unknown[];
  auto_download: boolean;
}
interface StorageEmulatorInstance {
  start(): Promise<void>;
  getName(): string;
  getPersistenceTmpDir(): string;
  _rulesRuntime: { start(autoDownload?: boolean): Promise<void>; stop(): Promise<void> };
  _rulesManager: { start(): Promise<unknown>; stop(): Promise<void>; getRuleset(resource: string): unknown };
}
type StorageEmulatorClass = new (args: StorageEmulatorArgs) => StorageEmulatorInstance;
interface EmulatorRegistryStatic {
  start(instance: StorageEmulatorInstance): Promise<void>;
  stop(name: string): Promise<void>;
  isRunning(name: string): boolean;
}

const STORAGE = 'storage';
/** How long the Storage emulator keeps an idle connection open: longer than any client keeps one. */
const IDLE_CONNECTION_MS = 65_000;
const requireCjs = createRequire(import.meta.url);

/**
 * Starts firebase-tools' Storage emulator in this process on a free loopback port.
 *
 * firebase-tools keeps emulators in a process-wide registry, so one process runs at most one
 * at a time (vitest runs each test file in its own worker).
 */
export async function startGcsEmulator(options: { projectId?: string } = {}): Promise<GcsEmulator> {
  const projectId = options.projectId ?? DEFAULT_PROJECT_ID;
  // Listing buckets of a non-demo project calls the Firebase management API.
  if (!projectId.startsWith('demo-')) throw new Error(`GCS emulator projectId must start with "demo-": ${projectId}`);
  const { StorageEmulator } = requireCjs('firebase-tools/lib/emulator/storage') as {
    StorageEmulator: StorageEmulatorClass;
  };
  const { EmulatorRegistry } = requireCjs('firebase-tools/lib/emulator/registry') as {
    EmulatorRegistry: EmulatorRegistryStatic;
  };
  if (EmulatorRegistry.isRunning(STORAGE)) {
    throw new Error('a Storage emulator is already running in this process; stop it first');
  }

  // Upstream stores blobs in the fixed `$TMPDIR/firebase/storage/blobs` and deletes that whole
  // directory on stop, which would wipe the objects of an emulator in another test worker.
  const blobDir = await mkdtemp(join(tmpdir(), 'mlab-etl-gcs-'));
  const firebaseUtils = requireCjs('firebase-tools/lib/utils') as { createDestroyer: (server: Server) => unknown };
  class IsolatedStorageEmulator extends StorageEmulator {
    override getPersistenceTmpDir(): string {
      return blobDir;
    }

    /**
     * Node's HTTP client keeps idle sockets for up to 5 s, and Node's server closes idle
     * connections after 5 s too: a request sent on a socket the emulator was closing at that
     * moment failed with "socket hang up", after any pause of about 5 s in a test (it happened in
     * the Pub/Sub outage test, on every retry: each took another such socket). A server that
     * keeps connections longer than its clients leaves the closing to them, as production
     * servers do. The server object is only reachable where upstream's start() hands it over.
     */
    override async start(): Promise<void> {
      const createDestroyer = firebaseUtils.createDestroyer;
      firebaseUtils.createDestroyer = (server: Server) => {
        server.keepAliveTimeout = IDLE_CONNECTION_MS;
        server.headersTimeout = IDLE_CONNECTION_MS + 1_000;
        return createDestroyer(server);
      };
      try {
        await super.start();
      } finally {
        firebaseUtils.createDestroyer = createDestroyer;
      }
    }
  }

  // Should another process take the port first, firebase-tools' listen error is unhandled and
  // ends this process: the window is the few milliseconds since freePort().
  const port = await freePort();
  const emu = new IsolatedStorageEmulator({ host: '127.0.0.1', port, projectId, rules: [], auto_download: false });
  // The rules runtime is a Java jar firebase-tools would download; the JSON API routes use an
  // admin layer that allows everything, so rules are never evaluated.
  emu._rulesRuntime.start = async () => {};
  emu._rulesRuntime.stop = async () => {};
  emu._rulesManager = { start: async () => undefined, stop: async () => {}, getRuleset: () => undefined };
  try {
    // Through the registry, not emu.start(): media links and URLs are built from its entry.
    await EmulatorRegistry.start(emu);
  } catch (err) {
    await EmulatorRegistry.stop(STORAGE);
    await rm(blobDir, { recursive: true, force: true });
    throw err;
  }

  const host = `http://127.0.0.1:${port}`;
  return {
    host,
    projectId,
    stop: async () => {
      // The registry logs and swallows errors from stop(), so check it really stopped.
      await EmulatorRegistry.stop(STORAGE);
      await rm(blobDir, { recursive: true, force: true });
      if (EmulatorRegistry.isRunning(STORAGE)) throw new Error('Storage emulator did not stop');
    },
    reset: async () => {
      const res = await fetch(`${host}/internal/reset`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`Storage emulator reset failed: HTTP ${res.status}`);
    },
  };
}

/** The variables that point the Google Cloud clients at the emulators (see the module doc). */
export function emulatorEnv(emulators: {
  pubsub?: Pick<PubSubEmulator, 'host' | 'projectId'>;
  gcs?: Pick<GcsEmulator, 'host' | 'projectId'>;
}): Record<string, string> {
  const { pubsub, gcs } = emulators;
  if (pubsub && gcs && pubsub.projectId !== gcs.projectId) {
    throw new Error(`emulators disagree on the project: ${pubsub.projectId} vs ${gcs.projectId}`);
  }
  const env: Record<string, string> = {
    GOOGLE_CLOUD_PROJECT: pubsub?.projectId ?? gcs?.projectId ?? DEFAULT_PROJECT_ID,
    METADATA_SERVER_DETECTION: 'none',
  };
  if (pubsub) env['PUBSUB_EMULATOR_HOST'] = pubsub.host;
  if (gcs) env['STORAGE_EMULATOR_HOST'] = gcs.host;
  return env;
}

/** Never created: any attempt to load credentials fails instead of finding real ones. */
export const NO_CREDENTIALS_FILE = '/nonexistent/mlab-etl-emulator-credentials.json';

/** The environment for a worker child process run against the emulators. */
export function childProcessEnv(
  emulators: Parameters<typeof emulatorEnv>[0],
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  if (existsSync(NO_CREDENTIALS_FILE)) throw new Error(`${NO_CREDENTIALS_FILE} must not exist`);
  return { ...base, ...emulatorEnv(emulators), GOOGLE_APPLICATION_CREDENTIALS: NO_CREDENTIALS_FILE };
}

/** The object resource fields a GCS notification carries (JSON_API_V1), as strings like GCS sends them. */
export interface GcsObjectResource {
  bucket: string;
  name: string;
  generation: string | number;
  [field: string]: unknown;
}

/**
 * The Pub/Sub message Cloud Storage publishes when an object is written, for tests to publish
 * themselves (the Storage emulator sends none).
 */
export function objectFinalizeNotification(
  object: GcsObjectResource,
  options: { eventTime?: Date; notificationConfig?: string } = {},
): { data: Buffer; attributes: Record<string, string> } {
  const generation = String(object.generation);
  return {
    data: Buffer.from(JSON.stringify({ kind: 'storage#object', ...object, generation })),
    attributes: {
      bucketId: object.bucket,
      objectId: object.name,
      objectGeneration: generation,
      eventType: 'OBJECT_FINALIZE',
      eventTime: (options.eventTime ?? new Date()).toISOString(),
      payloadFormat: 'JSON_API_V1',
      notificationConfig: options.notificationConfig ?? `projects/_/buckets/${object.bucket}/notificationConfigs/1`,
    },
  };
}
