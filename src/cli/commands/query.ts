/** `mlab-etl query`: SQL over the local DuckDB file. */
import type { Command } from 'commander';
import { DEFAULT_DUCKDB_FILE } from '../../sinks/open-sink.js';
import type { CommandContext } from '../context.js';

export function addQueryCommand(program: Command, { io }: CommandContext): void {
  program
    .command('query')
    .description('run SQL over the local DuckDB file')
    .argument('<sql>', 'the query, e.g. "SELECT * FROM utilization.switch LIMIT 5"')
    .option('--db <file>', 'DuckDB file', DEFAULT_DUCKDB_FILE)
    .option('--json', 'one JSON object per row instead of a table')
    .action(async (sql: string, opts: { db: string; json?: boolean }) => {
      const { formatTable, runQuery } = await import('../../sinks/duckdb/query.js');
      const result = await runQuery(opts.db, sql);
      if (opts.json) io.stdout(result.rows.map((r) => JSON.stringify(r)).join('\n') + (result.rows.length ? '\n' : ''));
      else io.stdout(`${formatTable(result)}\n`);
    });
}
