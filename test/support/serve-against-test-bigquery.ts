// `mlab-etl serve` as a child process whose BigQuery sink writes to the tests' BigQuery server:
// the real CLI (options, signals, exit codes) with the endpoint and auth passed in code, which no
// option or variable of the product can do.
//   node --import tsx test/support/serve-against-test-bigquery.ts ENDPOINT [serve options...]
import { boundHeapGrowth } from '../../src/cli/heap.js';
import { processIo } from '../../src/cli/io.js';
import { run } from '../../src/cli/main.js';
import { dummyAuthClient } from './helpers.js';

const [apiEndpoint, ...args] = process.argv.slice(2);
if (!apiEndpoint?.startsWith('http')) {
  process.stderr.write('usage: serve-against-test-bigquery.ts http://HOST:PORT [serve options...]\n');
  process.exit(2);
}
boundHeapGrowth();
process.exitCode = await run(['serve', ...args], processIo, {
  bigquery: { apiEndpoint, authClient: dummyAuthClient() },
});
