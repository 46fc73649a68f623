/**
 * ndt7: one ndt-server result document per test, usually `ndt7-<download|upload>-<time>.<UUID>.json.gz`.
 * Row: `id` = the test's UUID without `_unsafe`; `raw` = the document without the per-measurement
 * ConnectionInfo (which repeats the client's address); `a` = a summary computed from the last
 * server measurement's TCPInfo, as M-Lab computes it.
 */
import path from 'node:path';
import {
  defineParser,
  EtlError,
  isRecord,
  microsecondTime,
  readOneJson,
  toNumber,
  type Ndt7Row,
  type ParsedRows,
} from '../src/parser/index.js';

const TIMES = ['StartTime', 'EndTime'];

/** The direction without ConnectionInfo, null lists left out, times in microseconds. */
function cleanDirection(d: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d)) {
    if (v === null) continue;
    if (TIMES.includes(k) && typeof v === 'string') out[k] = microsecondTime(v);
    else if ((k === 'ServerMeasurements' || k === 'ClientMeasurements') && Array.isArray(v)) {
      out[k] = (v as unknown[]).map((m) => {
        if (!isRecord(m)) return m;
        const { ConnectionInfo: _dropped, ...rest } = m;
        return rest;
      });
    } else out[k] = v;
  }
  return out;
}

function summary(direction: 'Download' | 'Upload', d: Record<string, unknown>, uuid: string): Ndt7Row['a'] {
  const measurements = Array.isArray(d.ServerMeasurements) ? d.ServerMeasurements : [];
  const last: unknown = measurements.at(-1);
  const tcp = isRecord(last) && isRecord(last.TCPInfo) ? last.TCPInfo : null;
  const a: Ndt7Row['a'] = {
    UUID: uuid,
    ...(typeof d.StartTime === 'string' ? { TestTime: microsecondTime(d.StartTime) } : {}),
    CongestionControl: 'bbr',
    MeanThroughputMbps: 0,
    MinRTT: 0,
    LossRate: 0,
  };
  if (tcp) {
    const elapsed = toNumber(tcp.ElapsedTime); // microseconds, so bits per microsecond = Mbit/s
    const bytes = toNumber(direction === 'Download' ? tcp.BytesAcked : tcp.BytesReceived);
    a.MeanThroughputMbps = elapsed > 0 ? (8 * bytes) / elapsed : 0;
    a.MinRTT = toNumber(tcp.MinRTT) / 1000;
    const sent = toNumber(tcp.BytesSent);
    a.LossRate = direction === 'Download' && sent > 0 ? toNumber(tcp.BytesRetrans) / sent : 0;
  }
  return a;
}

export default defineParser<Ndt7Row>({
  name: 'ndt7',
  description: 'NDT7 download and upload tests (ndt-server): one row per test, keyed by connection UUID',
  accepts: (name) => /\.json(\.gz)?$/.test(name) && path.posix.basename(name).includes('ndt7'),

  async *parse(input): ParsedRows<Ndt7Row> {
    const doc = await readOneJson(input.body, input.limits);
    if (!isRecord(doc))
      throw new EtlError('invalid_record', 'an ndt7 result must be a JSON object', { stage: 'parser' });
    const direction = isRecord(doc.Download) ? 'Download' : isRecord(doc.Upload) ? 'Upload' : null;
    if (direction === null) {
      throw new EtlError('invalid_record', 'an ndt7 result needs a Download or an Upload object', { stage: 'parser' });
    }
    const d = doc[direction] as Record<string, unknown>;
    if (typeof d.UUID !== 'string' || d.UUID === '') {
      throw new EtlError('invalid_record', `${direction}.UUID must be a non-empty string`, { stage: 'parser' });
    }
    const id = d.UUID.replaceAll('_unsafe', '');
    const raw: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(doc)) {
      if (v === null) continue;
      if (k === 'Download' || k === 'Upload') raw[k] = isRecord(v) ? cleanDirection(v) : v;
      else raw[k] = TIMES.includes(k) && typeof v === 'string' ? microsecondTime(v) : v;
    }
    // raw is the document as ndt-server wrote it, untyped: the schema validator checks its shape.
    yield { id, a: summary(direction, d, id), raw };
  },
});
