/**
 * The registry maps a datatype to its parser. Parsers are found, not listed: every module in
 * `parsers/` (beside `src/` in the package, compiled or not) that default-exports a parser is
 * registered under its name, which must be the file's name. Adding a datatype touches no file here.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { EtlError } from '../errors.js';
import { PACKAGE_ROOT } from '../package-info.js';
import type { Parser } from './api.js';
import type { SchemaSet } from '../schema/schema-set.js';
import { schemaOnlyParser } from './schema-only-parser.js';

/** parsers/ next to this module's directory: the source tree under vitest/tsx, dist/ when built. */
export const PARSERS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'parsers');

/** The parser modules of a directory, without the extension: tests and declarations left out. */
function moduleNames(dir: string, ext: 'ts' | 'js'): string[] {
  if (!existsSync(dir)) return [];
  const module = new RegExp(`^(?!.*\\.(test|d)\\.${ext}$)(.+)\\.${ext}$`);
  return readdirSync(dir).flatMap((f) => module.exec(f)?.[2] ?? []);
}

/**
 * A command run from dist/ inside a checkout loads dist/parsers/, which `npm run build` compiles
 * from parsers/, while schemas are read from schemas/ directly. A parser added or edited since the
 * build (its .js missing or older) would be missing or old in `parse` and `parsers` while `schema`
 * already shows it, and a parser deleted since would still run: stop and say what to run instead.
 * (Loading the .ts source into a built process would give it a second copy of src/, which breaks
 * `instanceof EtlError`.) Installed packages and the image have no parsers/ sources: nothing to check.
 */
function checkBuilt(builtDir: string, sourceDir: string): void {
  if (!existsSync(sourceDir)) return; // an installed package or the image: built parsers only
  const built = new Set(moduleNames(builtDir, 'js'));
  const sources = moduleNames(sourceDir, 'ts');
  const problems: string[] = [];
  for (const name of sources) {
    const source = path.join(sourceDir, `${name}.ts`);
    const js = path.join(builtDir, `${name}.js`);
    if (!built.has(name)) problems.push(`${relative(source)} is not built (no ${relative(js)})`);
    else if (statSync(js).mtimeMs < statSync(source).mtimeMs)
      problems.push(`${relative(source)} changed after its build ${relative(js)}`);
  }
  for (const name of [...built].filter((n) => !sources.includes(n))) {
    problems.push(`${relative(path.join(builtDir, `${name}.js`))} is left from a deleted ${name}.ts`);
  }
  if (problems.length > 0) {
    throw new EtlError('parsers_not_built', `${problems.join('; ')}: run npm run build`, { stage: 'registry' });
  }
}

function relative(file: string): string {
  return path.relative(PACKAGE_ROOT, file);
}

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
    const sourceDir = path.join(PACKAGE_ROOT, 'parsers');
    if (dir === PARSERS_DIR && dir !== sourceDir) checkBuilt(dir, sourceDir);
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
