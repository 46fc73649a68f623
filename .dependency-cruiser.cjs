// The import rules of src/ (run by `npm run deps`, part of `npm run check`). An archive flows
// source -> archive -> parser -> rows -> sinks, driven by pipeline, triggered by worker or cli;
// each stage may import the kernel (src/*.ts) and the stages it builds on, never a later one.
/** Paths a stage may import besides itself, node: modules and npm packages. */
const kernel = '^src/[^/]+[.]ts$';
const allowed = {
  json: [kernel],
  ledger: [kernel],
  schema: [kernel, '^src/json/'],
  source: [kernel],
  archive: [kernel],
  parser: [kernel, '^src/json/', '^src/ledger/', '^src/schema/'],
  rows: [kernel, '^src/parser/', '^src/json/', '^src/schema/', '^src/ledger/'],
  sinks: [kernel, '^src/rows/row-batch[.]ts$', '^src/schema/', '^src/json/', '^src/ledger/'],
  pipeline: [
    kernel,
    '^src/source/',
    '^src/archive/',
    '^src/parser/',
    '^src/rows/',
    '^src/schema/',
    '^src/ledger/',
    '^src/json/',
    '^src/sinks/sink[.]ts$',
  ],
};
const test = '([.]test[.]ts$|^test/)';

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'production-never-imports-tests',
      comment: 'src/ and parsers/ ship; test/ and *.test.ts do not',
      severity: 'error',
      from: { path: '^(src|parsers)/', pathNot: test },
      to: { path: test },
    },
    {
      name: 'kernel-imports-only-kernel',
      severity: 'error',
      from: { path: kernel },
      to: { path: '^(src|parsers)/', pathNot: kernel },
    },
    ...Object.entries(allowed).map(([stage, paths]) => ({
      name: `${stage}-imports-earlier-stages-only`,
      severity: 'error',
      from: { path: `^src/${stage}/`, pathNot: test },
      to: { path: '^(src|parsers)/', pathNot: [`^src/${stage}/`, ...paths] },
    })),
    {
      name: 'only-cli-imports-worker',
      severity: 'error',
      from: { path: '^src/', pathNot: [`^src/(cli|worker)/`, test] },
      to: { path: '^src/worker/' },
    },
    {
      name: 'nothing-imports-cli',
      severity: 'error',
      from: { path: '^src/', pathNot: [`^src/cli/`, test] },
      to: { path: '^src/cli/' },
    },
    {
      name: 'parsers-import-the-contributor-surface',
      comment: 'a parser sees src/parser/index.ts (the contributor surface) and nothing else of src/',
      severity: 'error',
      from: { path: '^parsers/', pathNot: test },
      to: { path: '^src/', pathNot: '^src/parser/index[.]ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    exclude: { path: '^(dist|node_modules|bench/data)/' },
  },
};
