/**
 * Schema-only datatypes: an experiment that already writes JSONL rows adds only
 * `schemas/<datatype>.json`, declaring under `x-mlab` the format (`jsonl`), a JSON pointer to the
 * id in each record (`"id": "/UUID"`) and which entry names to read (`"accepts": "\\.jsonl$"`).
 * This generic parser turns each line into a row `{id, raw: <the record>}`; a bad line is recorded
 * and skipped, the others are rows.
 */
import { jsonLines } from '../json/json-stream.js';
import { excerpt } from '../ledger/records.js';
import { defineParser, type Parser } from './api.js';
import type { SchemaMeta } from '../schema/schema-set.js';

export class SchemaOnlyError extends Error {
  override name = 'SchemaOnlyError';
}

/** The value a JSON pointer (RFC 6901) designates, or undefined. */
export function resolvePointer(doc: unknown, pointer: string): unknown {
  if (pointer === '') return doc;
  if (!pointer.startsWith('/')) return undefined;
  let node: unknown = doc;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

export function schemaOnlyParser(datatype: string, meta: SchemaMeta): Parser {
  if (meta.format !== 'jsonl') {
    throw new SchemaOnlyError(
      `schemas/${datatype}.json: x-mlab.format ${JSON.stringify(meta.format)} is not supported (jsonl is)`,
    );
  }
  const pointer = meta.id;
  if (typeof pointer !== 'string' || !pointer.startsWith('/')) {
    throw new SchemaOnlyError(`schemas/${datatype}.json: x-mlab.id must be a JSON pointer such as "/UUID"`);
  }
  const accepts = new RegExp(meta.accepts ?? '\\.jsonl$');
  return defineParser({
    name: datatype,
    description: meta.parserDescription ?? `${datatype} (schema-only: one JSON record a line, id from ${pointer})`,
    accepts: (name) => accepts.test(name),
    async *parse(input, context) {
      for await (const item of jsonLines(input.body, input.limits)) {
        if ('error' in item) {
          context.skip('invalid_json', item.error.message, item.text);
          continue;
        }
        const id = resolvePointer(item.value, pointer);
        if (typeof id !== 'string' || id === '') {
          context.skip(
            'invalid_record',
            `line ${item.line}: no string id at ${pointer}`,
            excerpt(JSON.stringify(item.value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))),
          );
          continue;
        }
        yield { id, raw: item.value };
      }
    },
  });
}
