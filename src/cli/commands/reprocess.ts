/** `mlab-etl reprocess`: one Pub/Sub message per archive under a prefix, for the workers to parse again. */
import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { given, projectOption } from '../options.js';

interface ReprocessOptions {
  topic: string;
  from?: string;
  to?: string;
  project: string | null;
  dryRun?: boolean;
}

export function addReprocessCommand(program: Command, { io }: CommandContext): void {
  program
    .command('reprocess')
    .description('publish one message per archive under a gs:// prefix, to parse them again with the workers')
    .argument('<prefix>', 'gs://BUCKET/PREFIX, e.g. gs://archive-measurement-lab/ndt/ndt7/2020/03/')
    .requiredOption('--topic <topic>', 'the topic the workers subscribe to')
    .option('--from <YYYY-MM-DD>', 'first archive date (date directory) to include')
    .option('--to <YYYY-MM-DD>', 'last archive date to include')
    .addOption(projectOption())
    .option('--dry-run', 'list what would be published, publish nothing')
    .action(async (prefix: string, opts: ReprocessOptions) => {
      let lastDraw = 0;
      // The cloud client libraries load only for the commands that use them.
      const { reprocess } = await import('../../worker/reprocess.js');
      const result = await reprocess({
        prefixUrl: prefix,
        topic: opts.topic,
        from: opts.from,
        to: opts.to,
        project: given(opts.project) ?? undefined,
        dryRun: Boolean(opts.dryRun),
        onProgress: (published, listed) => {
          if (!io.isTTY || Date.now() - lastDraw < 100) return;
          lastDraw = Date.now();
          io.stderr(`\r\x1b[K${published} published, ${listed} listed`);
        },
      });
      if (io.isTTY) io.stderr('\r\x1b[K');
      if (opts.dryRun) for (const f of result.filenames) io.stdout(`${f}\n`);
      io.stdout(
        `${opts.dryRun ? 'Would publish' : 'Published'} ${opts.dryRun ? result.filenames.length : result.published} archives to ${opts.topic} ` +
          `(${result.listed} objects listed, ${result.skipped} not archives or outside the dates)\n`,
      );
    });
}
