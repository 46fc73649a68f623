/**
 * A proxy in front of the Storage emulator that breaks object downloads on purpose: it cuts the
 * response body after some bytes (as a network failure would), or slows it down. The emulator
 * answers each request from one buffer and cannot do either. Only media downloads (`alt=media`)
 * are touched; metadata and uploads pass through.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';

export interface GcsFaultProxy {
  /** `http://127.0.0.1:PORT`: the value for STORAGE_EMULATOR_HOST. */
  host: string;
  /** Cut the next `count` downloads after `afterBytes` bytes of body. */
  cutNext(count: number, afterBytes: number): void;
  /** Answer the next `count` downloads only after `ms` (headers included), as a slow server would. */
  holdNext(count: number, ms: number): void;
  /** Answer the next `count` downloads resumed from a byte other than 0 with the whole object (200, not 206). */
  ignoreRangeNext(count: number): void;
  /** Delay every download chunk of at most `chunkBytes` by `ms`. */
  throttle(ms: number, chunkBytes?: number): void;
  /** Downloads seen, and how many were cut. */
  stats(): { downloads: number; cut: number; ranged: number };
  close(): Promise<void>;
}

export async function startGcsFaultProxy(target: string): Promise<GcsFaultProxy> {
  const upstream = new URL(target);
  let cuts: { remaining: number; afterBytes: number } = { remaining: 0, afterBytes: 0 };
  let delay = { ms: 0, chunkBytes: 64 * 1024 };
  const stats = { downloads: 0, cut: 0, ranged: 0 };
  let holds = { remaining: 0, ms: 0 };
  let rangesIgnored = 0;

  const server: Server = createServer((req, res) => {
    const isDownload = (req.url ?? '').includes('alt=media');
    const headers = { ...req.headers };
    // The client asks for `bytes=0-` on a first read too: only a resumed read (from another byte) counts.
    if (isDownload && /^bytes=[1-9]/.test(headers.range ?? '') && rangesIgnored > 0) {
      rangesIgnored--;
      delete headers.range;
    }
    const holdMs = isDownload && holds.remaining > 0 ? holds.ms : 0;
    if (holdMs > 0) holds.remaining--;
    const proxied = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (up) => {
        if (holdMs > 0) {
          setTimeout(() => respond(up), holdMs);
          return;
        }
        respond(up);
      },
    );
    const respond = (up: IncomingMessage): void => {
      // The client gave up while the answer was held.
      if (res.destroyed || !res.socket || res.socket.destroyed) {
        up.destroy();
        return;
      }
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (!isDownload) {
        up.pipe(res);
        return;
      }
      stats.downloads++;
      if (req.headers.range) stats.ranged++;
      const cutAt = cuts.remaining > 0 ? cuts.afterBytes : Infinity;
      if (cuts.remaining > 0) cuts.remaining--;
      let sent = 0;
      void (async () => {
        for await (const chunk of up as AsyncIterable<Buffer>) {
          for (let i = 0; i < chunk.length; i += delay.chunkBytes) {
            let piece = chunk.subarray(i, i + delay.chunkBytes);
            if (sent + piece.length > cutAt) {
              piece = piece.subarray(0, cutAt - sent);
              res.write(piece);
              stats.cut++;
              res.destroy(); // the client sees the connection drop mid-body
              up.destroy();
              return;
            }
            if (delay.ms > 0) await new Promise((r) => setTimeout(r, delay.ms));
            if (!res.write(piece)) await new Promise((r) => res.once('drain', r));
            sent += piece.length;
          }
        }
        res.end();
      })().catch(() => res.destroy());
    };
    proxied.on('error', () => res.destroy());
    req.pipe(proxied);
  });
  // Longer than Node's HTTP client keeps an idle connection (5 s), so that the client, not this
  // server, closes it: otherwise a request can meet a connection being closed ("socket hang up").
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    host: `http://127.0.0.1:${port}`,
    holdNext: (count, ms) => {
      holds = { remaining: count, ms };
    },
    ignoreRangeNext: (count) => {
      rangesIgnored = count;
    },
    cutNext: (count, afterBytes) => {
      cuts = { remaining: count, afterBytes };
    },
    throttle: (ms, chunkBytes = 64 * 1024) => {
      delay = { ms, chunkBytes };
    },
    stats: () => ({ ...stats }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
