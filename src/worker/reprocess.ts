/**
 * `mlab-etl reprocess gs://BUCKET/PREFIX --topic T`: parse a day, a datatype or a range again
 * after a parser fix, with the same queue and workers as new archives (M-Lab's gardener job). It
 * lists the archives under the prefix, keeps those whose date directory is within --from..--to,
 * and publishes one `{"filename": "gs://..."}` message each. Rows parsed again get a newer
 * parser.Time, and the analysts' views show only the newest.
 */
import { PubSub } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { hasArchiveSuffix, parseArchiveUrl } from '../source/archive-path.js';
import { EtlError } from '../errors.js';

export interface ReprocessOptions {
  prefixUrl: string;
  topic: string;
  from?: string | undefined;
  to?: string | undefined;
  project?: string | undefined;
  /** Called after each publish with (published, listed so far). */
  onProgress?: (published: number, listed: number) => void;
  /** List only, publish nothing. */
  dryRun?: boolean;
}

export interface ReprocessResult {
  listed: number;
  published: number;
  /** Objects under the prefix that are not archives in M-Lab's layout, or outside the dates. */
  skipped: number;
  filenames: string[];
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

export async function reprocess(options: ReprocessOptions): Promise<ReprocessResult> {
  for (const [name, v] of [
    ['--from', options.from],
    ['--to', options.to],
  ] as const) {
    if (v !== undefined && !DATE.test(v))
      throw new EtlError('bad_message', `${name} ${v}: expected YYYY-MM-DD`, { stage: 'input' });
  }
  const m = /^gs:\/\/([a-z0-9][a-z0-9._-]*[a-z0-9])(?:\/(.*))?$/.exec(options.prefixUrl);
  if (!m) throw new EtlError('bad_message', `${options.prefixUrl}: expected gs://BUCKET/PREFIX`, { stage: 'input' });
  const bucket = m[1] as string;
  const prefix = m[2] ?? '';
  const storage = new Storage(options.project ? { projectId: options.project } : {});
  const pubsub = new PubSub(options.project ? { projectId: options.project } : {});
  const topic = pubsub.topic(options.topic, { batching: { maxMessages: 500, maxMilliseconds: 50 } });
  const result: ReprocessResult = { listed: 0, published: 0, skipped: 0, filenames: [] };
  const pending: Promise<string>[] = [];
  try {
    for await (const file of storage.bucket(bucket).getFilesStream({ prefix }) as AsyncIterable<{ name: string }>) {
      result.listed++;
      const filename = `gs://${bucket}/${file.name}`;
      let date: string;
      try {
        if (!hasArchiveSuffix(file.name)) throw new Error('not an archive');
        date = parseArchiveUrl(filename).date;
      } catch {
        result.skipped++;
        continue;
      }
      if ((options.from !== undefined && date < options.from) || (options.to !== undefined && date > options.to)) {
        result.skipped++;
        continue;
      }
      result.filenames.push(filename);
      if (options.dryRun) continue;
      pending.push(
        topic.publishMessage({ json: { filename } }).then((id) => {
          result.published++;
          options.onProgress?.(result.published, result.listed);
          return id;
        }),
      );
      if (pending.length >= 1000) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
  } finally {
    await topic.flush().catch(() => undefined);
    await pubsub.close();
  }
  return result;
}
