import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Agent, get as httpGet, type IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { PubSub, type Message, type Subscription, type Topic } from '@google-cloud/pubsub';
import { Storage, type File } from '@google-cloud/storage';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import {
  childProcessEnv,
  emulatorEnv,
  NO_CREDENTIALS_FILE,
  objectFinalizeNotification,
  startGcsEmulator,
  startPubSubEmulator,
  type GcsEmulator,
  type PubSubEmulator,
} from './emulators.js';

const execFileAsync = promisify(execFile);

/** Messages from a streaming pull, handed out in arrival order. */
class Inbox {
  private readonly queued: Message[] = [];
  private readonly waiting: Array<{ resolve: (m: Message) => void; reject: (e: Error) => void }> = [];

  constructor(readonly subscription: Subscription) {
    subscription.on('message', (m: Message) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter.resolve(m);
      else this.queued.push(m);
    });
    subscription.on('error', (err: Error) => {
      for (const w of this.waiting.splice(0)) w.reject(err);
    });
  }

  next(timeoutMs = 10_000): Promise<Message> {
    const queued = this.queued.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (m: Message) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        reject(new Error(`no message on ${this.subscription.name} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.push(waiter);
    });
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** The bytes of a read plus the HTTP response it came from. */
async function readWithResponse(
  file: File,
  options: Parameters<File['createReadStream']>[0] = {},
): Promise<{ bytes: Buffer; status: number | undefined; headers: IncomingMessage['headers'] }> {
  const stream = file.createReadStream(options);
  let response: IncomingMessage | undefined;
  stream.on('response', (r: IncomingMessage) => (response = r));
  const bytes = await readAll(stream);
  return { bytes, status: response?.statusCode, headers: response?.headers ?? {} };
}

function stubEnv(env: Record<string, string>): void {
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
}

function logTiming(what: string, ms: number): void {
  console.log(JSON.stringify({ severity: 'INFO', message: 'emulator started', emulator: what, ms: Math.round(ms) }));
}

describe('startPubSubEmulator', () => {
  afterEach(() => vi.unstubAllEnvs());

  test('names the missing emulator binary instead of skipping', async () => {
    await expect(startPubSubEmulator({ binary: '/nonexistent/cloud-pubsub-emulator' })).rejects.toThrow(
      /Pub\/Sub emulator not found or not executable: \/nonexistent\/cloud-pubsub-emulator/,
    );
  });

  test('names missing Java instead of skipping', async () => {
    vi.stubEnv('JAVA_HOME', undefined);
    vi.stubEnv('PATH', '/nonexistent');
    await expect(startPubSubEmulator()).rejects.toThrow(/no `java` on PATH/);
    vi.stubEnv('JAVA_HOME', '/nonexistent/jdk');
    await expect(startPubSubEmulator()).rejects.toThrow(/\/nonexistent\/jdk\/bin\/java is not executable/);
  });

  test('stop() ends the JVM itself and frees the port', { timeout: 45_000 }, async () => {
    const emulator = await startPubSubEmulator();
    // The launcher script `exec`s java, so its pid is the JVM's: no child JVM to chase.
    expect(readFileSync(`/proc/${emulator.pid}/comm`, 'utf8').trim()).toBe('java');
    await emulator.stop();
    expect(existsSync(`/proc/${emulator.pid}`)).toBe(false);
    await expect(fetch(`http://${emulator.host}/`)).rejects.toThrow();
    await emulator.stop();
  });
});

describe('against the emulators', () => {
  let pubsubEmulator: PubSubEmulator | undefined;
  let gcsEmulator: GcsEmulator | undefined;

  beforeAll(async () => {
    let t0 = performance.now();
    pubsubEmulator = await startPubSubEmulator();
    logTiming('pubsub', performance.now() - t0);
    t0 = performance.now();
    gcsEmulator = await startGcsEmulator();
    logTiming('gcs', performance.now() - t0);
    // A credentials file that does not exist: the clients must work without credentials.
    stubEnv({
      ...emulatorEnv({ pubsub: pubsubEmulator, gcs: gcsEmulator }),
      GOOGLE_APPLICATION_CREDENTIALS: NO_CREDENTIALS_FILE,
    });
  }, 60_000);

  afterAll(async () => {
    vi.unstubAllEnvs();
    await gcsEmulator?.stop();
    await pubsubEmulator?.stop();
    if (pubsubEmulator) expect(existsSync(`/proc/${pubsubEmulator.pid}`)).toBe(false);
  }, 30_000);

  test('emulatorEnv holds the variables the worker reads', () => {
    expect(emulatorEnv({ pubsub: pubsubEmulator, gcs: gcsEmulator })).toEqual({
      PUBSUB_EMULATOR_HOST: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      STORAGE_EMULATOR_HOST: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      GOOGLE_CLOUD_PROJECT: 'demo-mlab-etl',
      METADATA_SERVER_DETECTION: 'none',
    });
  });

  describe('Pub/Sub', () => {
    let pubsub: PubSub;
    let topic: Topic;
    let deadLetters: Inbox;
    let inbox: Inbox;
    const object = {
      kind: 'storage#object',
      bucket: 'archive-measurement-lab',
      name: 'utilization/switch/2021/12/14/20211214T000000Z-switch-mlab1-lga03-utilization.tgz',
      generation: '1639526400123456',
      size: '3145851',
      md5Hash: 'XrY7u+Ae7tCTyyK7j1rNww==',
      contentType: 'application/gzip',
    };

    beforeAll(async () => {
      pubsub = new PubSub();
      [topic] = await pubsub.createTopic('archives');
      const [deadLetterTopic] = await pubsub.createTopic('archives-dead-letter');
      const [deadLetterSub] = await deadLetterTopic.createSubscription('archives-dead-letter-sub');
      const [subscription] = await topic.createSubscription('archives-worker', {
        ackDeadlineSeconds: 30,
        deadLetterPolicy: { deadLetterTopic: deadLetterTopic.name, maxDeliveryAttempts: 5 },
      });
      inbox = new Inbox(subscription);
      deadLetters = new Inbox(deadLetterSub);
    }, 30_000);

    afterAll(async () => {
      await inbox?.subscription.close();
      await deadLetters?.subscription.close();
      await pubsub?.close();
    }, 30_000);

    test('the subscription keeps its dead-letter policy', { timeout: 15_000 }, async () => {
      const [metadata] = await inbox.subscription.getMetadata();
      expect(metadata.deadLetterPolicy?.maxDeliveryAttempts).toBe(5);
      expect(metadata.deadLetterPolicy?.deadLetterTopic).toBe(`projects/demo-mlab-etl/topics/archives-dead-letter`);
    });

    test('delivers an OBJECT_FINALIZE notification by streaming pull', { timeout: 20_000 }, async () => {
      const id = await topic.publishMessage(objectFinalizeNotification(object));
      const message = await inbox.next();
      expect(message.id).toBe(id);
      expect(message.attributes).toEqual({
        bucketId: object.bucket,
        objectId: object.name,
        objectGeneration: object.generation,
        eventType: 'OBJECT_FINALIZE',
        eventTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        payloadFormat: 'JSON_API_V1',
        notificationConfig: `projects/_/buckets/${object.bucket}/notificationConfigs/1`,
      });
      expect(JSON.parse(message.data.toString('utf8'))).toEqual(object);
      // Counted only because the subscription has a dead-letter policy.
      expect(message.deliveryAttempt).toBe(1);
      message.ack();
    });

    test('redelivers a nacked message with its delivery attempt counted', { timeout: 20_000 }, async () => {
      const id = await topic.publishMessage(objectFinalizeNotification({ ...object, name: 'nack-once.tgz' }));
      const first = await inbox.next();
      expect(first.id).toBe(id);
      first.nack();
      const again = await inbox.next();
      expect(again.id).toBe(id);
      expect(again.deliveryAttempt).toBe(2);
      again.ack();
    });

    test('moves a message to the dead-letter topic after 5 attempts', { timeout: 30_000 }, async () => {
      const id = await topic.publishMessage(objectFinalizeNotification({ ...object, name: 'poison.tgz' }));
      for (let attempt = 1; attempt <= 5; attempt++) {
        const m = await inbox.next();
        expect([m.id, m.deliveryAttempt]).toEqual([id, attempt]);
        m.nack();
      }
      const dead = await deadLetters.next(15_000);
      expect(dead.attributes['objectId']).toBe('poison.tgz');
      dead.ack();
    });
  });

  describe('Cloud Storage', () => {
    let storage: Storage;
    const bucket = 'archive-measurement-lab';
    const name = 'utilization/switch/2021/12/14/20211214T000000Z-switch-mlab1-lga03-utilization.tgz';
    // Not a multiple of any chunk size, so off-by-one ranges show.
    const content = randomBytes(3 * 1024 * 1024 + 123);
    let generation: string;

    beforeAll(async () => {
      storage = new Storage();
      const file = storage.bucket(bucket).file(name);
      await file.save(content, { resumable: false, contentType: 'application/gzip' });
      expect(file.metadata.generation).toMatch(/^\d+$/);
      generation = String(file.metadata.generation);
    }, 30_000);

    test('a multipart upload reports size, generation and md5Hash', { timeout: 15_000 }, async () => {
      const [metadata] = await storage.bucket(bucket).file(name).getMetadata();
      expect(metadata.size).toBe(String(content.length));
      expect(String(metadata.generation)).toBe(generation);
      expect(metadata.md5Hash).toBe(createHash('md5').update(content).digest('base64'));
    });

    test('streams the whole object back', { timeout: 15_000 }, async () => {
      const { bytes, status, headers } = await readWithResponse(storage.bucket(bucket).file(name));
      expect(status).toBe(200);
      expect(bytes.equals(content)).toBe(true);
      // Without this header @google-cloud/storage skips crc32c/md5 validation of whole reads, so
      // against the emulator a corrupted download is never detected.
      expect(headers['x-goog-stored-content-encoding']).toBeUndefined();
      expect(headers['x-goog-generation']).toBe(generation);
    });

    test('ranged reads return the inclusive range with or without validation: false', { timeout: 15_000 }, async () => {
      const file = storage.bucket(bucket).file(name);
      const ranged = await readWithResponse(file, { start: 1_000_001, end: 2_000_000 });
      expect(ranged.status).toBe(206);
      expect(ranged.headers['content-range']).toBe(`bytes 1000001-2000000/${content.length}`);
      expect(ranged.bytes.equals(content.subarray(1_000_001, 2_000_001))).toBe(true);

      // The resume of a cut stream: from an offset to the end.
      const resumed = await readWithResponse(file, { start: 3_000_000 });
      const unvalidated = await readWithResponse(file, { start: 3_000_000, validation: false });
      expect(resumed.status).toBe(206);
      expect(resumed.bytes.equals(content.subarray(3_000_000))).toBe(true);
      expect(unvalidated.bytes.equals(resumed.bytes)).toBe(true);
      // Asking for validation on a range is a client-side error, before any request.
      expect(() => file.createReadStream({ start: 1, validation: true })).toThrow(/range/i);
      expect(() => file.createReadStream({ start: 1, validation: 'crc32c' })).toThrow(/range/i);
    });

    test('a range starting at the end returns the whole object with 200, not 416', { timeout: 15_000 }, async () => {
      // Cloud Storage answers 416 here; a worker resuming at offset == size must not append this.
      const atEnd = await readWithResponse(storage.bucket(bucket).file(name), { start: content.length });
      expect(atEnd.status).toBe(200);
      expect(atEnd.bytes.length).toBe(content.length);
    });

    test('reads by generation, but ignores a generation that does not exist', { timeout: 15_000 }, async () => {
      const pinned = await readWithResponse(storage.bucket(bucket).file(name, { generation }));
      expect(pinned.bytes.equals(content)).toBe(true);
      // Cloud Storage answers 404 for a generation it does not hold; the emulator serves the
      // current bytes, so tests cannot show a worker noticing an object replaced mid-read.
      const other = await readWithResponse(storage.bucket(bucket).file(name, { generation: Number(generation) - 1 }));
      expect(other.status).toBe(200);
      expect(other.bytes.equals(content)).toBe(true);
    });

    test('an object stored gzip-encoded resumes only with decompress: false', { timeout: 15_000 }, async () => {
      // The client asks for gzip, so the range applies to the stored compressed bytes, and
      // its default gunzip then fails on a stream that does not start at a gzip header.
      const tar = Buffer.from('ustar '.repeat(5_000));
      const gz = gzipSync(tar);
      const file = storage.bucket(bucket).file('encoded/archive.tar');
      await file.save(gz, { resumable: false, metadata: { contentEncoding: 'gzip' } });
      expect((await readWithResponse(file)).bytes.equals(tar)).toBe(true);
      await expect(readWithResponse(file, { start: 10 })).rejects.toMatchObject({ code: 'Z_DATA_ERROR' });
      const raw = await readWithResponse(file, { start: 10, decompress: false });
      expect(raw.bytes.equals(gz.subarray(10))).toBe(true);
    });

    test('keeps an idle connection open past the 5 s a client keeps it', { timeout: 20_000 }, async () => {
      // The race this prevents: a request sent on a connection the server closes at that moment
      // fails with "socket hang up". Node's server default is 5 s, the same as its client's.
      const agent = new Agent({ keepAlive: true, timeout: 60_000 });
      const get = () =>
        new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
          const req = httpGet(
            `${(gcsEmulator as GcsEmulator).host}/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}`,
            { agent },
          );
          req.on('response', (res: IncomingMessage) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
          });
          req.on('error', reject);
        });
      try {
        expect(await get()).toEqual({ status: 200, reused: false });
        await sleep(6_000);
        expect(await get()).toEqual({ status: 200, reused: true });
      } finally {
        agent.destroy();
      }
    });

    test('runs one emulator per process, for a demo- project only', async () => {
      await expect(startGcsEmulator()).rejects.toThrow(/already running in this process/);
      await expect(startGcsEmulator({ projectId: 'mlab-oti' })).rejects.toThrow(/must start with "demo-"/);
    });

    test('lists objects by prefix', { timeout: 15_000 }, async () => {
      const b = storage.bucket(bucket);
      for (const n of ['ndt/2021/12/14/a.tgz', 'ndt/2021/12/15/b.tgz', 'ndt7/2021/12/14/c.tgz']) {
        await b.file(n).save(Buffer.from(n), { resumable: false });
      }
      const [files] = await b.getFiles({ prefix: 'ndt/2021/12/' });
      expect(files.map((f) => f.name).sort()).toEqual(['ndt/2021/12/14/a.tgz', 'ndt/2021/12/15/b.tgz']);
    });

    test('a missing object is a 404', { timeout: 15_000 }, async () => {
      const missing = storage.bucket(bucket).file('no/such/object.tgz');
      await expect(missing.getMetadata()).rejects.toMatchObject({ code: 404 });
      await expect(missing.download()).rejects.toMatchObject({ code: 404 });
      await expect(readAll(missing.createReadStream())).rejects.toMatchObject({ code: 404 });
      expect((await missing.exists())[0]).toBe(false);
    });

    test('a child process reaches both emulators with childProcessEnv alone', { timeout: 30_000 }, async () => {
      if (!pubsubEmulator || !gcsEmulator) throw new Error('emulators not started');
      const env = childProcessEnv(
        { pubsub: pubsubEmulator, gcs: gcsEmulator },
        { PATH: process.env['PATH'], HOME: process.env['HOME'] },
      );
      const script = `
        import { PubSub } from '@google-cloud/pubsub';
        import { Storage } from '@google-cloud/storage';
        const [metadata] = await new Storage().bucket(${JSON.stringify(bucket)}).file(${JSON.stringify(name)}).getMetadata();
        const pubsub = new PubSub();
        const [topics] = await pubsub.getTopics();
        await pubsub.close();
        console.log(JSON.stringify({ size: metadata.size, topics: topics.map((t) => t.name).sort() }));
      `;
      const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], {
        env,
        cwd: process.cwd(),
        timeout: 20_000,
      });
      expect(JSON.parse(stdout)).toEqual({
        size: String(content.length),
        topics: ['projects/demo-mlab-etl/topics/archives', 'projects/demo-mlab-etl/topics/archives-dead-letter'],
      });
    });

    test('reset() deletes every object', { timeout: 15_000 }, async () => {
      await gcsEmulator?.reset();
      await expect(storage.bucket(bucket).file(name).getMetadata()).rejects.toMatchObject({ code: 404 });
      const [files] = await storage.bucket(bucket).getFiles({ prefix: 'ndt' });
      expect(files).toEqual([]);
    });
  });
});
