/**
 * Entries parsed on this thread, one at a time: each is stored before the next is read, so a
 * failure that ends the archive stops the reading there.
 */
import type { ValidateFunction } from 'ajv/dist/2020.js';
import type { Parser } from '../../parser/api.js';
import { entryBatches } from '../../rows/entry-rows.js';
import type { EntryStrategy } from '../read-entries.js';

export function serialStrategy(parser: Parser, validate: ValidateFunction): EntryStrategy {
  return {
    parse: (item, job, writer) =>
      writer.entry({
        name: item.name,
        batches: () => entryBatches(parser, validate, job, item.body),
        bytesRead: () => item.bytesRead(),
      }),
    pace: (written) => written,
  };
}
