/**
 * Entries parsed in worker threads (`--workers`, threads/entry-pool.ts): this thread reads the
 * archive and feeds each entry's bytes to a worker, while the writer stores the batches of the
 * entries before it, in archive order.
 */
import { ERRORS, toEtlError } from '../../errors.js';
import type { EntryPool } from '../threads/entry-pool.js';
import type { EntryStrategy } from '../read-entries.js';

export function threadedStrategy(pool: EntryPool, datatype: string): EntryStrategy {
  return {
    async parse(item, job, writer) {
      const task = await pool.begin(datatype, job);
      let fed!: () => void;
      const read = new Promise<void>((resolve) => (fed = resolve));
      // Not awaited: the next entries are read while this one is parsed.
      void writer.entry({
        name: item.name,
        batches: () => task.batches(),
        bytesRead: async () => {
          await read;
          return item.bytesRead();
        },
        // An entry passed over (the archive failed before it) is dropped, so its worker takes the next.
        release: () => task.discard(),
      });
      try {
        await task.feed(item.body);
      } catch (err) {
        // Reading the entry failed (a corrupt .gz entry, or the archive broke inside it): its
        // parser sees the same error, as it would have reading the body itself.
        const e = toEtlError(err, 'internal_error', 'archive');
        task.abort(e);
        if (ERRORS[e.code].endsArchive) throw err;
      } finally {
        fed();
      }
    },
    pace: async () => {},
  };
}
