/**
 * The e2e project's emulators, started once per run instead of once per file (the Pub/Sub JVM
 * takes seconds to start). Files reach them through {@link sharedEmulators}; each keeps to names
 * of its own (bucket, topic, subscription), so files never see each other's objects or messages.
 * Tests that stop or restart an emulator on purpose start their own.
 *
 * The Storage emulator runs in vitest's main process here: firebase-tools allows one per process,
 * and test files run in other processes, so a file may still start one of its own.
 */
import type { TestProject } from 'vitest/node';
import { startGcsEmulator, startPubSubEmulator } from './emulators.js';

export interface SharedEmulators {
  pubsub: { host: string; projectId: string };
  gcs: { host: string; projectId: string };
}

declare module 'vitest' {
  export interface ProvidedContext {
    emulators: SharedEmulators;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Missing prerequisites (the SDK's emulator, Java) fail the run here, loudly, as before.
  const [pubsubStarted, gcsStarted] = await Promise.allSettled([startPubSubEmulator(), startGcsEmulator()]);
  if (pubsubStarted.status === 'rejected' || gcsStarted.status === 'rejected') {
    // The one that did start would keep this process alive.
    await Promise.allSettled([
      pubsubStarted.status === 'fulfilled' && pubsubStarted.value.stop(),
      gcsStarted.status === 'fulfilled' && gcsStarted.value.stop(),
    ]);
    throw pubsubStarted.status === 'rejected' ? pubsubStarted.reason : (gcsStarted as PromiseRejectedResult).reason;
  }
  const [pubsub, gcs] = [pubsubStarted.value, gcsStarted.value];
  project.provide('emulators', {
    pubsub: { host: pubsub.host, projectId: pubsub.projectId },
    gcs: { host: gcs.host, projectId: gcs.projectId },
  });
  return async () => {
    await Promise.allSettled([pubsub.stop(), gcs.stop()]);
  };
}
