/**
 * How far V8 lets the JavaScript heap grow between full collections.
 *
 * V8 chooses that factor from its heap limit, which Node sizes from the memory it sees (the
 * container's limit when there is one). With a limit of 2 GiB or more, as on a machine with 8 GB
 * or more and no container limit, the heap may grow to 4x the live objects before a full
 * collection; with a smaller limit V8 keeps to 1.3x-2x. The pipeline's live objects are small
 * (tens of MB) but it makes garbage fast, so with 4x most of the heap is garbage. On such a
 * machine the command sets 2x, the most V8 itself allows a smaller heap. Peak RSS of `parse` on a
 * 24 GB machine (heap limit 4 GiB; bench/profile-changes.md): switch-50mb to JSONL 178-184 ->
 * 142-145 MiB, to DuckDB 228-252 -> 208-214 MiB, the 1 GB entry 267 -> 207 MiB, for 5-6% more
 * time.
 *
 * V8 reads the factor at every full collection, and Node keeps V8's flags writable after start
 * (it passes --no-freeze-flags-after-init for `v8.setFlagsFromString`), so setting it here works.
 * Applied by the command only (not on import), and never when the command line sets the factor:
 * `node --heap-growing-percent=300 .../cli.js` keeps 300.
 */
import v8 from 'node:v8';

const HEAP_GROWING_PERCENT = 100;
/**
 * From this heap limit on, Node 20's V8 allows itself a growing factor of 4 (later ones do from
 * the default limit for the machine's memory on); below it, at most about 2.
 */
const HIGH_FACTOR_HEAP_LIMIT = 2 * 1024 * 1024 * 1024;

/**
 * Sets V8's heap growing factor to 1 + HEAP_GROWING_PERCENT/100 when the heap limit lets V8 use
 * more and `execArgv` does not set it; true when set.
 */
export function boundHeapGrowth(
  execArgv: readonly string[] = process.execArgv,
  heapLimit: number = v8.getHeapStatistics().heap_size_limit,
): boolean {
  if (execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) return false;
  if (heapLimit < HIGH_FACTOR_HEAP_LIMIT) return false;
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}
