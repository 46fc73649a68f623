/**
 * annotation2: the uuid-annotator's record of each TCP connection on an M-Lab server, one JSON file
 * per connection named `<UUID>.json`. The row keeps the server and client annotations under the
 * connection UUID, so any experiment's rows join with it on `id`. As M-Lab does, `Geo.Region` is
 * blanked and `Timestamp` dropped.
 */
import {
  defineParser,
  EtlError,
  isRecord,
  readOneJson,
  type Annotation2Row,
  type ParsedRows,
} from '../src/parser/index.js';

/** A side of the connection as the uuid-annotator wrote it: the schema validator checks its shape. */
type Side = Annotation2Row['server'];

function blankRegion(side: unknown): Side {
  if (!isRecord(side)) return side as Side;
  const geo = side.Geo;
  if (isRecord(geo) && 'Region' in geo) return { ...side, Geo: { ...geo, Region: '' } };
  return side;
}

export default defineParser<Annotation2Row>({
  name: 'annotation2',
  description: 'uuid-annotator connection annotations: server and client location and network per UUID',
  accepts: (name) => name.endsWith('.json'),

  async *parse(input): ParsedRows<Annotation2Row> {
    const doc = await readOneJson(input.body, input.limits);
    if (!isRecord(doc) || typeof doc.UUID !== 'string' || doc.UUID === '') {
      throw new EtlError('invalid_record', 'an annotation needs a non-empty string UUID', { stage: 'parser' });
    }
    yield {
      id: doc.UUID,
      ...(doc.Server === undefined || doc.Server === null ? {} : { server: blankRegion(doc.Server) }),
      ...(doc.Client === undefined || doc.Client === null ? {} : { client: blankRegion(doc.Client) }),
    };
  },
});
