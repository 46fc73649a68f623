import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { ERROR_CODES } from './errors.js';
import { PACKAGE_ROOT } from './package-info.js';

it('documents every error code in docs/errors.md', () => {
  const doc = readFileSync(path.join(PACKAGE_ROOT, 'docs/errors.md'), 'utf8');
  const documented = [...doc.matchAll(/^\|\s*`([a-z_]+)`\s*\|/gm)].map((m) => m[1]);
  expect(documented.sort()).toEqual(Object.keys(ERROR_CODES).sort());
});
