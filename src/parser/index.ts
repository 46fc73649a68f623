/**
 * Everything a parser imports: `import { defineParser, ... } from '../src/parser/index.js'`.
 * A parser sees this module and nothing else of mlab-etl (the dependency rules check it), so the
 * pipeline can change behind it.
 */
export { EtlError, type ErrorCode } from '../errors.js';
export type { ParserLimits } from '../limits.js';
export { jsonLines, jsonValues, type JsonLine, type JsonValue, type JsonValuesOptions } from '../json/json-stream.js';
export { exactInteger, parseLossless, parseLosslessDocument, type LosslessNumber } from '../json/lossless-json.js';
export {
  defineParser,
  type ArchiveInfo,
  type ParsedRow,
  type ParsedRows,
  type Parser,
  type ParserContext,
  type ParserInput,
  type PipelineColumns,
  type UntypedRow,
} from './api.js';
// The row of each table, generated from its schema (npm run types): defineParser<SwitchRow>(...).
export type * from './types/index.js';
export { GroupedRows, type GroupedRowsOptions } from './grouped-rows.js';
export { isRecord, microsecondTime, readOneJson, toNumber } from './helpers.js';
