import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Storage } from '@google-cloud/storage';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { gcsArchive, type GcsObjectRef } from '../../src/source/gcs-source.js';
import { emulatorEnv } from '../support/emulators.js';
import type { SharedEmulators } from '../support/global-setup.js';
import { startGcsFaultProxy, type GcsFaultProxy } from '../support/gcs-fault-proxy.js';
import { uploadObject } from '../support/helpers.js';

const BUCKET = 'gcs-source-test';
const NAME = 'utilization/switch/2021/12/14/20211214T000000.000000Z-switch-mlab1-abc01-utilization.tgz';
const STALL_MS = 200;

let gcs: SharedEmulators['gcs'];
let proxy: GcsFaultProxy;
let reader: Storage;
let ref: GcsObjectRef;
const bytes = randomBytes(300_000);
const env = { ...process.env };

beforeAll(async () => {
  gcs = inject('emulators').gcs;
  proxy = await startGcsFaultProxy(gcs.host);
  // The clients read the environment when constructed: the upload goes straight to the emulator,
  // the reads under test through the fault proxy.
  Object.assign(process.env, emulatorEnv({ gcs }));
  const file = new Storage().bucket(BUCKET).file(NAME);
  await uploadObject(file, bytes);
  ref = { bucket: BUCKET, name: NAME, generation: String(file.metadata.generation), size: bytes.length };
  Object.assign(process.env, emulatorEnv({ gcs: { host: proxy.host, projectId: gcs.projectId } }));
  reader = new Storage();
}, 60_000);

afterAll(async () => {
  process.env = env;
  await proxy?.close();
});

/** Rejections nothing handled while a test ran: on Node 23 and later the client raises one if a read is destroyed too early. */
let unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeEach(() => {
  unhandled = [];
  process.on('unhandledRejection', onUnhandled);
});
afterEach(() => {
  process.off('unhandledRejection', onUnhandled);
});

async function readAll(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function archive(resumes: string[]) {
  return gcsArchive(reader, ref, {
    allowBuckets: new Set([BUCKET]),
    stallTimeoutMs: STALL_MS,
    backoffMs: () => 10,
    onResume: (offset, err) => resumes.push(`${offset}: ${(err as Error).message}`),
  });
}

describe('gcsArchive', () => {
  it('resumes a read whose answer comes after the stall timeout: every byte once, nothing left unhandled', async () => {
    const resumes: string[] = [];
    const before = proxy.stats().downloads;
    proxy.holdNext(1, STALL_MS * 3);
    const got = await readAll(archive(resumes).open());
    expect(got.equals(bytes)).toBe(true);
    expect(resumes).toEqual([`0: no data for ${STALL_MS} ms at byte 0`]);
    // The abandoned read's answer arrives after the resumed one has finished; it is let in, then closed.
    await sleep(STALL_MS * 4);
    expect(proxy.stats().downloads - before).toBe(2);
    expect(unhandled).toEqual([]);
  });

  it('fails a ranged read answered with the whole object (source_unavailable), nothing left unhandled', async () => {
    const resumes: string[] = [];
    proxy.cutNext(1, 150_000);
    proxy.ignoreRangeNext(1);
    await expect(readAll(archive(resumes).open())).rejects.toMatchObject({
      code: 'source_unavailable',
      message: expect.stringMatching(/a ranged read from byte [1-9][0-9]* returned the whole object/),
    });
    expect(resumes).toHaveLength(1);
    await sleep(100);
    expect(unhandled).toEqual([]);
  });
});
