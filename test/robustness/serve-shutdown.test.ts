// `serve` stops within its grace period whatever its HTTP clients do: a client that sends its
// headers a byte at a time, or keeps a connection open and idle, must not hold the process (in
// Kubernetes, past terminationGracePeriodSeconds it is killed mid-archive).
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { serveConfigOf } from '../../src/cli/commands/serve.js';
import { silentLogger } from '../../src/log.js';
import { startServe, type ServeHandle } from '../../src/worker/serve.js';
import { tempDir } from '../support/helpers.js';

describe('serve shutdown with slow and idle clients', () => {
  const sockets: Socket[] = [];
  let serve: ServeHandle | undefined;
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    await serve?.stop();
  });

  it('stops within the grace period while clients trickle headers or sit idle', async () => {
    const config = serveConfigOf([
      '--allow-bucket',
      'archive-mlab-test',
      '--sink',
      `jsonl:${tempDir('shutdown')}`,
      '--port',
      '0',
      '--grace-period',
      '1',
    ]);
    serve = await startServe(config, { logger: silentLogger });
    const port = serve.port;
    const trickles: NodeJS.Timeout[] = [];
    for (let i = 0; i < 3; i++) {
      const slow = connect(port, '127.0.0.1');
      sockets.push(slow);
      slow.on('error', () => undefined);
      // A request whose headers never end: a byte every 200 ms.
      const text = 'POST /push HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(10_000);
      let at = 0;
      trickles.push(setInterval(() => slow.write(text[at++ % text.length] ?? 'a'), 200));
    }
    const idle = connect(port, '127.0.0.1');
    sockets.push(idle);
    idle.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    await serve.stop();
    const seconds = (Date.now() - started) / 1000;
    for (const t of trickles) clearInterval(t);
    // The grace period (1 s) and the closing of the sink, nothing more.
    expect(seconds).toBeLessThan(3);
  }, 30_000);
});
