/**
 * The registry maps a datatype to its parser. Parsers are found, not listed: every module in
 * `parsers/` (beside `src/` in the package, compiled or not) that default-exports a parser is
 * registered under its name, which must be the file's name. Adding a datatype touches no file here.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { EtlError } from '../errors.js';
import type { Parser } from './api.js';
import type { SchemaSet } from '../schema/schema-set.js';
import { schemaOnlyParser } from './schema-only-parser.js';

/** parsers/ next to this module's directory: the source tree under vitest/tsx, dist/ when built. */
export const PARSERS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'parsers');

function isParser(v: unknown): v is Parser {
  const p = v as Parser;
  return (
    p !== null &&
    typeof p === 'object' &&
    typeof p.name === 'string' &&
    typeof p.description === 'string' &&
    typeof p.accepts === 'function' &&
    typeof p.parse === 'function'
  );
}

export class Registry {
  private constructor(
    private readonly parsers: Map<string, Parser>,
    /** Datatypes served by the generic parser of a schema-only datatype. */
    readonly schemaOnly: ReadonlySet<string> = new Set(),
  ) {}

  static fromParsers(parsers: Parser[]): Registry {
    return new Registry(new Map(parsers.map((p) => [p.name, p])));
  }

  /**
   * Imports every parser module of the directory; a module that is not a parser named after its
   * file is an error. With schemas, every schema declaring `x-mlab.format` and having no module is
   * served by the generic schema-only parser.
   */
  static async load(schemas?: SchemaSet, dir: string = PARSERS_DIR): Promise<Registry> {
    const files = existsSync(dir)
      ? readdirSync(dir).filter((f) => /\.(ts|js)$/.test(f) && !/\.(test|d)\.(ts|js)$/.test(f))
      : [];
    const parsers: Parser[] = [];
    for (const file of files.sort()) {
      const mod = (await import(pathToFileURL(path.join(dir, file)).href)) as { default?: unknown };
      const parser = mod.default;
      const expected = file.replace(/\.(ts|js)$/, '');
      if (!isParser(parser)) throw new Error(`parsers/${file}: the default export is not a parser (use defineParser)`);
      if (parser.name !== expected)
        throw new Error(`parsers/${file}: the parser is named ${parser.name}, not ${expected}`);
      parsers.push(parser);
    }
    const map = new Map(parsers.map((p) => [p.name, p]));
    const schemaOnly = new Set<string>();
    for (const datatype of schemas?.datatypes() ?? []) {
      const meta = schemas?.meta(datatype) ?? {};
      if (meta.format === undefined) continue;
      if (map.has(datatype)) {
        throw new Error(`${datatype} has both parsers/${datatype}.ts and x-mlab.format in its schema: keep one`);
      }
      map.set(datatype, schemaOnlyParser(datatype, meta));
      schemaOnly.add(datatype);
    }
    return new Registry(map, schemaOnly);
  }

  datatypes(): string[] {
    return [...this.parsers.keys()].sort();
  }

  all(): Parser[] {
    return this.datatypes().map((d) => this.parsers.get(d) as Parser);
  }

  /** The parser of a datatype; EtlError unknown_datatype when there is none. */
  get(datatype: string): Parser {
    const p = this.parsers.get(datatype);
    if (!p) {
      throw new EtlError(
        'unknown_datatype',
        `no parser for datatype ${datatype} (registered: ${this.datatypes().join(', ') || 'none'})`,
        { stage: 'registry' },
      );
    }
    return p;
  }
}
