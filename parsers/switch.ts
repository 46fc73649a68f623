/**
 * switch: DISCO's switch port counters (experiment `utilization`), one JSON object per metric
 * holding that metric's samples. DISCOv2 files end `switch.jsonl` (one object a line, exact
 * integer values and counters); DISCOv1 files end `switch.json[.gz]` (objects back to back,
 * float values, no counters, 361 samples an hour).
 *
 * Rows: one per (machine, site, sample timestamp), with every metric's sample of that moment in
 * `raw.Metrics` and a summary in `a`, sorted by timestamp. Same rules as M-Lab's parser.
 */
import {
  defineParser,
  EtlError,
  GroupedRows,
  jsonValues,
  type ParsedRow,
  type ParsedRows,
  type SwitchRow,
} from '../src/parser/index.js';

const MACHINE = /mlab[0-9]/;
const SITE = /s1[-.]([a-z]{3}[0-9t]{2})/;
const SUFFIXES = ['switch.json', 'switch.jsonl', 'switch.json.gz', 'switch.jsonl.gz'];
const V2_SUFFIXES = ['switch.jsonl', 'switch.jsonl.gz'];

/** DISCOv2 collected octets.local.{rx,tx} wrongly for archives dated strictly between these days. */
const LOCAL_OCTETS_BUG_AFTER = '2020-09-09';
const LOCAL_OCTETS_BUG_BEFORE = '2022-01-19';

type Summary = SwitchRow['a'];
/** A metric's field in the summary (SwitchOctetsUplinkRx); its counter's is the name + Counter. */
type SummaryField = Exclude<keyof Summary, 'Machine' | 'Site' | 'CollectionTime' | `${string}Counter`>;

/** The 20 metrics with a summary field: K in octets, unicast, broadcast, errors, discards; S in uplink, local; D in rx, tx. */
const SUMMARY_FIELDS = new Map<string, SummaryField>();
for (const k of ['octets', 'unicast', 'broadcast', 'errors', 'discards']) {
  for (const s of ['uplink', 'local']) {
    for (const d of ['rx', 'tx']) {
      SUMMARY_FIELDS.set(
        `switch.${k}.${s}.${d}`,
        // The names the schema lists: a name missing there fails every row's validation.
        ['switch', k, s, d].map((w) => w[0]?.toUpperCase() + w.slice(1)).join('') as SummaryField,
      );
    }
  }
}

type Int = number | bigint;

interface Sample {
  timestamp: number;
  collectstart?: Int;
  collectend?: Int;
  value: Int;
  counter?: Int;
}

interface MetricObject {
  metric: string;
  hostname: string;
  experiment: string;
  sample: unknown[];
}

type Row = ParsedRow<SwitchRow>;

function isInt(v: unknown): v is Int {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v));
}

function metricObject(v: unknown, line: number): MetricObject {
  const o = v as Partial<MetricObject> | null;
  if (o === null || typeof o !== 'object' || Array.isArray(o) || !Array.isArray(o.sample)) {
    throw new EtlError('invalid_record', `line ${line}: not a DISCO metric object (needs a "sample" array)`, {
      stage: 'parser',
    });
  }
  return {
    metric: typeof o.metric === 'string' ? o.metric : '',
    hostname: typeof o.hostname === 'string' ? o.hostname : '',
    experiment: typeof o.experiment === 'string' ? o.experiment : '',
    sample: o.sample,
  };
}

/** A source sample reduced to the schema's fields; null when it has no usable timestamp or value. */
function toSample(s: unknown, v1: boolean): Sample | null {
  const src = s as Record<string, unknown> | null;
  if (src === null || typeof src !== 'object') return null;
  const ts = src.timestamp;
  const value = src.value;
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts)) return null;
  if (!(typeof value === 'bigint' || (typeof value === 'number' && Number.isFinite(value)))) return null;
  const out: Sample = { timestamp: v1 ? ts + 10 : ts, value };
  if (isInt(src.collectstart)) out.collectstart = src.collectstart;
  if (isInt(src.collectend)) out.collectend = src.collectend;
  if (isInt(src.counter)) out.counter = src.counter;
  return out;
}

function summaryValue(value: Int): Int {
  return typeof value === 'bigint' ? value : Math.trunc(value);
}

export default defineParser<SwitchRow>({
  name: 'switch',
  description: 'DISCO switch port counters (utilization): one row per machine, site and 10 s sample',
  accepts: (name) => SUFFIXES.some((s) => name.endsWith(s)),

  async *parse(input, context): ParsedRows<SwitchRow> {
    const v1 = !V2_SUFFIXES.some((s) => input.name.endsWith(s));
    const bugWindow = input.archive.date > LOCAL_OCTETS_BUG_AFTER && input.archive.date < LOCAL_OCTETS_BUG_BEFORE;
    // Rows are grouped until the file ends (they come out sorted by time); past
    // groupedRowsInMemory they wait in a temporary file, so memory stays flat.
    const rows = new GroupedRows<Row & { ts: number }>({
      maxInMemory: input.limits.groupedRowsInMemory,
      maxRows: Math.min(input.limits.maxRowsPerEntry, input.limits.maxGroupedRows),
      compare: (x, y) => x.ts - y.ts || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0),
      // A row split by a spill: its later metrics follow, later summary values win, as in one pass.
      combine: (earlier, later) => {
        earlier.raw.Metrics.push(...later.raw.Metrics);
        Object.assign(earlier.a, later.a);
      },
    });

    try {
      for await (const { value, line } of jsonValues(input.body, input.limits)) {
        const obj = metricObject(value, line);
        // DISCOv1 repeats the next hour's first window as its last sample, stamped at the window start.
        const samples = v1 && obj.sample.length > 0 ? obj.sample.slice(0, -1) : obj.sample;
        const machine = MACHINE.exec(obj.hostname)?.[0];
        const site = SITE.exec(obj.experiment)?.[1];
        if (machine === undefined || site === undefined) {
          if (samples.length > 0) {
            context.skip(
              'record_skipped',
              `line ${line}: ${samples.length} samples of ${obj.metric || 'a metric'} skipped: no machine in hostname ${JSON.stringify(obj.hostname)} or no site in experiment ${JSON.stringify(obj.experiment)}`,
            );
          }
          continue;
        }
        const field = SUMMARY_FIELDS.get(obj.metric);
        const zeroed =
          bugWindow && (obj.metric === 'switch.octets.local.tx' || obj.metric === 'switch.octets.local.rx');
        for (const s of samples) {
          const sample = toSample(s, v1);
          if (sample === null) {
            context.skip(
              'invalid_record',
              `line ${line}: a sample of ${obj.metric} has no integer timestamp or numeric value`,
              JSON.stringify(s, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)),
            );
            continue;
          }
          const id = `${machine}-${site}-${sample.timestamp}`;
          let row = rows.get(id);
          if (!row) {
            row = {
              ts: sample.timestamp,
              id,
              a: { Machine: machine, Site: site, CollectionTime: new Date(sample.timestamp * 1000).toISOString() },
              raw: { Metrics: [] },
            };
            rows.add(id, row);
          }
          row.raw.Metrics.push({
            metric: obj.metric,
            hostname: obj.hostname,
            experiment: obj.experiment,
            sample: [sample],
          });
          if (field !== undefined) {
            row.a[field] = zeroed ? 0 : summaryValue(sample.value);
            row.a[`${field}Counter` as const] = zeroed ? 0 : (sample.counter ?? 0);
          }
        }
      }

      for (const { ts: _ts, ...row } of rows.sorted()) yield row;
    } finally {
      // Temporary files go whether the file was read to its end or not.
      rows.dispose();
    }
  },
});
